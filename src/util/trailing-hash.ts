import { constants } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { alignedBuffers, alignUp, directIoWanted, openMaybeDirect } from "./direct-io";
import { HashThread } from "./hash-thread";

/** Bytes read back at a time (a multiple of ALIGN, so direct reads stay aligned). */
const BLOCK = 4 << 20;

/**
 * The sha256 of a file written out of order (a bundle written in place, layers side by side): it
 * follows the writers, reading back and hashing each stretch once everything before it is written,
 * while the rest is still being written, so that at the end only what was written last is left to
 * hash. Reads use direct I/O where the filesystem allows it (from the disk, not the page cache) into
 * shared blocks the hash thread hashes while the next one is read.
 */
export class TrailingHash {
  /** Written stretches not yet merged into the prefix, by start. */
  private readonly pending = new Map<number, number>();
  /** Bytes 0 … prefix are written. */
  private prefix = 0;
  private wake: (() => void) | undefined;
  private stopped: Error | undefined;
  private readonly thread = new HashThread();
  private readonly done: Promise<string>;

  constructor(
    private readonly path: string,
    private readonly size: number,
  ) {
    this.done = this.run();
    this.done.catch(() => undefined); // seen through result()
  }

  /** Bytes start … end of the file are written (and stay as they are). */
  written(start: number, end: number): void {
    if (end <= start) return;
    this.pending.set(start, Math.max(end, this.pending.get(start) ?? end));
    for (let next = this.pending.get(this.prefix); next !== undefined; next = this.pending.get(this.prefix)) {
      this.pending.delete(this.prefix);
      this.prefix = Math.max(this.prefix, next);
    }
    this.wake?.();
  }

  /** The hex sha256, once every byte was marked written. */
  result(): Promise<string> {
    return this.done;
  }

  /** Stop reading (the file is being thrown away). */
  async stop(): Promise<void> {
    this.stopped ??= new Error(`${this.path}: read-back stopped`);
    this.wake?.();
    await this.done.catch(() => undefined);
  }

  private async until(bytes: number): Promise<void> {
    while (this.prefix < bytes && !this.stopped) await new Promise<void>((resolve) => (this.wake = resolve));
    this.wake = undefined;
  }

  private async run(): Promise<string> {
    let handle: FileHandle | undefined;
    try {
      await this.until(Math.min(BLOCK, this.size)); // nothing to read before the first block is written
      if (this.stopped) throw this.stopped;
      let direct: boolean;
      ({ handle, direct } = await openMaybeDirect(this.path, constants.O_RDONLY, 0, directIoWanted()));
      const hash = this.thread.open();
      const blocks = alignedBuffers(BLOCK, 2, true);
      const hashing: (Promise<void> | undefined)[] = [];
      for (let at = 0, i = 0; at < this.size; i ^= 1) {
        // A whole block when there is one; else what is written, cut where a direct read may end.
        const want = Math.min(BLOCK, this.size - at);
        if (this.prefix - at < want) await this.until(at + want);
        if (this.stopped) throw this.stopped;
        await hashing[i]; // the thread is done with this block
        const block = blocks[i]!;
        const length = direct ? alignUp(want) : want;
        let bytesRead: number;
        try {
          ({ bytesRead } = await handle.read(block, 0, length, at));
        } catch (err) {
          // Some filesystems take O_DIRECT at open and refuse the read: go on through the page cache.
          if (!direct || (err as NodeJS.ErrnoException).code !== "EINVAL") throw err;
          await handle.close();
          ({ handle, direct } = await openMaybeDirect(this.path, constants.O_RDONLY, 0, false));
          ({ bytesRead } = await handle.read(block, 0, want, at));
        }
        if (bytesRead < want) throw new Error(`${this.path}: ended at ${at + bytesRead} of ${this.size} bytes`);
        hashing[i] = hash.update(block, want);
        at += want;
      }
      await Promise.all(hashing);
      return await hash.digest();
    } finally {
      await handle?.close();
      await this.thread.close();
    }
  }
}
