import { spawn, spawnSync } from "node:child_process";
import { Duplex, PassThrough, type Transform } from "node:stream";
import { availableParallelism } from "node:os";
import { createGunzip, createGzip } from "node:zlib";
import { CompressStream, DecompressStream } from "zstd-napi";
import type { StreamFormat } from "./sniff";

export interface CompressOptions {
  level?: number;
  threads?: number;
}

export const defaultLevels: Record<Exclude<StreamFormat, "none">, number> = { gzip: 6, zstd: 3, xz: 6 };

export function defaultThreads(): number {
  return Math.max(1, availableParallelism());
}

let systemXzChecked: boolean | undefined;

/** Whether a usable `xz` binary is on PATH (AIRPACK_XZ=native forces lzma-native). */
export function hasSystemXz(): boolean {
  if (process.env.AIRPACK_XZ === "native") return false;
  if (systemXzChecked === undefined) {
    const probe = spawnSync("xz", ["--version"], { stdio: ["ignore", "pipe", "ignore"] });
    systemXzChecked = probe.status === 0 && /liblzma 5\.[2-9]/.test(probe.stdout.toString());
  }
  return systemXzChecked;
}

/**
 * Run a filter program as a Duplex. Its stderr becomes the error message when it exits non-zero,
 * so corrupt input surfaces as one clear line.
 */
function spawnFilter(cmd: string, args: string[], what: string): Duplex {
  const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d: string) => {
    if (stderr.length < 4096) stderr += d;
  });
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  const duplex = Duplex.from({ writable: child.stdin, readable: out });
  let exited = false;
  let stdoutEnded = false;
  let code: number | null = null;
  const finish = (): void => {
    if (!exited || !stdoutEnded) return;
    if (code === 0) out.end();
    else {
      const detail =
        stderr
          .trim()
          .split("\n")
          .pop()
          ?.replace(/^xz: \(stdin\): /, "") ?? `exit ${String(code)}`;
      out.destroy(new Error(`${what}: ${detail || `exit ${String(code)}`}`));
    }
  };
  child.stdout.on("data", (chunk: Buffer) => {
    if (!out.write(chunk)) {
      child.stdout.pause();
      out.once("drain", () => child.stdout.resume());
    }
  });
  child.stdout.on("end", () => {
    stdoutEnded = true;
    finish();
  });
  child.on("error", (err) => out.destroy(new Error(`${what}: cannot run ${cmd}: ${err.message}`)));
  child.on("exit", (c, signal) => {
    exited = true;
    code = signal ? 128 : c;
    finish();
  });
  // EPIPE on stdin when the program already failed: the exit handler reports the real cause.
  child.stdin.on("error", () => undefined);
  duplex.on("close", () => {
    if (!exited) child.kill("SIGTERM");
  });
  return duplex;
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
      return new CompressStream({
        compressionLevel: opts.level ?? defaultLevels.zstd,
        nbWorkers: opts.threads ?? defaultThreads(),
        checksumFlag: true,
      });
    case "xz": {
      const level = opts.level ?? defaultLevels.xz;
      const threads = opts.threads ?? defaultThreads();
      if (hasSystemXz()) return spawnFilter("xz", ["-z", "-c", `-${level}`, `-T${threads}`, "-q"], "xz");
      return lzma().createCompressor({ preset: level, threads });
    }
  }
}

/** Decompressor for one stream format. `what` names the input in error messages. */
export function decompressStream(format: StreamFormat, what: string): Duplex | Transform {
  switch (format) {
    case "none":
      return new PassThrough({ highWaterMark: 1 << 20 });
    case "gzip":
      return createGunzip({ chunkSize: 1 << 16 });
    case "zstd":
      return new DecompressStream();
    case "xz":
      if (hasSystemXz()) return spawnFilter("xz", ["-d", "-c", "-q", "-T1"], `${what}: corrupt xz stream`);
      return lzma().createDecompressor();
  }
}
