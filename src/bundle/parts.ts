/**
 * Split bundles: one bundle file cut into NAME.001, NAME.002, … (every part but the last exactly
 * `partSize` bytes), with NAME.parts.json beside them naming each part's size and sha256 and the
 * whole bundle's. The parts are the bundle's bytes and nothing else, so `cat NAME.0* | xzcat` is the
 * bundle. Format and the reasons for it: docs/parts-format.md. The writer is split.ts.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { Readable } from "node:stream";
import { MAX_JSON_BYTES, parseJson } from "../oci/descriptor";
import { schemaCheck } from "../oci/schema";
import { quote } from "../quote";
import { alignedBuffers } from "../util/direct-io";
import { fileErrorReason } from "../util/errors";
import { HashThread, inlineHasher, type Hasher, type ThreadHash } from "../util/hash-thread";

export const PARTS_FORMAT_VERSION = 1;
export const PARTS_SUFFIX = ".parts.json";
/** Part numbers have three digits, so that `cat NAME.0*` takes the parts in order. */
export const MAX_PARTS = 999;
const READ_CHUNK = 1 << 20;
/** Reads whose hashing may be under way at once (each in a block of its own). */
const BLOCKS = 4;
/** Bundles this big are hashed on the hash thread; smaller ones here (no thread to start). */
const THREAD_HASH_FROM = 8 << 20;
const PART_NUMBER = /\.(\d{3})$/;

export interface PartRecord {
  /** File name (no directory): NAME.001, NAME.002, … */
  name: string;
  size: number;
  /** Hex sha256 of the part's bytes. */
  sha256: string;
}

/** NAME.parts.json (docs/schemas/parts.json). */
export interface PartsFile {
  airpackParts: number;
  tool: string;
  /** File name of the whole bundle, which the parts make when put together (`site.tar.xz`). */
  bundle: string;
  /** Size and hex sha256 of the whole bundle. */
  size: number;
  sha256: string;
  /** Size of every part but the last, which holds the rest (1 … partSize bytes). */
  partSize: number;
  parts: PartRecord[];
}

const checkParts = schemaCheck<Omit<PartsFile, "tool"> & { tool?: string }>("parts.json");

/** "001" for part 1. */
export function partNumber(index: number): string {
  return String(index).padStart(3, "0");
}

/** File name of part `index` (from 1) of bundle file `bundle`. */
export function partName(bundle: string, index: number): string {
  return `${bundle}.${partNumber(index)}`;
}

export function partsFileName(bundle: string): string {
  return bundle + PARTS_SUFFIX;
}

/** Whether `name` is one file name, with no directory in it (what parts.json may name). */
function plainName(name: string): boolean {
  return name !== "" && name !== "." && name !== ".." && !/[/\\\0]/.test(name);
}

function isFile(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isFile() === true;
}

/** A split bundle found on disk, checked against its parts.json before a byte of it is read. */
export interface SplitBundle {
  /** "bundle PATH", as every error of a bundle starts (see bundleLabel in source.ts). */
  label: string;
  /** The parts.json file. */
  partsPath: string;
  file: PartsFile;
  /** Path of each part, in order. */
  paths: string[];
}

/**
 * Read and check NAME.parts.json: its own consistency (names, sizes, hashes). Whether the parts
 * on disk agree is checked by findSplitBundle.
 */
export function parsePartsFile(bytes: Uint8Array, label: string, shown: string): PartsFile {
  const bad = (why: string): Error => new Error(`${label}: ${shown} ${why}; resend ${shown}`);
  let doc: Record<string, unknown>;
  try {
    doc = parseJson(bytes, "parts file") as unknown as Record<string, unknown>;
  } catch (err) {
    throw bad(`is not a parts file (${(err as Error).message.replace(/^parts file: /, "")})`);
  }
  const version = doc.airpackParts;
  if (typeof version !== "number" || !Number.isInteger(version) || version < 1) {
    throw bad("is not an airpack parts file (no airpackParts version)");
  }
  if (version > PARTS_FORMAT_VERSION) {
    throw new Error(`${label}: ${shown} is parts format ${version}, newer than this airpack supports; upgrade airpack`);
  }
  let checked: ReturnType<typeof checkParts>;
  try {
    checked = checkParts(doc, "parts file");
  } catch (err) {
    throw bad(`is not a valid parts file (${(err as Error).message.replace(/^parts file: /, "")})`);
  }
  const { bundle, size, sha256, partSize, parts } = checked;
  if (!plainName(bundle)) {
    throw bad(`names the bundle ${quote(bundle)}: bundle and part names must be plain file names beside it`);
  }
  const n = parts.length;
  let sum = 0;
  const records: PartRecord[] = parts.map((part, i) => {
    const what = `part ${partNumber(i + 1)} of ${n}`;
    const name = part.name;
    if (!plainName(name)) {
      throw bad(`names ${what} ${quote(name)}: part names must be plain file names beside it`);
    }
    if (name !== partName(bundle, i + 1)) {
      throw bad(`names ${what} ${quote(name)}, not ${partName(bundle, i + 1)}`);
    }
    const last = i === n - 1;
    if ((!last && part.size !== partSize) || (last && (part.size < 1 || part.size > partSize))) {
      throw bad(
        `is inconsistent: ${what} is listed with ${part.size} bytes, but every part is ${partSize} bytes (partSize) except the last, which holds the rest`,
      );
    }
    sum += part.size;
    return { name, size: part.size, sha256: part.sha256 };
  });
  if (sum !== size) throw bad(`is inconsistent: its parts add up to ${sum} bytes, not ${size} as it says`);
  return {
    airpackParts: version,
    tool: checked.tool ?? "",
    bundle,
    size,
    sha256,
    partSize,
    parts: records,
  };
}

/** "parts 003 and 005 of 7 are" / "part 003 of 7 is". */
function partList(indexes: number[], n: number): string {
  const nums = indexes.map((i) => partNumber(i + 1));
  if (nums.length === 1) return `part ${nums[0]!} of ${n} is`;
  return `parts ${nums.slice(0, -1).join(", ")} and ${nums[nums.length - 1]!} of ${n} are`;
}

/**
 * When `path` names a split bundle — NAME.001, NAME.parts.json, or NAME when only its parts exist —
 * its parts.json, checked, and every part found at its listed size. Undefined for anything else (an
 * ordinary file, stdin, or NAME.001 alone: a bundle that fit in one part reads as it is). Throws,
 * naming the part or file, when the parts cannot make the bundle: before any byte is read.
 */
export function findSplitBundle(path: string): SplitBundle | undefined {
  if (path === "-") return undefined;
  const label = `bundle ${path}`;
  let partsPath: string;
  /** The bundle name the parts.json must be for (when the user named a part or the bundle). */
  let bundleName: string | undefined;
  let named: string | undefined;
  if (path.endsWith(PARTS_SUFFIX)) {
    partsPath = path;
  } else {
    const m = PART_NUMBER.exec(path);
    if (m) {
      const base = path.slice(0, -m[0].length);
      partsPath = base + PARTS_SUFFIX;
      if (!isFile(partsPath)) {
        // Not a part of anything, or a bundle that fit in one part: an ordinary file.
        if (m[1] === "001" ? !isFile(`${base}.002`) : !isFile(`${base}.001`)) return undefined;
        throw missingPartsFile(label, base);
      }
      bundleName = basename(base);
      named = basename(path);
    } else {
      if (statSync(path, { throwIfNoEntry: false }) !== undefined) return undefined;
      partsPath = path + PARTS_SUFFIX;
      if (!isFile(partsPath)) {
        if (!isFile(`${path}.001`)) return undefined; // no such file: said as for any other
        throw missingPartsFile(label, path);
      }
      bundleName = basename(path);
    }
  }
  const shown = basename(partsPath);
  let bytes: Buffer;
  try {
    const size = statSync(partsPath).size;
    if (size > MAX_JSON_BYTES) throw new Error(`${size} bytes, over the ${MAX_JSON_BYTES}-byte limit`);
    bytes = readFileSync(partsPath);
  } catch (err) {
    throw new Error(`${label}: cannot read ${shown} (${fileErrorReason(err)})`, { cause: err });
  }
  const file = parsePartsFile(bytes, label, shown);
  const n = file.parts.length;
  if (bundleName !== undefined && file.bundle !== bundleName) {
    throw new Error(`${label}: ${shown} is for ${file.bundle}, not ${bundleName}; resend ${shown}`);
  }
  if (named !== undefined && named !== file.parts[0]!.name) {
    const i = file.parts.findIndex((p) => p.name === named);
    throw new Error(
      i > 0
        ? `${label}: ${named} is part ${partNumber(i + 1)} of ${n} of a split bundle: name ${file.parts[0]!.name} or ${shown}`
        : `${label}: ${shown} lists ${n} part(s), and ${named} is not one of them`,
    );
  }
  const dir = dirname(partsPath);
  const paths = file.parts.map((p) => join(dir, p.name));
  const sizes = paths.map((p) => statSync(p, { throwIfNoEntry: false }));
  const missing = sizes.flatMap((st, i) => (st?.isFile() ? [] : [i]));
  if (missing.length > 0) {
    const names = missing.map((i) => file.parts[i]!.name).join(" ");
    throw new Error(`${label}: ${partList(missing, n)} missing: resend ${names}`);
  }
  for (const [i, st] of sizes.entries()) {
    const part = file.parts[i]!;
    const have = st!.size;
    if (have === part.size) continue;
    const what = `part ${partNumber(i + 1)} of ${n}`;
    throw new Error(
      have < part.size
        ? `${label}: ${what} is truncated (${have} of ${part.size} bytes): resend ${part.name}`
        : `${label}: ${what} is ${have} bytes, ${part.size} expected: resend ${part.name}`,
    );
  }
  // A part beyond the listed ones is from another run (or the parts.json is from another one).
  const extra = readdirSync(dir).filter((f) => {
    const m = PART_NUMBER.exec(f);
    return m !== null && f === partName(file.bundle, Number(m[1])) && Number(m[1]) > n;
  });
  if (extra.length > 0) {
    throw new Error(
      `${label}: ${extra.sort()[0]!} is beside ${shown}, which lists ${n} part(s): remove it, or resend ${shown} if it belongs`,
    );
  }
  return { label, partsPath, file, paths };
}

/** Parts of bundle `base` are here, its parts.json is not. */
function missingPartsFile(label: string, base: string): Error {
  const name = basename(base);
  return new Error(
    `${label}: ${partsFileName(name)} is missing (it lists the parts and their sha256): resend it, or check the bundle without it: cat ${name}.0* | airpack verify -`,
  );
}

/** Size of a bundle file, or of the whole of a split one (inspect shows it). */
export function bundleFileSize(path: string): number {
  return findSplitBundle(path)?.file.size ?? statSync(path).size;
}

/** Every parts stream opened in this process and not yet dealt with (see namingDamagedParts). */
const openedStreams = new Set<PartsStream>();

/**
 * The parts of a split bundle as one stream of the bundle's bytes. Each part is hashed as it is read,
 * on the same read that feeds the bundle reader, and checked at its end, before a byte of the next
 * part is passed on; the whole bundle's sha256 is checked before the stream ends. The hashing runs on
 * the hash thread for a bundle of some size (the main thread hashes every blob already): each read
 * lands in a shared block the thread hashes, and a copy of it goes on.
 */
class PartsStream extends Readable {
  private index = 0;
  /** Bytes of part `index` read so far. */
  private offset = 0;
  private handle: FileHandle | undefined;
  private readonly hasher: Hasher;
  private readonly thread: HashThread | undefined;
  private partHash: ThreadHash;
  private readonly total: ThreadHash;
  private readonly blocks = alignedBuffers(READ_CHUNK, BLOCKS, true);
  /** Per block: its hashing, which must be done before the block is read into again. */
  private readonly hashing: Promise<unknown>[] = [];
  private reads = 0;
  private reading: Promise<void> = Promise.resolve();
  private ended = false;
  /** A part that failed its check (or a read that failed), once found. */
  failure: Error | undefined;

  constructor(private readonly split: SplitBundle) {
    super({ highWaterMark: READ_CHUNK });
    if (split.file.size >= THREAD_HASH_FROM) this.thread = new HashThread();
    this.hasher = this.thread ?? inlineHasher;
    this.partHash = this.hasher.open();
    this.total = this.hasher.open();
    openedStreams.add(this);
  }

  override _read(): void {
    this.reading = this.readSome().catch((err: unknown) => {
      if (this.destroyed) return; // a read cut short by destroy() (see diagnose)
      this.failure = err instanceof Error ? err : new Error(String(err));
      this.destroy(this.failure);
    });
  }

  private async readSome(): Promise<void> {
    const { label, file, paths } = this.split;
    const part = file.parts[this.index];
    if (!part) {
      const sha256 = await this.total.digest();
      if (sha256 !== file.sha256) {
        const shown = basename(this.split.partsPath);
        throw new Error(
          `${label}: ${shown} is inconsistent: every part matches it, but together they hash to sha256 ${sha256}, not ${file.sha256} as it says; resend ${shown}`,
        );
      }
      this.ended = true;
      openedStreams.delete(this);
      this.push(null);
      return;
    }
    this.handle ??= await open(paths[this.index]!, "r");
    const slot = this.reads++ % BLOCKS;
    await this.hashing[slot];
    const block = this.blocks[slot]!;
    const want = Math.min(READ_CHUNK, part.size - this.offset);
    const { bytesRead } = await this.handle.read(block, 0, want, this.offset);
    if (this.destroyed) return;
    if (bytesRead === 0) {
      throw new Error(
        `${label}: ${this.partWhat()} ended after ${this.offset} of ${part.size} bytes while it was read: resend ${part.name}`,
      );
    }
    const chunk = Buffer.from(block.subarray(0, bytesRead)); // the block is read into again later
    const hashed = Promise.all([this.partHash.update(block, bytesRead), this.total.update(block, bytesRead)]);
    hashed.catch(() => undefined); // awaited before the block is used again, or at the part's end
    this.hashing[slot] = hashed;
    this.offset += bytesRead;
    // Checked before its last bytes go on, and so before any of the next part's do.
    if (this.offset === part.size) {
      await hashed;
      await this.endPart(await this.partHash.digest());
    }
    this.push(chunk);
  }

  private partWhat(index = this.index): string {
    return `part ${partNumber(index + 1)} of ${this.split.file.parts.length}`;
  }

  /** Part `index` was read to its end and hashed to `sha256`: it must be the part listed. */
  private async endPart(sha256: string): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
    const err = this.partError(this.index, sha256);
    if (err) throw err;
    this.index++;
    this.offset = 0;
    this.partHash = this.hasher.open();
  }

  private partError(index: number, sha256: string): Error | undefined {
    const { label, file } = this.split;
    const part = file.parts[index]!;
    if (sha256 === part.sha256) return undefined;
    const other = file.parts.findIndex((p) => p.sha256 === sha256);
    if (other >= 0) {
      return new Error(
        `${label}: ${part.name} holds ${this.partWhat(other)} (sha256 ${sha256}): the parts are out of order; rename it ${file.parts[other]!.name}`,
      );
    }
    return new Error(
      `${label}: ${this.partWhat(index)} is damaged (sha256 ${sha256}, expected ${part.sha256}): resend ${part.name}`,
    );
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const handle = this.handle;
    this.handle = undefined;
    void Promise.allSettled([handle?.close(), this.thread?.close()]).then(() => callback(err));
  }

  /**
   * Why a reader of this stream failed, if a part is to blame. The reader stops at the first thing
   * it cannot use, which for a damaged part is often before that part's end, where its hash is
   * known: the part being read is hashed again here, whole (at most one part), and its check decides.
   */
  async diagnose(): Promise<Error | undefined> {
    await this.reading;
    if (this.failure) return this.failure;
    if (this.ended || this.offset === 0) return undefined; // every part read so far checked out
    const part = this.split.file.parts[this.index]!;
    const hash = createHash("sha256");
    try {
      const handle = await open(this.split.paths[this.index]!, "r");
      try {
        const buf = Buffer.allocUnsafe(READ_CHUNK);
        for (let at = 0; at < part.size;) {
          const { bytesRead } = await handle.read(buf, 0, Math.min(READ_CHUNK, part.size - at), at);
          if (bytesRead === 0) return undefined; // shrunk since: the reader's own error says enough
          hash.update(buf.subarray(0, bytesRead));
          at += bytesRead;
        }
      } finally {
        await handle.close();
      }
    } catch {
      return undefined;
    }
    return this.partError(this.index, hash.digest("hex"));
  }
}

/**
 * The bytes of a split bundle (see findSplitBundle) as one stream, checked part by part as it is
 * read; undefined when `path` is not a split bundle.
 */
export function openParts(path: string): Readable | undefined {
  const split = findSplitBundle(path);
  return split ? new PartsStream(split) : undefined;
}

/**
 * Run a command that reads bundles; when it fails and a split bundle it read has a damaged or
 * misplaced part, that part is the error, by name ("part 003 of 7 is damaged …: resend NAME.003"),
 * rather than what the damage did to the bundle inside (a digest mismatch, a corrupt xz stream).
 */
export async function namingDamagedParts<T>(run: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  const before = new Set(openedStreams);
  const mine = (): PartsStream[] => [...openedStreams].filter((s) => !before.has(s));
  try {
    return await run();
  } catch (err) {
    if (!signal?.aborted) {
      for (const stream of mine()) {
        const why = await stream.diagnose();
        if (why) throw why;
      }
    }
    throw err;
  } finally {
    for (const stream of mine()) openedStreams.delete(stream);
  }
}
