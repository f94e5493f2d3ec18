import { randomBytes } from "node:crypto";
import { mkdtemp, open, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { trackTempPath } from "./leftovers";
import { dirname, basename, join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createWriteStream } from "node:fs";

/** A sibling temp name, so the final rename stays on one filesystem (removed on a forced exit). */
export function tempSibling(path: string): string {
  return trackTempPath(join(dirname(path), `.${basename(path)}.airpack-tmp-${randomBytes(6).toString("hex")}`));
}

/** A new temp directory under the OS temp dir (removed on a forced exit). */
export async function makeTempDir(prefix: string): Promise<string> {
  return trackTempPath(await mkdtemp(join(tmpdir(), prefix)));
}

/** Write bytes to `path` atomically: temp file, fsync, rename. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = tempSibling(path);
  try {
    const fh = await open(tmp, "wx", 0o644);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Stream into a file; on any error the partial file is removed. */
export async function streamToFile(data: Readable, path: string, signal?: AbortSignal): Promise<void> {
  try {
    await pipeline(data, createWriteStream(path, { flags: "wx", mode: 0o644 }), signal ? { signal } : {});
  } catch (err) {
    await rm(path, { force: true });
    throw err;
  }
}
