import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { trackChild } from "../util/leftovers";
import { Duplex, PassThrough, type Transform } from "node:stream";
import { availableParallelism } from "node:os";
import { createGunzip, createGzip } from "node:zlib";
import type * as ZstdNapi from "zstd-napi";
import type * as ZstdBinding from "zstd-napi/binding";
import type { StreamFormat } from "./sniff";

export interface CompressOptions {
  level?: number;
  threads?: number;
}

export const defaultLevels: Record<Exclude<StreamFormat, "none">, number> = { gzip: 6, zstd: 3, xz: 6 };

export function defaultThreads(): number {
  return Math.max(1, availableParallelism());
}

/**
 * Uncompressed bytes per xz block that pack writes (docs/bundle-format.md, "Seekable .tar.xz"): serve
 * decodes a blob from the block it starts in, so a smaller block starts a blob sooner and costs ratio
 * (8 MiB: +2.2 % on 200 MB of /usr against one block, +1.2 % against the 24 MiB xz -6 -T2 picks).
 * Pinned, and always the multi-threaded encoder, so the bytes do not depend on the core count.
 */
export const XZ_BLOCK_BYTES = 8 * 1024 * 1024;

let systemXzChecked: boolean | undefined;
let systemXzForcesThreads = false;

/** Whether a usable `xz` binary is on PATH (AIRPACK_XZ=native forces lzma-native). */
export function hasSystemXz(): boolean {
  if (process.env.AIRPACK_XZ === "native") return false;
  if (systemXzChecked === undefined) {
    const probe = spawnSync("xz", ["--version"], { stdio: ["ignore", "pipe", "ignore"] });
    systemXzChecked = probe.status === 0 && /liblzma 5\.[2-9]/.test(probe.stdout.toString());
    // -T+N (xz ≥ 5.4) keeps the multi-threaded encoder with one thread; -T1 alone would switch to
    // the single-threaded one, whose block headers differ.
    systemXzForcesThreads = /liblzma 5\.([4-9]|\d\d)/.test(probe.stdout.toString());
  }
  return systemXzChecked;
}

/**
 * Run a filter program (xz) as a Duplex. Its stderr becomes the error message when it exits
 * non-zero, so corrupt input surfaces as one clear line rather than as EPIPE.
 */
const COALESCE_BYTES = 1 << 20;

class ChildFilter extends Duplex {
  private readonly child: ChildProcessWithoutNullStreams;
  private stderr = "";
  private stdinBroken = false;
  private exitCode: number | null | undefined;
  private stdoutEnded = false;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private flushScheduled = false;

  constructor(
    cmd: string,
    args: string[],
    private readonly errorLabel: string,
  ) {
    super({ readableHighWaterMark: 1 << 20, writableHighWaterMark: 1 << 20 });
    // XZ_OPT and XZ_DEFAULTS could change the bytes (a --block-size, a check): bundles must not vary with them.
    const env = { ...process.env };
    delete env.XZ_OPT;
    delete env.XZ_DEFAULTS;
    this.child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], env });
    trackChild(this.child);
    this.child.stderr.setEncoding("utf8");
    this.child.stderr.on("data", (d: string) => {
      if (this.stderr.length < 4096) this.stderr += d;
    });
    // xz writes 8 KiB at a time; merging its pieces cuts the per-chunk cost of every later stage.
    this.child.stdout.on("data", (chunk: Buffer) => {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.pendingBytes >= COALESCE_BYTES) this.flushPending();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flushPending());
      }
    });
    this.child.stdout.on("end", () => {
      this.flushPending();
      this.stdoutEnded = true;
      this.settle();
    });
    this.child.stdin.on("error", () => {
      // EPIPE: the program stopped reading; its exit status tells why.
      this.stdinBroken = true;
      this.child.stdin.emit("drain");
    });
    this.child.on("error", (err) => this.destroy(new Error(`${errorLabel}: cannot run ${cmd}: ${err.message}`)));
    this.child.on("exit", (code, signal) => {
      this.exitCode = signal ? 128 : code;
      this.settle();
    });
  }

  private flushPending(): void {
    this.flushScheduled = false;
    if (this.pendingBytes === 0 || this.destroyed) return;
    const chunk = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    if (!this.push(chunk)) this.child.stdout.pause();
  }

  private settle(): void {
    if (this.exitCode === undefined || !this.stdoutEnded || this.destroyed) return;
    if (this.exitCode === 0) {
      this.push(null);
      return;
    }
    const last = this.stderr.trim().split("\n").pop() ?? "";
    const detail = last.replace(/^xz: \(stdin\): /, "") || `exit ${String(this.exitCode)}`;
    this.destroy(new Error(`${this.errorLabel}: ${detail}`));
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.stdinBroken || this.child.stdin.write(chunk)) cb();
    else this.child.stdin.once("drain", () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.stdinBroken) this.child.stdin.end();
    cb();
  }

  override _read(): void {
    this.child.stdout.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.exitCode === undefined) this.child.kill("SIGTERM");
    cb(err);
  }
}

function spawnFilter(cmd: string, args: string[], errorLabel: string): Duplex {
  return new ChildFilter(cmd, args, errorLabel);
}

function zstdBinding(): typeof ZstdBinding {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require("zstd-napi/binding") as typeof ZstdBinding;
}

/**
 * zstd decompression that waits for its reader. zstd-napi's DecompressStream pushes everything one
 * input chunk inflates to before it returns (a 1 MiB chunk of a zstd bomb is tens of GB), so memory
 * would follow the compression ratio; this one stops producing as soon as push() says the reader
 * is full, and goes on from where it was when asked to read again. Output comes in pieces of at most
 * the library's recommended size (128 KiB).
 */
class ZstdDecoder extends Duplex {
  private readonly dctx: InstanceType<typeof ZstdBinding.DCtx>;
  private readonly outSize: number;
  private input?: Buffer;
  private written?: (err?: Error | null) => void;
  private inFrame = false;
  private paused = false;

  constructor() {
    super({ readableHighWaterMark: 1 << 20, writableHighWaterMark: 1 << 20 });
    const binding = zstdBinding();
    this.dctx = new binding.DCtx();
    this.outSize = binding.dStreamOutSize();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.input = chunk;
    this.written = cb;
    this.decode();
  }

  /** Decode the input at hand until it is used up or the reader is full. */
  private decode(): void {
    try {
      while (this.input) {
        const out = Buffer.allocUnsafe(this.outSize);
        const [ret, produced, consumed] = this.dctx.decompressStream(out, this.input);
        this.input = this.input.subarray(consumed);
        this.inFrame = ret !== 0;
        // Done with this chunk once it is consumed and the decoder holds nothing more back.
        if (this.input.length === 0 && (produced < out.length || ret === 0)) this.input = undefined;
        if (produced > 0 && !this.push(out.subarray(0, produced)) && this.input) {
          this.paused = true;
          return;
        }
      }
    } catch (err) {
      const cb = this.written;
      this.written = undefined;
      this.input = undefined;
      (cb ?? ((e: Error) => this.destroy(e)))(err as Error);
      return;
    }
    const cb = this.written;
    this.written = undefined;
    cb?.();
  }

  override _read(): void {
    if (!this.paused) return;
    this.paused = false;
    // Through the event loop, not straight on: a reader that takes each piece at once (verify's
    // drain) would otherwise keep decoding one input chunk in a chain of next-ticks for as long as
    // a bomb lasts, and signals and timers (Ctrl-C, the grace period) would never get their turn.
    setImmediate(() => {
      if (!this.destroyed) this.decode();
    });
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.inFrame) {
      cb(new Error("Stream ended in middle of compressed data frame"));
      return;
    }
    this.push(null);
    cb();
  }
}

function zstd(): typeof ZstdNapi {
  // Loaded lazily: a native addon, and most commands never touch zstd (measured ~3 ms at start-up).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require("zstd-napi") as typeof ZstdNapi;
}

function lzma(): typeof import("lzma-native") {
  // Loaded lazily: only needed when the system xz is missing.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require("lzma-native") as typeof import("lzma-native");
}

export function compressStream(format: StreamFormat, opts: CompressOptions = {}): Duplex | Transform {
  switch (format) {
    case "none":
      return new PassThrough({ highWaterMark: 1 << 20 });
    case "gzip":
      return createGzip({ level: opts.level ?? defaultLevels.gzip, chunkSize: 1 << 16 });
    case "zstd":
      return new (zstd().CompressStream)({
        compressionLevel: opts.level ?? defaultLevels.zstd,
        nbWorkers: opts.threads ?? defaultThreads(),
        checksumFlag: true,
      });
    case "xz": {
      const level = opts.level ?? defaultLevels.xz;
      const threads = opts.threads ?? defaultThreads();
      if (hasSystemXz()) {
        const t = systemXzForcesThreads ? `-T+${threads}` : `-T${Math.max(2, threads)}`;
        return spawnFilter("xz", ["-z", "-c", `-${level}`, t, `--block-size=${XZ_BLOCK_BYTES}`, "-q"], "xz");
      }
      const l = lzma();
      return l.createCompressor({ preset: level, threads, blockSize: XZ_BLOCK_BYTES, check: l.CHECK_CRC64 });
    }
  }
}

/** Decompressor for one stream format. `what` names the input in error messages. */
export function decompressStream(format: StreamFormat, errorLabel: string): Duplex | Transform {
  switch (format) {
    case "none":
      return new PassThrough({ highWaterMark: 1 << 20 });
    case "gzip":
      return createGunzip({ chunkSize: 1 << 16 });
    case "zstd":
      return new ZstdDecoder();
    case "xz":
      if (hasSystemXz())
        return spawnFilter("xz", ["-d", "-c", "-q", `-T${defaultThreads()}`], `${errorLabel}: corrupt xz stream`);
      return lzma().createDecompressor();
  }
}

/** One xz decoder on one thread, for serve's block reads (many run at once; each holds ~9 MiB). */
export function xzBlockDecoder(errorLabel: string): Duplex | Transform {
  if (hasSystemXz()) return spawnFilter("xz", ["-d", "-c", "-q", "-T1"], `${errorLabel}: corrupt xz block`);
  return lzma().createDecompressor();
}

/**
 * A layer's decoder whose errors say which layer and what is wrong: node's zlib alone says only
 * "incorrect header check", and a layer whose media type says gzip may hold anything.
 */
export function decompressLayer(format: StreamFormat, errorLabel: string): Duplex | Transform {
  const decoder = decompressStream(format, errorLabel);
  if (format === "none") return decoder;
  const emit = decoder.emit.bind(decoder) as (event: string | symbol, ...args: unknown[]) => boolean;
  decoder.emit = ((event: string | symbol, ...args: unknown[]): boolean => {
    if (event !== "error") return emit(event, ...args);
    const err = args[0] instanceof Error ? args[0] : new Error(String(args[0]));
    if (err.message.startsWith(`${errorLabel}:`)) return emit("error", err);
    const truncated = /unexpected end|truncated|premature/i.test(err.message);
    const what = truncated
      ? `truncated ${format} data`
      : `not valid ${format} data, although its media type says ${format}`;
    return emit("error", new Error(`${errorLabel}: ${what} (${err.message})`, { cause: err }));
  }) as typeof decoder.emit;
  return decoder;
}
