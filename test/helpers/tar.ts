/**
 * Test-side tar surgery on small bundles (fixtures are a few hundred KB): read every entry into
 * memory, let the test change, drop or add entries, write a new tar. Independent of airpack's
 * own tar writer so a bug there cannot hide here.
 */
import { readFile, writeFile } from "node:fs/promises";
import { Readable } from "node:stream";
import * as tar from "tar-stream";

export type TarHeader = Partial<tar.Header> & { name: string };

export interface TarItem {
  header: TarHeader;
  data: Buffer;
}

export async function readTar(file: string): Promise<TarItem[]> {
  const extract = tar.extract();
  const items: TarItem[] = [];
  const done = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      items.push({ header: { ...entry.header }, data: Buffer.concat(chunks) });
    }
  })();
  Readable.from([await readFile(file)]).pipe(extract as unknown as NodeJS.WritableStream);
  await done;
  return items;
}

export async function writeTar(file: string, items: TarItem[]): Promise<void> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const item of items) {
    await new Promise<void>((resolve, reject) => {
      const isFile = (item.header.type ?? "file") === "file";
      pack.entry(
        { ...item.header, size: isFile ? item.data.length : 0 } as tar.Header,
        isFile ? item.data : Buffer.alloc(0),
        (err) => (err ? reject(err) : resolve()),
      );
    });
  }
  pack.finalize();
  await collected;
  await writeFile(file, Buffer.concat(chunks));
}

export function fileItem(name: string, data: Buffer | string): TarItem {
  const buf = Buffer.from(data);
  return { header: { name, type: "file", size: buf.length, mode: 0o644 }, data: buf };
}
