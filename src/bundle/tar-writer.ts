import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import * as tar from "tar-stream";
import { STREAM_BUFFER } from "../util/streams";

/** Thin async wrapper over tar-stream's pack: one entry at a time, streamed. */
export class TarWriter {
  readonly pack = tar.pack({ highWaterMark: STREAM_BUFFER });
  private readonly dirs = new Set<string>();

  constructor(private readonly mtime: Date) {}

  /** The tar byte stream (a Node Readable). */
  get output(): Readable {
    return this.pack as unknown as Readable;
  }

  private async ensureDirs(path: string): Promise<void> {
    const parts = path.split("/").slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const dir = parts.slice(0, i).join("/");
      if (this.dirs.has(dir)) continue;
      this.dirs.add(dir);
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
