import { rm, rename, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { createWriteStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import type { Readable, Writable } from "node:stream";
import { compressStream, type CompressOptions } from "../compression/codecs";
import type { StreamFormat } from "../compression/sniff";
import { tempSibling } from "../util/atomic";
import { meter, type ProgressListener } from "../util/progress";
import { FileWriteStream } from "../util/file-writer";

export interface OutputOptions extends CompressOptions {
  format: StreamFormat;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
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
export async function writeOutput(data: Readable, out: string, opts: OutputOptions): Promise<{ bytes: number }> {
  let bytes = 0;
  const counter = meter("output", "write", undefined, (ev) => {
    if (ev.type === "advance") bytes += ev.bytes;
    opts.onProgress?.(ev);
  });
  const compressor = compressStream(opts.format, opts);
  const signalOpt = opts.signal ? { signal: opts.signal } : {};
  if (out === "-") {
    await pipeline(data, compressor, counter, process.stdout as Writable, signalOpt);
    return { bytes };
  }
  // Devices and pipes (/dev/null, a FIFO) are written in place: renaming over them would replace them.
  const existing = await stat(out).catch(() => undefined);
  // The writer may have failed while we looked: a pipeline from a destroyed stream would never settle.
  if (data.destroyed) throw new Error(`${out}: nothing written (the output was abandoned before writing began)`);
  if (existing && !existing.isFile() && !existing.isDirectory()) {
    await pipeline(data, compressor, counter, createWriteStream(out, { flags: "w" }), signalOpt);
    return { bytes };
  }
  const tmp = tempSibling(out);
  try {
    const file = new FileWriteStream(tmp, { flags: "wx", mode: 0o644 });
    await pipeline(data, compressor, counter, file, signalOpt);
    await rename(tmp, out);
  } catch (err) {
    data.destroy();
    await rm(tmp, { force: true });
    throw err;
  }
  return { bytes };
}
