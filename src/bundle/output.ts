import { createHash } from "node:crypto";
import { rm, rename, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { createWriteStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import { Transform, type Readable, type TransformCallback, type Writable } from "node:stream";
import { compressStream, type CompressOptions } from "../compression/codecs";
import type { StreamFormat } from "../compression/sniff";
import { tempSibling } from "../util/atomic";
import { progressCounter, type ProgressListener } from "../util/progress";
import { FileWriteStream } from "../util/file-writer";
import { HashThread } from "../util/hash-thread";
import type { PartRecord } from "./parts";
import { SplitWriter, type SplitOptions } from "./split";

export interface OutputOptions extends CompressOptions {
  format: StreamFormat;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
  /** Cut the output into parts (split.ts); `out` is then the bundle's name, which no file gets. */
  split?: SplitOptions;
  /** Given the split writer before it is used, to see where it stopped if it fails. */
  onSplitWriter?: (writer: SplitWriter) => void;
}

export interface OutputResult {
  /** Bytes written (after compression). */
  bytes: number;
  /** Hex sha256 of those bytes. */
  sha256: string;
  /** A split output's parts, and the files of an earlier bundle of that name it removed. */
  parts?: PartRecord[];
  partsFile?: string;
  removed?: string[];
}

/** Counts (for progress) and hashes the bytes that pass; `hash` false when the next stream hashes them. */
function countAndHash(onProgress: ProgressListener | undefined, hash: boolean) {
  const counter = onProgress ? progressCounter("output", "write", undefined, onProgress) : undefined;
  const sha256 = hash ? createHash("sha256") : undefined;
  let bytes = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      bytes += chunk.length;
      sha256?.update(chunk);
      counter?.advance(chunk.length);
      cb(null, chunk);
    },
    flush(cb: TransformCallback) {
      counter?.done();
      cb();
    },
  });
  return { stream, result: (): OutputResult => ({ bytes, sha256: sha256?.digest("hex") ?? "" }) };
}

/** Fail early, and in words, when an output file cannot be created where it is asked for. */
export async function checkOutputParent(out: string): Promise<void> {
  if (out === "-") return;
  const parent = dirname(out);
  const st = await stat(parent).catch(() => undefined);
  if (!st) throw new Error(`${out}: cannot write it, ${parent} does not exist`);
  if (!st.isDirectory()) throw new Error(`${out}: cannot write it, ${parent} is not a directory`);
}

/**
 * Compress `data` into `out` ("-" = stdout). A file appears under its name only when complete:
 * it is written to a temp sibling and renamed; on error or abort the temp file is removed.
 */
export async function writeOutput(data: Readable, out: string, opts: OutputOptions): Promise<OutputResult> {
  const compressor = compressStream(opts.format, opts);
  const signalOpt = opts.signal ? { signal: opts.signal } : {};
  if (out === "-") {
    const counted = countAndHash(opts.onProgress, true);
    await pipeline(data, compressor, counted.stream, process.stdout as Writable, signalOpt);
    return counted.result();
  }
  if (opts.split) {
    // Each part is renamed into place when complete; the writer removes what a failure leaves, and
    // hashes the parts and the whole.
    const counted = countAndHash(opts.onProgress, false);
    const parts = new SplitWriter(out, opts.split);
    opts.onSplitWriter?.(parts);
    try {
      await pipeline(data, compressor, counted.stream, parts, signalOpt);
    } catch (err) {
      data.destroy();
      await parts.settled;
      throw err;
    }
    await parts.settled;
    return {
      bytes: parts.size,
      sha256: parts.sha256!,
      parts: parts.parts,
      partsFile: parts.partsFile,
      removed: parts.removed,
    };
  }
  // Devices and pipes (/dev/null, a FIFO) are written in place: renaming over them would replace them.
  const existing = await stat(out).catch(() => undefined);
  // The writer may have failed while we looked: a pipeline from a destroyed stream would never settle.
  if (data.destroyed) throw new Error(`${out}: nothing written (the output was abandoned before writing began)`);
  if (existing && !existing.isFile() && !existing.isDirectory()) {
    const counted = countAndHash(opts.onProgress, true);
    await pipeline(data, compressor, counted.stream, createWriteStream(out, { flags: "w" }), signalOpt);
    return counted.result();
  }
  const tmp = tempSibling(out);
  // The file's writer hashes the blocks it writes, on the hash thread.
  const counted = countAndHash(opts.onProgress, false);
  const hashThread = new HashThread();
  let sha256: string;
  try {
    const file = new FileWriteStream(tmp, { flags: "wx", mode: 0o644, hashThread });
    await pipeline(data, compressor, counted.stream, file, signalOpt);
    sha256 = file.sha256!.slice("sha256:".length);
    await rename(tmp, out);
  } catch (err) {
    data.destroy();
    await rm(tmp, { force: true });
    throw err;
  } finally {
    await hashThread.close();
  }
  return { bytes: counted.result().bytes, sha256 };
}
