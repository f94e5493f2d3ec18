import { open } from "node:fs/promises";
import { pipeline } from "node:stream/promises";
import { createInflateRaw } from "node:zlib";
import { DigestStream } from "../oci/digest";
import { ReadAheadStream } from "../util/read-ahead";
import { discard } from "../util/streams";
import { parseGzipHeader } from "./gzip-header";
import type { GzipMemberRecipe, GzipRecipe } from "./format";
import { identifyGzipThreaded, regenerateGzipThreaded } from "./threaded";

/** Where one member of a gzip file lies, and how much it inflates to. */
export interface GzipMemberSpan {
  offset: number;
  length: number;
  uncompressedSize: number;
}

/**
 * Split a gzip file into its members: each body is raw-inflated (streaming) and the inflater
 * reports how many bytes it consumed. Undefined when something other than well-formed members
 * is found (trailing padding, a damaged header): such blobs keep their original form.
 */
export async function scanGzipMembers(file: string, size: number): Promise<GzipMemberSpan[] | undefined> {
  const spans: GzipMemberSpan[] = [];
  const handle = await open(file, "r");
  try {
    let offset = 0;
    while (offset < size) {
      const head = Buffer.alloc(Math.min(64 * 1024, size - offset));
      await handle.read(head, 0, head.length, offset);
      const info = parseGzipHeader(head);
      if (!info) return undefined;
      const { consumed, produced } = await inflateMember(file, offset + info.length, size);
      const length = info.length + consumed + 8;
      if (offset + length > size) return undefined;
      const trailer = Buffer.alloc(8);
      await handle.read(trailer, 0, 8, offset + length - 8);
      if (trailer.readUInt32LE(4) !== produced % 0x100000000) return undefined;
      spans.push({ offset, length, uncompressedSize: produced });
      offset += length;
    }
    return spans;
  } finally {
    await handle.close();
  }
}

async function inflateMember(
  file: string,
  start: number,
  end: number,
): Promise<{ consumed: number; produced: number }> {
  const source = new ReadAheadStream(file, start, end);
  const inflate = createInflateRaw();
  let produced = 0;
  inflate.on("data", (chunk: Buffer) => (produced += chunk.length));
  source.pipe(inflate);
  try {
    await new Promise<void>((resolve, reject) => {
      inflate.once("end", resolve);
      inflate.once("error", reject);
      source.once("error", reject);
    });
  } finally {
    source.unpipe(inflate);
    source.destroy();
  }
  // bytesWritten counts the input the inflater used, which stops at the end of the deflate stream.
  return { consumed: inflate.bytesWritten, produced };
}

/**
 * A gzip blob of several members (`cat a.gz b.gz`, appending writers): identify each member's
 * encoder on its share of the uncompressed layer, then rebuild the whole blob the way unpack will
 * and keep the recipe only if its sha256 is the original digest.
 */
export async function identifyGzipMembers(
  original: { file: string; digest: string; size: number },
  uncompressedFile: string,
): Promise<GzipRecipe | undefined> {
  // The blob already passed gunzip; anything odd here just means "no recipe" (the original is kept).
  const spans = await scanGzipMembers(original.file, original.size).catch(() => undefined);
  if (!spans || spans.length < 2) return undefined;
  const members: (GzipMemberRecipe & { size: number })[] = [];
  let pos = 0;
  for (const span of spans) {
    const identifier = identifyGzipThreaded(original.file, { offset: span.offset, size: span.length });
    const end = pos + span.uncompressedSize;
    await pipeline(new ReadAheadStream(uncompressedFile, pos, end), identifier, discard());
    const found = identifier.recipe;
    if (!found) return undefined;
    const { encoder, family, level, versions, header } = found;
    members.push({ encoder, family, level, versions, header, size: span.uncompressedSize });
    pos = end;
  }
  const { encoder, family, level, versions, header } = members[0]!;
  const recipe: GzipRecipe = { format: "gzip", encoder, family, level, versions, header, members };
  try {
    await pipeline(
      new ReadAheadStream(uncompressedFile),
      regenerateGzipThreaded(recipe),
      new DigestStream({ digest: original.digest, size: original.size }),
      discard(),
    );
  } catch {
    return undefined;
  }
  return recipe;
}
