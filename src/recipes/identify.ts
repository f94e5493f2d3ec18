import { createHash, type Hash } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";
import { Writable } from "node:stream";
import type { Candidate } from "./encoders";
import type { RawDeflateEncoder } from "../compression/raw-deflate";
import { crc32 } from "../compression/crc32";
import { gzipTrailer, parseGzipHeader } from "./gzip-header";
import type { GzipRecipe } from "./format";

/** The part of a file to identify: a whole blob (digest checked at the end) or one member of it. */
export interface GzipOriginal {
  size: number;
  /** sha256 of the whole blob; leave out for one member of a multi-member blob (checked as a whole later). */
  digest?: string;
  /** Where the member starts in the file (default 0). */
  offset?: number;
}

const READ_CHUNK = 256 * 1024;

/** Thrown out of an encoder's output callback to stop a dead trial mid-chunk. */
const TRIAL_OVER = Symbol("trial over");

function runTrial(t: Trial, step: (encoder: RawDeflateEncoder) => void): void {
  try {
    step(t.encoder);
  } catch (err) {
    if (err !== TRIAL_OVER) throw err;
  }
}

/**
 * Compares one candidate's output with the original deflate body as it is produced. A dead trial
 * lets go of its encoder and buffer at once: most die within the first block, and ~30 candidates
 * run side by side.
 */
class Trial {
  private living = true;
  private produced = 0;
  /** Bytes of the next emission already checked through peek(). */
  private peeked = 0;
  private buf?: Buffer;
  private bufStart = 0;
  private bufLen = 0;
  private encoderRef?: RawDeflateEncoder;
  readonly hash: Hash = createHash("sha256");

  constructor(
    readonly candidate: Candidate,
    private readonly fd: number,
    header: Buffer,
    private readonly bodyStart: number,
    private readonly bodyLength: number,
  ) {
    this.hash.update(header);
    this.encoderRef = candidate.create(
      (out) => this.compare(out),
      (partial) => this.peek(partial),
    );
  }

  get alive(): boolean {
    return this.living;
  }

  get encoder(): RawDeflateEncoder {
    if (!this.encoderRef) throw new Error("identify: encoder used after its trial ended");
    return this.encoderRef;
  }

  private die(): void {
    this.living = false;
    this.encoderRef = undefined;
    this.buf = undefined;
  }

  /** Output the encoder has not emitted yet but will (a growing prefix of its next emission). */
  private peek(partial: Uint8Array): void {
    if (!this.living || partial.length <= this.peeked) return;
    if (!this.matches(partial, this.peeked, this.produced + this.peeked)) this.stop();
    this.peeked = partial.length;
  }

  private compare(out: Uint8Array): void {
    if (!this.living) return;
    if (!this.matches(out, Math.min(this.peeked, out.length), this.produced + this.peeked)) this.stop();
    this.peeked = 0;
    this.hash.update(out);
    this.produced += out.length;
  }

  /** Drop this trial and unwind its encoder (caught in runTrial). */
  private stop(): never {
    this.die();
    throw TRIAL_OVER;
  }

  /** Whether out[from..] equals the original body from byte `pos` on. */
  private matches(out: Uint8Array, from: number, pos: number): boolean {
    if (pos - from + out.length > this.bodyLength) return false;
    this.buf ??= Buffer.alloc(READ_CHUNK);
    let i = from;
    while (i < out.length) {
      const at = pos + (i - from);
      if (at < this.bufStart || at >= this.bufStart + this.bufLen) {
        this.bufStart = at;
        this.bufLen = readSync(this.fd, this.buf, 0, Math.min(READ_CHUNK, this.bodyLength - at), this.bodyStart + at);
      }
      const n = Math.min(out.length - i, this.bufStart + this.bufLen - at);
      const off = at - this.bufStart;
      if (Buffer.compare(out.subarray(i, i + n), this.buf.subarray(off, off + n)) !== 0) return false;
      i += n;
    }
    return true;
  }

  get complete(): boolean {
    return this.alive && this.produced === this.bodyLength;
  }
}

/**
 * Feed it the uncompressed layer; it runs every candidate encoder side by side, dropping each at
 * its first differing byte. `result()` names the candidate that reproduced the whole blob, after
 * checking the rebuilt blob's sha256 against the original digest.
 */
export class GzipIdentifier extends Writable {
  private readonly trials: Trial[] = [];
  private readonly fd: number;
  private header: Buffer = Buffer.alloc(0);
  private fdClosed = false;
  private crc = 0;
  private size = 0;
  private match?: GzipRecipe;

  constructor(
    originalFile: string,
    private readonly original: GzipOriginal,
    candidates: Candidate[],
  ) {
    super({ highWaterMark: 1 << 20 });
    this.fd = openSync(originalFile, "r");
    const offset = original.offset ?? 0;
    const head = Buffer.alloc(Math.min(64 * 1024, original.size));
    readSync(this.fd, head, 0, head.length, offset);
    const info = parseGzipHeader(head);
    if (!info || original.size < info.length + 8) return;
    this.header = head.subarray(0, info.length);
    const bodyLength = original.size - info.length - 8;
    for (const c of candidates) this.trials.push(new Trial(c, this.fd, this.header, offset + info.length, bodyLength));
  }

  /** True while some candidate still matches (callers may stop feeding when false). */
  get hopeful(): boolean {
    return this.trials.some((t) => t.alive);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.crc = crc32(chunk, this.crc);
    this.size += chunk.length;
    try {
      for (const t of this.trials) if (t.alive) runTrial(t, (e) => e.write(chunk));
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    try {
      for (const t of this.trials) if (t.alive) runTrial(t, (e) => e.end());
      const trailer = gzipTrailer(this.crc, this.size);
      const tail = Buffer.alloc(8);
      readSync(this.fd, tail, 0, 8, (this.original.offset ?? 0) + this.original.size - 8);
      if (Buffer.compare(trailer, tail) === 0) {
        for (const t of this.trials) {
          if (!t.complete) continue;
          // Only a rebuild whose sha256 equals the manifest's digest counts (a member: see identifyMembers).
          const digest = this.original.digest;
          if (digest !== undefined && `sha256:${t.hash.update(trailer).digest("hex")}` !== digest) continue;
          this.match = {
            format: "gzip",
            encoder: t.candidate.id,
            family: t.candidate.family,
            level: t.candidate.level,
            versions: t.candidate.versions,
            header: this.header.toString("base64"),
          };
          break;
        }
      }
      cb();
    } catch (err) {
      cb(err as Error);
    } finally {
      this.close();
    }
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.close();
    cb(err);
  }

  private close(): void {
    if (this.fdClosed) return;
    this.fdClosed = true;
    closeSync(this.fd);
  }

  result(): GzipRecipe | undefined {
    return this.match;
  }
}

/** "go-flate-6", or "go-flate-6 + gnu-gzip-9 (2 members)" for a multi-member blob. */
export function describeRecipe(recipe: GzipRecipe): string {
  if (!recipe.members) return recipe.encoder;
  const ids = [...new Set(recipe.members.map((m) => m.encoder))];
  return `${ids.join(" + ")} (${recipe.members.length} members)`;
}
