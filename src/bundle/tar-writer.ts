import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import * as tar from "tar-stream";
import { STREAM_BUFFER } from "../util/streams";

/** Directories `path` needs that are not in `seen` yet, outermost first (added to `seen`). */
export function newParentDirs(path: string, seen: Set<string>): string[] {
  const parts = path.split("/").slice(0, -1);
  const dirs: string[] = [];
  for (let i = 1; i <= parts.length; i++) {
    const dir = parts.slice(0, i).join("/");
    if (seen.has(dir)) continue;
    seen.add(dir);
    dirs.push(dir);
  }
  return dirs;
}

/** Thin async wrapper over tar-stream's pack: one entry at a time, streamed. */
export class TarWriter {
  readonly pack = tar.pack({ highWaterMark: STREAM_BUFFER });
  private readonly dirs = new Set<string>();

  constructor(private readonly mtime: Date) {
    // Errors reach the caller through addStream() and the output's pipeline; a failed entry can make
    // the pack emit again after that pipeline let go of it, which must not crash the process.
    this.pack.on("error", () => undefined);
  }

  /** The tar byte stream (a Node Readable). */
  get output(): Readable {
    return this.pack as unknown as Readable;
  }

  private async ensureDirs(path: string): Promise<void> {
    for (const dir of newParentDirs(path, this.dirs)) {
      await new Promise<void>((resolve, reject) => {
        this.pack.entry({ name: `${dir}/`, type: "directory", mode: 0o755, mtime: this.mtime }, (err) =>
          err ? reject(err) : resolve(),
        );
      });
    }
  }

  async addBytes(path: string, bytes: Uint8Array): Promise<void> {
    await this.ensureDirs(path);
    await new Promise<void>((resolve, reject) => {
      this.pack.entry({ name: path, size: bytes.length, mode: 0o644, mtime: this.mtime }, Buffer.from(bytes), (err) =>
        err ? reject(err) : resolve(),
      );
    });
  }

  async addStream(path: string, size: number, data: Readable, signal?: AbortSignal): Promise<void> {
    await this.ensureDirs(path);
    const entry = this.pack.entry({ name: path, size, mode: 0o644, mtime: this.mtime }, (err) => {
      if (err) data.destroy(err);
    });
    await pipeline(data, entry, signal ? { signal } : {});
  }

  finalize(): void {
    this.pack.finalize();
  }

  abort(err: Error): void {
    this.pack.destroy(err);
  }
}
