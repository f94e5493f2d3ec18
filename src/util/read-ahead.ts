import { constants } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { Readable } from "node:stream";
import { alignDown, alignedBuffers, alignUp, openMaybeDirect } from "./direct-io";

/** Large reads: fewer, bigger chunks through every stage of the pipeline (measured: ~40% less CPU). */
export const READ_CHUNK = 1 << 20;
/** Reads kept in flight: the disk works on the next chunks while the consumer hashes or writes this one. */
const READS_IN_FLIGHT = 3;

export interface ReadAheadOptions {
  /** Read around the page cache (O_DIRECT, see direct-io.ts) when the filesystem allows it. */
  direct?: boolean;
}

/**
 * A file range as a stream of READ_CHUNK pieces, with several positional reads in flight.
 * fs.createReadStream reads one chunk at a time, so a reader → hasher → writer chain took turns
 * with the disk (profiled: the main thread idle ~40 % of a warm pack). A file that turns out
 * shorter than `end` just ends early; callers check sizes and digests.
 *
 * Direct reads go into aligned buffers at aligned offsets and are copied out, so a slot is free
 * again as soon as its read is in.
 */
export class ReadAheadStream extends Readable {
  private handle: FileHandle | undefined;
  private direct = false;
  private slots: Buffer[] = [];
  /** Next offset to read from; aligned in direct mode. */
  private next: number;
  /** Where reading stops; the file's size when the caller gave none (set once it is open). */
  private end: number;
  private readonly pending: Promise<Buffer>[] = [];
  private pumping = false;
  /** The page-cache handle used after the filesystem refused a direct read. */
  private buffered: Promise<FileHandle> | undefined;

  constructor(
    private readonly path: string,
    private readonly start = 0,
    end = Number.POSITIVE_INFINITY,
    private readonly opts: ReadAheadOptions = {},
  ) {
    super({ highWaterMark: READ_CHUNK * 2 });
    this.next = start;
    this.end = end;
  }

  override _construct(callback: (err?: Error | null) => void): void {
    openMaybeDirect(this.path, constants.O_RDONLY, 0, this.opts.direct === true).then(
      async ({ handle, direct }) => {
        this.handle = handle;
        this.direct = direct;
        if (direct) {
          this.slots = alignedBuffers(READ_CHUNK, READS_IN_FLIGHT);
          this.next = alignDown(this.start);
        }
        if (this.end === Number.POSITIVE_INFINITY) this.end = (await handle.stat()).size;
        callback();
      },
      (err: Error) => callback(err),
    );
  }

  override _read(): void {
    void this.pump();
  }

  /** Bytes [position, position + length) of the file, clipped to [start, end). */
  private readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
    const read = this.direct ? this.readAligned(handle, position, length) : this.readPlain(handle, position, length);
    read.catch(() => undefined); // surfaced when awaited in order; avoids an unhandled rejection after destroy
    return read;
  }

  private async readPlain(handle: FileHandle, position: number, length: number): Promise<Buffer> {
    const buffer = Buffer.allocUnsafe(length);
    const { bytesRead } = await handle.read(buffer, 0, length, position);
    return buffer.subarray(0, bytesRead);
  }

  private async readAligned(handle: FileHandle, position: number, length: number): Promise<Buffer> {
    const slot = this.slots.pop()!;
    try {
      let bytesRead: number;
      try {
        ({ bytesRead } = await handle.read(slot, 0, length, position));
      } catch (err) {
        // Accepted at open, refused at the read (some FUSE filesystems): read through the page cache.
        if ((err as NodeJS.ErrnoException).code !== "EINVAL") throw err;
        this.buffered ??= open(this.path, "r");
        ({ bytesRead } = await (await this.buffered).read(slot, 0, length, position));
      }
      const from = Math.max(0, this.start - position);
      const to = Math.min(bytesRead, this.end - position);
      return Buffer.from(slot.subarray(from, Math.max(from, to)));
    } finally {
      this.slots.push(slot);
    }
  }

  private async pump(): Promise<void> {
    const handle = this.handle;
    if (this.pumping || !handle) return;
    this.pumping = true;
    try {
      for (;;) {
        while (this.pending.length < READS_IN_FLIGHT && this.next < this.end) {
          const length = this.direct
            ? Math.min(READ_CHUNK, alignUp(this.end) - this.next)
            : Math.min(READ_CHUNK, this.end - this.next);
          this.pending.push(this.readAt(handle, this.next, length));
          this.next += length;
        }
        const chunk = await this.pending.shift();
        if (this.destroyed) return;
        if (chunk === undefined || chunk.length === 0) {
          this.push(null);
          return;
        }
        if (!this.push(chunk)) return;
      }
    } catch (err) {
      this.destroy(err as Error);
    } finally {
      this.pumping = false;
    }
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const handle = this.handle;
    this.handle = undefined;
    void Promise.allSettled(this.pending.splice(0))
      .then(async () => {
        await handle?.close();
        if (this.buffered) await (await this.buffered).close();
      })
      .then(
        () => callback(err),
        () => callback(err),
      );
  }
}
