/**
 * The writer of split bundles (the format and the reader are parts.ts): the bundle's bytes, as they
 * stream out of the compressor, cut into NAME.001, NAME.002, … of exactly `partSize` bytes each but
 * the last. Each part is written under a temp name, flushed to the disk (fdatasync) and renamed into
 * place before the next one begins; NAME.parts.json is written last.
 */
import { createHash, type Hash } from "node:crypto";
import { once } from "node:events";
import { mkdir, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join, resolve as resolvePath } from "node:path";
import { Writable } from "node:stream";
import { finished } from "node:stream/promises";
import { tempSibling, writeFileAtomic } from "../util/atomic";
import { BlockPool, WRITE_BLOCK } from "../util/block-pool";
import { HashThread, inlineHasher, type Hasher, type ThreadHash } from "../util/hash-thread";
import { copyIntoSink, FileWriteStream } from "../util/file-writer";
import { trackTempPath, untrackTempPath } from "../util/leftovers";
import { toolVersion } from "../version";
import { fileErrorReason, isSystemError } from "../util/errors";
import {
  MAX_PARTS,
  PARTS_FORMAT_VERSION,
  partName,
  partNumber,
  partsFileName,
  type PartRecord,
  type PartsFile,
} from "./parts";

/**
 * Named sizes for --split: the largest file a FAT32 filesystem holds, and the recordable capacity of
 * the smaller of the -R/+R kinds of each disc, less 16 MiB for the filesystem on it (ISO 9660/UDF
 * structures and a copy of NAME.parts.json). Discs formatted with spare areas hold less.
 */
export const SPLIT_MEDIA: Record<string, { bytes: number; what: string }> = {
  fat32: { bytes: 2 ** 32 - 1, what: "FAT32's largest file, 4 GiB − 1 byte" },
  dvd: { bytes: 4_700_372_992 - 16 * 2 ** 20, what: "DVD±R single layer (DVD+R: 4,700,372,992 bytes) less 16 MiB" },
  "dvd-dl": {
    bytes: 8_543_666_176 - 16 * 2 ** 20,
    what: "DVD±R dual layer (DVD-R DL: 8,543,666,176 bytes) less 16 MiB",
  },
  bd25: { bytes: 25_025_314_816 - 16 * 2 ** 20, what: "BD-R single layer (25,025,314,816 bytes) less 16 MiB" },
  bd50: { bytes: 50_050_629_632 - 16 * 2 ** 20, what: "BD-R dual layer (50,050,629,632 bytes) less 16 MiB" },
};

const UNITS: Record<string, number> = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };
const DECIMAL: Record<string, number> = { k: 1e3, m: 1e6, g: 1e9, t: 1e12 };

/**
 * --split SIZE: a byte count, a number with a unit (K, M, G, T and KiB… are powers of 1024, KB, MB…
 * of 1000, as GNU split reads them), or a medium named in SPLIT_MEDIA. Throws a plain Error saying
 * what it takes.
 */
export function parseSplitSize(text: string): number {
  const t = text.trim().toLowerCase();
  const medium = SPLIT_MEDIA[t];
  if (medium) return medium.bytes;
  const m = /^(\d+(?:\.\d+)?)\s*(?:([kmgt])(ib|b)?|(b)?)$/.exec(t);
  const factor = m ? (m[3] === "b" ? DECIMAL[m[2]!] : UNITS[m[2] ?? ""]) : undefined;
  const bytes = m && factor !== undefined ? Math.floor(Number(m[1]) * factor) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new Error(
      `--split ${text}: expected a size in bytes (4294967295, 4095M, 4G, 700MB) or a medium: ${Object.keys(SPLIT_MEDIA).join(", ")}`,
    );
  }
  return bytes;
}

/** Why a write failed, in words; a file too big for FAT32 says what to do. */
export function writeErrorReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOSPC") return "no space left on device";
  if (code === "EDQUOT") return "disk quota exceeded";
  if (code === "EFBIG") return "file too large for this filesystem; FAT32 holds at most 4 GiB − 1 byte: --split fat32";
  return fileErrorReason(err);
}

/** Whether a write failed because the disk (or the user's quota on it) is full. */
export function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

export interface SplitOptions {
  partSize: number;
  /**
   * Parts a pack that stopped on a full disk wrote already (parts 1…N−1): this run makes them again
   * only to check they came out the same, and writes part N on.
   */
  done?: PartRecord[];
}

/** Files in `dir` left by an earlier bundle named `bundle`: its parts, its parts.json, the whole file. */
export async function earlierBundleFiles(dir: string, bundle: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const found: string[] = [];
  for (const name of names) {
    const m = /\.(\d{3})$/.exec(name);
    const isPart = m !== null && Number(m[1]) >= 1 && name === partName(bundle, Number(m[1]));
    if (!isPart && name !== partsFileName(bundle) && name !== bundle) continue;
    const st = await stat(join(dir, name)).catch(() => undefined);
    if (st?.isFile()) found.push(name);
  }
  return found.sort();
}

/**
 * The part being written, to its temp file (hashed by the writer, over the blocks it writes), or
 * only hashed here (a part the run being resumed wrote).
 */
interface OpenPart {
  index: number;
  bytes: number;
  hash?: Hash;
  writer?: FileWriteStream;
  tmp?: string;
}

/**
 * The last stream of a split output (output.ts): everything written to it goes into the parts of
 * `out`, in order. Files of an earlier bundle of the same name (parts, parts.json, an unsplit
 * `out`) are removed before the first part is written, and listed in `removed`.
 *
 * On failure the parts this run wrote are removed, except when the disk filled: then the complete
 * ones stay, `stoppedAt` says where, and the caller records how to resume (pack.ts).
 */
export class SplitWriter extends Writable {
  readonly dir: string;
  readonly bundle: string;
  /** Every part so far (those of an earlier run being resumed included), in order. */
  readonly parts: PartRecord[] = [];
  /** Files of an earlier bundle removed before writing. */
  readonly removed: string[] = [];
  /** Hex sha256 and size of the whole bundle, once finished. */
  sha256: string | undefined;
  size = 0;
  /** The disk filled while part `index` was written; parts before it are complete and kept. */
  stoppedAt: { index: number; path: string; cause: Error } | undefined;
  /** An error of this writer's own (too many parts, a resumed part that came out differently). */
  failure: Error | undefined;
  /** Settles once the writer has finished or cleaned up after a failure. */
  readonly settled: Promise<void>;
  private settle!: () => void;
  /**
   * The whole bundle's sha256: taken with each part's from the blocks the part writers write, on
   * the hash thread for big parts, so the main thread hashes nothing. A resumed run also sees bytes
   * it does not write, and hashes the whole here (`totalHere`).
   */
  private readonly hasher: Hasher;
  private readonly total: ThreadHash | undefined;
  private readonly totalHere: Hash | undefined;
  private readonly pool = new BlockPool();
  private readonly hashThread = new HashThread();
  private current: OpenPart | undefined;
  /** The write in flight, if any. */
  private taking: Promise<void> = Promise.resolve();
  /** Parts this run renamed into place (removed again if the run fails). */
  private readonly written: string[] = [];

  constructor(
    readonly out: string,
    private readonly opts: SplitOptions,
  ) {
    super({ highWaterMark: 1 << 20 });
    this.dir = dirname(out);
    this.bundle = basename(out);
    this.settled = new Promise((resolve) => (this.settle = resolve));
    this.hasher = opts.partSize >= WRITE_BLOCK ? this.hashThread : inlineHasher;
    if ((opts.done?.length ?? 0) > 0) this.totalHere = createHash("sha256");
    else this.total = this.hasher.open();
  }

  get partsFile(): string {
    return join(this.dir, partsFileName(this.bundle));
  }

  override _construct(callback: (err?: Error | null) => void): void {
    this.removeEarlierFiles().then(
      () => callback(),
      (err: Error) => callback(err),
    );
  }

  private async removeEarlierFiles(): Promise<void> {
    const keep = new Set((this.opts.done ?? []).map((p) => p.name));
    for (const name of await earlierBundleFiles(this.dir, this.bundle)) {
      if (keep.has(name)) continue; // a resumed run's earlier parts, if they are still here
      await rm(join(this.dir, name), { force: true });
      this.removed.push(name);
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.taking = this.take(chunk);
    this.taking.then(
      () => callback(),
      (err: Error) => callback(err),
    );
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.finish().then(
      () => {
        void this.hashThread.close();
        this.settle();
        callback();
      },
      (err: Error) => callback(err),
    );
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.cleanUp(err)
      .finally(() => this.hashThread.close())
      .then(
        () => {
          this.settle();
          callback(err);
        },
        () => {
          this.settle();
          callback(err);
        },
      );
  }

  private async take(chunk: Buffer): Promise<void> {
    this.totalHere?.update(chunk);
    this.size += chunk.length;
    let offset = 0;
    while (offset < chunk.length) {
      if (this.destroyed) return; // Ctrl-C or a failure: cleanUp removes what was written
      const part = this.current ?? (await this.openPart(this.parts.length + 1));
      const piece = chunk.subarray(offset, offset + (this.opts.partSize - part.bytes));
      offset += piece.length;
      part.bytes += piece.length;
      part.hash?.update(piece);
      if (part.writer) await this.guard(part, copyIntoSink(part.writer, piece));
      if (part.bytes === this.opts.partSize) await this.closePart(part);
    }
  }

  /**
   * A write of part `part`: a full disk is remembered as where the pack stopped, and a system error
   * (which names no file when it comes from a write) is said with the part's name.
   */
  private async guard<T>(part: OpenPart, work: Promise<T>): Promise<T> {
    try {
      return await work;
    } catch (err) {
      const path = join(this.dir, partName(this.bundle, part.index));
      if (isDiskFull(err)) this.stoppedAt = { index: part.index, path, cause: err as Error };
      if (isSystemError(err) && !this.destroyed) {
        this.failure ??= new Error(`${path}: cannot write it (${writeErrorReason(err)})`, { cause: err });
      }
      throw err;
    }
  }

  private async openPart(index: number): Promise<OpenPart> {
    if (index > MAX_PARTS) {
      this.failure = new Error(
        `${this.out}: --split ${this.opts.partSize} makes more than ${MAX_PARTS} parts; choose a bigger size`,
      );
      throw this.failure;
    }
    const part: OpenPart = { index, bytes: 0 };
    this.current = part;
    if (index <= (this.opts.done?.length ?? 0)) {
      part.hash = createHash("sha256"); // written by the run being resumed: only checked
      return part;
    }
    const path = join(this.dir, partName(this.bundle, index));
    part.tmp = tempSibling(path);
    // The part's sha256 is taken on the hash thread, from the blocks on their way to the disk: the
    // main thread already hashes the whole bundle.
    const partHash = this.hasher.open();
    const total = this.total;
    const hashThread: Hasher = {
      open: () => ({
        update: async (block, length) => {
          await Promise.all([partHash.update(block, length), total?.update(block, length)]);
        },
        digest: () => partHash.digest(),
        drop: () => partHash.drop(),
      }),
    };
    part.writer = new FileWriteStream(part.tmp, {
      flags: "wx",
      mode: 0o644,
      pool: this.pool,
      hashThread,
      errorLabel: path,
    });
    part.writer.on("error", () => undefined); // seen through opened(), whenSpace() and finished()
    await this.guard(part, part.writer.opened());
    return part;
  }

  /** Finish part `part`: flushed to the disk, renamed into place, recorded. */
  private async closePart(part: OpenPart): Promise<void> {
    const name = partName(this.bundle, part.index);
    const record: PartRecord = { name, size: part.bytes, sha256: part.hash?.digest("hex") ?? "" };
    if (part.writer) {
      const path = join(this.dir, name);
      part.writer.end();
      await this.guard(part, finished(part.writer)); // FileWriteStream fdatasyncs before it finishes
      record.sha256 = part.writer.sha256!.slice("sha256:".length);
      trackTempPath(path); // a forced exit (second Ctrl-C) removes it like the temp files
      await rename(part.tmp!, path);
      this.written.push(path);
      part.writer = undefined;
      await syncDirectory(this.dir);
    } else {
      const earlier = this.opts.done![part.index - 1]!;
      if (earlier.sha256 !== record.sha256 || earlier.size !== record.size) {
        this.failure = new Error(
          `${this.out}: the resumed pack did not come out as the first run did (part ${partNumber(part.index)}: sha256 ${record.sha256}, the first run wrote ${earlier.sha256}); pack again without --resume`,
        );
        throw this.failure;
      }
    }
    this.parts.push(record);
    this.current = undefined;
  }

  private async finish(): Promise<void> {
    if (this.current) await this.closePart(this.current);
    if (this.parts.length < (this.opts.done?.length ?? 0)) {
      this.failure = new Error(
        `${this.out}: the resumed pack came out shorter than the first run (${this.parts.length} parts, the first run wrote ${this.opts.done!.length} already); pack again without --resume`,
      );
      throw this.failure;
    }
    this.sha256 = this.totalHere ? this.totalHere.digest("hex") : await this.total!.digest();
    const file: PartsFile = {
      airpackParts: PARTS_FORMAT_VERSION,
      tool: `airpack ${toolVersion()}`,
      bundle: this.bundle,
      size: this.size,
      sha256: this.sha256,
      partSize: this.opts.partSize,
      parts: this.parts,
    };
    const partsIndex = this.parts.length + 1; // a full disk here: every part is done
    try {
      await writeFileAtomic(this.partsFile, JSON.stringify(file, null, 2) + "\n");
    } catch (err) {
      if (isDiskFull(err)) this.stoppedAt = { index: partsIndex, path: this.partsFile, cause: err as Error };
      throw err;
    }
    for (const path of this.written) untrackTempPath(path);
  }

  /** Remove the parts this run kept after a full disk (when how to resume could not be recorded). */
  async removeKept(): Promise<void> {
    for (const path of this.written.splice(0)) await rm(path, { force: true });
  }

  /** After a failure: the part being written goes; the finished ones too, unless the disk filled. */
  private async cleanUp(err: Error | null): Promise<void> {
    // A write still in flight would rename or open a part after this cleaned up: let it stop first.
    await this.taking.catch(() => undefined);
    const part = this.current;
    this.current = undefined;
    if (part?.writer && !part.writer.closed) {
      const closed = once(part.writer, "close").catch(() => undefined);
      part.writer.destroy();
      await closed;
    }
    if (part?.tmp) await rm(part.tmp, { force: true });
    if (err === null && this.sha256 !== undefined) return; // finished, then destroyed
    const keep = this.stoppedAt !== undefined && this.parts.length > 0;
    if (keep) {
      for (const path of this.written) untrackTempPath(path);
      return;
    }
    this.stoppedAt = undefined;
    for (const path of this.written.splice(0)) await rm(path, { force: true });
    await rm(this.partsFile, { force: true }).catch(() => undefined);
  }
}

/** Make a rename in `dir` durable (best effort: some filesystems refuse to sync a directory). */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // vfat and some FUSE filesystems: the data itself was synced
  }
}

/**
 * How to go on with a split pack that stopped on a full disk: kept in the store (the cache
 * directory), not beside the parts, since that disk is the full one, and a record there could be
 * carried off with the parts and taken for a bundle.
 */
export interface ResumeRecord {
  airpackResume: 1;
  /** Absolute path of the bundle (-o). */
  out: string;
  sources: string[];
  /** airpack.json `created` of the first run; the resumed run writes the same bundle with it. */
  created: string;
  compress: string;
  level?: number;
  threads?: number;
  partSize: number;
  /** The parts written and kept (1…N−1). */
  parts: PartRecord[];
}

/** Where the resume record of output `out` lives in store `cacheDir`. */
export function resumeRecordPath(cacheDir: string, out: string): string {
  const key = createHash("sha256").update(resolvePath(out)).digest("hex").slice(0, 32);
  return join(cacheDir, "split-resume", `${key}.json`);
}

export async function readResumeRecord(path: string, out: string): Promise<ResumeRecord | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return undefined;
  }
  const rec = JSON.parse(text) as ResumeRecord;
  return rec.airpackResume === 1 && rec.out === resolvePath(out) ? rec : undefined;
}

export async function writeResumeRecord(path: string, rec: ResumeRecord): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, JSON.stringify(rec, null, 2) + "\n");
}

/** "parts 001–003 are" / "part 001 is". */
export function keptParts(count: number): string {
  return count === 1 ? "part 001 is" : `parts 001–${partNumber(count)} are`;
}
