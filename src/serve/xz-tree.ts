import { createHash } from "node:crypto";
import { mkdir, open, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { xzBlockDecoder } from "../compression/codecs";
import { blocksFor, readXzIndex, syntheticStream, type XzIndex } from "../compression/xz-index";
import { writeFileAtomic } from "../util/atomic";
import type { FileTree } from "../util/files";
import { Limiter } from "../util/pool";
import { safeTarPath, TAR_BLOCK, TarHeaderState } from "../util/tar-index";

/** JSON entries this small are kept from the indexing pass (airpack.json, index.json, manifests, configs). */
const KEPT_BYTES = 64 * 1024;
const INDEX_VERSION = 1;
/** xz decoders at once (each ~9 MiB, one core): more requests wait for one, first come first served. */
const decoders = new Limiter(Number(process.env.AIRPACK_SERVE_DECODERS) || 8);

interface Scan {
  /** path → [offset in the tar, size] */
  entries: Map<string, [number, number]>;
  kept: Map<string, Buffer>;
  /** Digests of blobs whose bytes did not hash to their name. */
  bad: Set<string>;
}

/**
 * A multi-block .tar.xz bundle read in place: one pass on first start decodes it, finds every
 * entry's offset in the tar and hashes every blob (cached under the cache dir, keyed by the
 * bundle's size, mtime and first 64 KiB); then an entry is read by decoding only the xz blocks
 * that hold it, wrapped as a stream of their own (docs/bundle-format.md, "Seekable .tar.xz").
 */
export class XzTree implements FileTree {
  private constructor(
    readonly file: string,
    private readonly index: XzIndex,
    private readonly scan: Scan,
  ) {}

  /** undefined when the bundle is not a multi-block xz file (then it is unpacked as before). */
  static async open(file: string, cacheDir: string, log: (line: string) => void): Promise<XzTree | undefined> {
    const index = await readXzIndex(file, file).catch(() => undefined);
    if (!index || index.blocks.length < 2) return undefined;
    const cached = join(cacheDir, `${await cacheKey(file)}.json`);
    let scan = await loadScan(cached);
    if (!scan) {
      const started = Date.now();
      scan = await scanTar(decodedWhole(file, index), file);
      await mkdir(cacheDir, { recursive: true });
      await writeFileAtomic(cached, saveScan(scan));
      log(
        `${file}: indexed ${scan.entries.size} entries in ${((Date.now() - started) / 1000).toFixed(1)} s (kept in ${cached})`,
      );
    }
    return new XzTree(file, index, scan);
  }

  get label(): string {
    return this.file;
  }

  /** Blobs that failed their check in the indexing pass. */
  get bad(): ReadonlySet<string> {
    return this.scan.bad;
  }

  private entry(path: string): [number, number] {
    const e = this.scan.entries.get(safeTarPath(path, this.file));
    if (!e) throw Object.assign(new Error(`${this.file}: no entry ${path}`), { code: "ENOENT" });
    return e;
  }

  offsetOf(path: string): number {
    return this.entry(path)[0];
  }

  async exists(path: string): Promise<boolean> {
    return this.scan.entries.has(safeTarPath(path, this.file));
  }

  async size(path: string): Promise<number> {
    return this.entry(path)[1];
  }

  async readSmall(path: string, limit: number): Promise<Buffer> {
    const [offset, size] = this.entry(path);
    if (size > limit) throw new Error(`${this.file}/${path}: ${size} bytes, over the ${limit}-byte limit`);
    const kept = this.scan.kept.get(safeTarPath(path, this.file));
    if (kept) return kept;
    const parts: Buffer[] = [];
    for await (const c of this.range(offset, size)) parts.push(c as Buffer);
    return Buffer.concat(parts);
  }

  open(path: string): Readable {
    const [offset, size] = this.entry(path);
    return this.range(offset, size);
  }

  /** Bytes [offset, offset+length) of the tar, decoded from the blocks that hold them only. */
  range(offset: number, length: number): Readable {
    const { index, file } = this;
    async function* decode(): AsyncGenerator<Buffer> {
      if (length === 0) return;
      const [first, last] = blocksFor(index, offset, offset + length);
      let skip = offset - index.blocks[first]!.start;
      let left = length;
      for await (const c of decodeBlocks(file, index, first, last)) {
        let chunk = c;
        if (skip >= chunk.length) {
          skip -= chunk.length;
          continue;
        }
        chunk = chunk.subarray(skip, skip + left);
        skip = 0;
        left -= chunk.length;
        yield chunk;
        if (left === 0) return;
      }
      throw new Error(`${file}: xz blocks ended ${left} bytes short of an entry`);
    }
    return Readable.from(decode(), { objectMode: false, highWaterMark: 1 << 20 });
  }
}

/** Blocks first..last decoded, on one of the decoders. */
async function* decodeBlocks(file: string, index: XzIndex, first: number, last: number): AsyncGenerator<Buffer> {
  const release = await decoders.acquire();
  const decoder = xzBlockDecoder(file);
  try {
    const input = syntheticStream(file, index, first, last);
    input.on("error", (err) => decoder.destroy(err));
    input.pipe(decoder);
    for await (const c of decoder) yield c as Buffer;
  } finally {
    decoder.destroy();
    release();
  }
}

/**
 * The whole tar, block by block: a block that does not decode (or fails its xz check) becomes a
 * hole of its size, so the entries in it are marked bad and the rest are still found.
 */
async function* decodedWhole(file: string, index: XzIndex): AsyncGenerator<Buffer | number> {
  for (let i = 0; i < index.blocks.length; i++) {
    let got = 0;
    try {
      for await (const c of decodeBlocks(file, index, i, i)) {
        got += c.length;
        yield c;
      }
      if (got !== index.blocks[i]!.size) throw new Error("short block");
    } catch {
      yield index.blocks[i]!.size - got;
    }
  }
}

async function cacheKey(file: string): Promise<string> {
  const st = await stat(file);
  const fh = await open(file, "r");
  try {
    const head = Buffer.alloc(Math.min(65536, st.size));
    await fh.read(head, 0, head.length, 0);
    return createHash("sha256")
      .update(`${INDEX_VERSION}:${st.size}:${st.mtimeMs}:`)
      .update(head)
      .digest("hex")
      .slice(0, 32);
  } finally {
    await fh.close();
  }
}

const BLOB = /^blobs\/sha256\/([0-9a-f]{64})$/;

/**
 * One streaming pass over a tar: every entry's offset and size, small entries kept, blobs hashed.
 * A number in the input is a hole of that many unreadable bytes: the entry it falls in is bad.
 */
export async function scanTar(tar: AsyncIterable<Buffer | number>, label: string): Promise<Scan> {
  const scan: Scan = { entries: new Map(), kept: new Map(), bad: new Set() };
  const headers = new TarHeaderState(label);
  const header = Buffer.alloc(TAR_BLOCK);
  let filled = 0;
  let pos = 0;
  let next = 0;
  /** The entry whose data is being read: where its data ends, and what takes it. */
  let cur: EntryReader | undefined;
  const finish = (): void => {
    if (cur && pos >= next) {
      cur.done();
      cur = undefined;
    }
  };
  for await (const c of tar) {
    if (typeof c === "number") {
      let n = c;
      while (n > 0) {
        if (pos >= next)
          throw new Error(`${label}: a damaged xz block holds tar headers (at byte ${pos}); unpack says more`);
        const k = Math.min(n, next - pos);
        if (cur && pos < cur.dataEnd) cur.damaged();
        pos += k;
        n -= k;
        finish();
      }
      continue;
    }
    let chunk = c;
    while (chunk.length > 0) {
      if (pos < next) {
        const n = Math.min(chunk.length, next - pos);
        if (cur && pos < cur.dataEnd) cur.take(chunk.subarray(0, Math.min(n, cur.dataEnd - pos)));
        pos += n;
        chunk = chunk.subarray(n);
        finish();
        continue;
      }
      const n = Math.min(chunk.length, TAR_BLOCK - filled);
      chunk.copy(header, filled, 0, n);
      filled += n;
      pos += n;
      chunk = chunk.subarray(n);
      if (filled < TAR_BLOCK) continue;
      filled = 0;
      const step = headers.step(header, pos - TAR_BLOCK);
      if (step.kind === "end") return scan;
      next = step.next;
      if (step.kind === "meta") {
        const parts: Buffer[] = [];
        cur = {
          dataEnd: step.dataStart + step.size,
          take: (b) => parts.push(Buffer.from(b)),
          damaged: () => {
            throw new Error(`${label}: a damaged xz block holds tar headers (at byte ${pos})`);
          },
          done: () => headers.meta(step.typeflag, Buffer.concat(parts)),
        };
      } else if (step.kind === "entry" && step.entry.type === "file") {
        cur = entryReader(scan, step.entry.path, step.entry.offset, step.entry.size);
      }
      finish();
    }
  }
  throw new Error(`${label}: truncated tar (no end-of-archive marker)`);
}

interface EntryReader {
  dataEnd: number;
  take: (b: Buffer) => void;
  damaged: () => void;
  done: () => void;
}

function entryReader(scan: Scan, path: string, offset: number, size: number): EntryReader {
  scan.entries.set(path, [offset, size]);
  const digest = BLOB.exec(path)?.[1];
  const hash = digest ? createHash("sha256") : undefined;
  const parts: Buffer[] | undefined = size <= KEPT_BYTES ? [] : undefined;
  let damaged = false;
  return {
    dataEnd: offset + size,
    take: (b) => {
      hash?.update(b);
      parts?.push(Buffer.from(b));
    },
    damaged: () => {
      damaged = true;
    },
    done: () => {
      if (digest && (damaged || hash!.digest("hex") !== digest)) scan.bad.add(`sha256:${digest}`);
      else if (damaged) scan.entries.delete(path);
      else if (parts && parts[0]?.[0] === 0x7b) scan.kept.set(path, Buffer.concat(parts));
    },
  };
}

function saveScan(scan: Scan): string {
  return JSON.stringify({
    version: INDEX_VERSION,
    entries: [...scan.entries],
    kept: [...scan.kept].map(([p, b]) => [p, b.toString("base64")]),
    bad: [...scan.bad],
  });
}

/** A cached scan, or undefined when there is none (or it is not one this version wrote). */
async function loadScan(file: string): Promise<Scan | undefined> {
  try {
    const doc = JSON.parse(await readFile(file, "utf8")) as {
      version: number;
      entries: [string, [number, number]][];
      kept: [string, string][];
      bad: string[];
    };
    if (doc.version !== INDEX_VERSION) return undefined;
    return {
      entries: new Map(doc.entries),
      kept: new Map(doc.kept.map(([p, b]) => [p, Buffer.from(b, "base64")])),
      bad: new Set(doc.bad),
    };
  } catch {
    return undefined;
  }
}
