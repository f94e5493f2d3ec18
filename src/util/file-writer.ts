import { constants } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { once } from "node:events";
import { Writable, type Readable } from "node:stream";
import { finished } from "node:stream/promises";
import { alignUp, directIoWanted, openMaybeDirect } from "./direct-io";
import { BlockPool, WRITE_BLOCK } from "./block-pool";
import type { Hasher, ThreadHash } from "./hash-thread";
import { DigestMismatchError } from "../oci/digest";

/** Blocks per stream: one filling while the others are on their way to the disk. */
const BLOCKS = 4;

/**
 * An open file that takes positional writes, direct (O_DIRECT) when the filesystem allows it.
 * Some filesystems accept O_DIRECT at open and refuse the I/O with EINVAL (or refuse an alignment
 * finer than their own): such writes are redone through the page cache, on a second handle.
 */
export class FileTarget {
  private buffered: Promise<FileHandle> | undefined;
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    private directNow: boolean,
  ) {}

  static async open(path: string, flags: number, mode: number, direct: boolean): Promise<FileTarget> {
    const opened = await openMaybeDirect(path, flags, mode, direct);
    return new FileTarget(path, opened.handle, opened.direct);
  }

  /** Whether writes must be aligned (and are going around the page cache). */
  get direct(): boolean {
    return this.directNow;
  }

  async write(buffer: Buffer, length: number, position: number): Promise<void> {
    if (this.closed) throw new Error(`${this.path}: written after it was closed`);
    let done = 0;
    while (done < length) {
      const handle = this.directNow ? this.handle : await this.pageCacheHandle();
      try {
        const { bytesWritten } = await handle.write(buffer, done, length - done, position + done);
        done += bytesWritten;
      } catch (err) {
        // Only the direct handle's EINVAL means "not like this"; writes racing this one retry too.
        if ((err as NodeJS.ErrnoException).code !== "EINVAL" || handle !== this.handle) throw err;
        this.directNow = false;
      }
    }
  }

  private pageCacheHandle(): Promise<FileHandle> {
    this.buffered ??= open(this.path, constants.O_WRONLY);
    return this.buffered;
  }

  async truncate(size: number): Promise<void> {
    await this.handle.truncate(size);
  }

  /** Wait until the written data is on the disk (fdatasync), before a rename makes the file visible. */
  async sync(): Promise<void> {
    await this.handle.datasync();
    if (this.buffered) await (await this.buffered).datasync();
  }

  async close(): Promise<void> {
    this.closed = true;
    const buffered = this.buffered;
    this.buffered = undefined;
    await Promise.allSettled([this.handle.close(), buffered?.then((h) => h.close())]);
  }
}

export interface BlockWriterOptions {
  /** File offset of the first byte. */
  start: number;
  /**
   * How the last block ends. "file": the stream owns the file's end (padded for a direct write, then
   * the file is truncated to its real size). "tar": zero padding to the next 512-byte boundary, as
   * a tar entry's data ends; the bytes after it belong to someone else.
   */
  end: "file" | "tar";
  /**
   * What must come in: more bytes fail at once, fewer (or, with a hash thread, other bytes) at the
   * end, before anything else is done with the file.
   */
  expect?: { size: number; digest?: string };
  errorLabel?: string;
  /** Told how many bytes each write brought (progress display). */
  onBytes?: (bytes: number) => void;
  /**
   * A second place that gets every block as well (a layer's spot in a bundle, while it goes to
   * the store): the same aligned block is written twice, copied from the stream once.
   */
  mirror?: FileSpot;
  /** Hash the bytes on this thread (see sha256); the stream's blocks then live in shared memory. */
  hashThread?: Hasher;
  /** Where blocks come from and go back to (default: the stream's own). */
  pool?: BlockPool;
}

/** Where a run of bytes goes in a file shared with other writers; it ends like a tar entry's data. */
export interface FileSpot {
  target: FileTarget;
  start: number;
  /** Told how many bytes each write brought (progress display). */
  onBytes?: (bytes: number) => void;
}

/**
 * A writer that lends its blocks to a producer, so bytes read from a socket land in them without
 * a copy (raw-http.ts). space(), then filled(n) for what was put there; when space() has nothing,
 * wait for whenSpace().
 */
export interface BlockSink {
  /** The free rest of the current block, or undefined while every block is on its way to the disk. */
  space(): Buffer | undefined;
  /** `n` bytes were put at the start of the last space(). Throws if that is more than expected. */
  filled(n: number): void;
  /** Resolves once space() has room again; rejects if the writer failed or was destroyed. */
  whenSpace(): Promise<void>;
}

/** A source that can write straight into a BlockSink (a registry download: raw-http.ts). */
export interface BlockFeed {
  /** Put every byte into `sink`; resolves when the last one is in (the sink is not ended). */
  feedInto(sink: BlockSink): Promise<void>;
}

export function isBlockFeed(data: Readable): data is Readable & BlockFeed {
  return typeof (data as Partial<BlockFeed>).feedInto === "function";
}

/** pipeline(feed, writer) for a BlockFeed: the feed fills the writer's blocks itself. */
export async function feedWriter(feed: Readable & BlockFeed, writer: BlockWriteStream): Promise<void> {
  try {
    await writer.opened();
    await feed.feedInto(writer);
    writer.end();
    await finished(writer);
  } catch (err) {
    feed.destroy();
    if (!writer.closed) {
      const closed = once(writer, "close").catch(() => undefined);
      writer.destroy(err as Error);
      await closed;
    }
    throw err;
  }
}

/** Copy as much of `chunk` into a BlockSink as it has room for now; returns how many bytes that was. */
export function fillSink(sink: BlockSink, chunk: Buffer): number {
  let offset = 0;
  for (let space = sink.space(); space && offset < chunk.length; space = sink.space()) {
    const n = chunk.copy(space, 0, offset);
    offset += n;
    sink.filled(n);
  }
  return offset;
}

/** Copy `chunk` into a BlockSink, waiting for space as needed. */
export async function copyIntoSink(sink: BlockSink, chunk: Buffer): Promise<void> {
  let offset = fillSink(sink, chunk);
  while (offset < chunk.length) {
    await sink.whenSpace();
    offset += fillSink(sink, chunk.subarray(offset));
  }
}

/**
 * A Writable that collects bytes into WRITE_BLOCK-sized aligned blocks and writes them at their
 * offsets, several in flight. Blocks are aligned so that the target may be direct (direct-io.ts).
 */
export class BlockWriteStream extends Writable implements BlockSink {
  private target: FileTarget | undefined;
  private readonly free: Buffer[] = [];
  /** Every block taken from the pool, given back when the stream is done. */
  private readonly owned: Buffer[] = [];
  private readonly pool: BlockPool;
  /** Writes on their way, oldest first; each gives its block back when done. */
  private readonly inFlight: Promise<void>[] = [];
  /** Every write not settled yet, including those a waiting append() already took from inFlight. */
  private readonly unsettled = new Set<Promise<void>>();
  /** The append() running now: a destroyed stream gives its blocks back only after it stopped. */
  private appending: Promise<void> | undefined;
  private current: Buffer | undefined;
  private fill = 0;
  /** File offset of the next block. */
  private position: number;
  private failure: Error | undefined;
  private hash: ThreadHash | undefined;
  private readonly constructed: Promise<void>;
  private markConstructed!: (err?: Error) => void;
  bytesWritten = 0;
  /** "sha256:<hex>" of the bytes written, once finished, when a hash thread was given. */
  sha256: string | undefined;

  constructor(
    private readonly targetSource: FileTarget | (() => Promise<FileTarget>),
    private readonly opts: BlockWriterOptions,
  ) {
    super({ highWaterMark: WRITE_BLOCK });
    this.position = opts.start;
    this.pool = opts.pool ?? new BlockPool();
    this.constructed = new Promise<void>((resolve, reject) => {
      this.markConstructed = (err) => (err ? reject(err) : resolve());
    });
    this.constructed.catch(() => undefined); // also reported as the stream's error
  }

  /** Resolves when the target is open, so that space() can be used (writes may come before). */
  opened(): Promise<void> {
    return this.constructed;
  }

  override _construct(callback: (err?: Error | null) => void): void {
    const source = this.targetSource;
    Promise.resolve(source instanceof FileTarget ? source : source()).then(
      (target) => {
        this.target = target;
        this.hash = this.opts.hashThread?.open();
        this.markConstructed();
        callback();
      },
      (err: Error) => {
        this.markConstructed(err);
        callback(err);
      },
    );
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.appending = this.append(chunk);
    this.appending.then(
      () => callback(),
      (err: Error) => callback(err),
    );
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.finish().then(
      () => callback(),
      (err: Error) => callback(err),
    );
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    // Blocks go back to the shared pool only when nothing here can touch them again: the running
    // append() has stopped (it checks `destroyed` after every wait) and every write has settled.
    void Promise.allSettled([this.appending])
      .then(() => Promise.allSettled([...this.unsettled]))
      .then(() => {
        if (this.sha256 === undefined) this.hash?.drop();
        this.giveBack();
        return this.release();
      })
      .then(
        () => callback(err),
        () => callback(err),
      );
  }

  /** Blocks back to the pool, once no write uses them (called after in-flight writes settled). */
  private giveBack(): void {
    this.pool.give(this.owned.splice(0));
    this.free.length = 0;
    this.current = undefined;
  }

  /** What to do with the target once this stream is done with it (an owned file closes it). */
  protected async release(): Promise<void> {}

  protected get openTarget(): FileTarget | undefined {
    return this.target;
  }

  private async append(chunk: Buffer): Promise<void> {
    await copyIntoSink(this, chunk);
  }

  space(): Buffer | undefined {
    if (this.failure || this.destroyed) return undefined;
    if (!this.current) {
      if (this.free.length > 0) this.current = this.free.pop()!;
      else if (this.owned.length < BLOCKS) {
        this.current = this.pool.take();
        this.owned.push(this.current);
      } else return undefined;
    }
    return this.current.subarray(this.fill);
  }

  filled(n: number): void {
    if (n === 0) return;
    this.opts.onBytes?.(n);
    this.opts.mirror?.onBytes?.(n);
    const expect = this.opts.expect;
    if (expect && this.bytesWritten + n > expect.size) this.mismatch(this.bytesWritten + n);
    this.fill += n;
    this.bytesWritten += n;
    if (this.fill === WRITE_BLOCK) this.submit(WRITE_BLOCK);
  }

  async whenSpace(): Promise<void> {
    while (!this.current && this.free.length === 0 && this.owned.length >= BLOCKS && !this.failure) {
      await this.inFlight.shift();
      if (this.destroyed) break;
    }
    if (this.destroyed) throw new Error(`${this.opts.errorLabel ?? "file"}: write stopped`);
    if (this.failure) throw this.failure;
  }

  /**
   * Send the current block on its way: `length` bytes to the file, `mirrorLength` to the mirror,
   * `hashLength` (the data, without padding) to the hash thread.
   */
  private submit(length: number, mirrorLength = length, hashLength = length): void {
    if (this.destroyed) throw new Error(`${this.opts.errorLabel ?? "file"}: write stopped`);
    const block = this.current!;
    const position = this.position;
    this.current = undefined;
    this.fill = 0;
    this.position += length;
    const mirror = this.opts.mirror;
    const writes = [this.target!.write(block, length, position)];
    if (mirror) writes.push(mirror.target.write(block, mirrorLength, mirror.start + position - this.opts.start));
    if (this.hash) writes.push(this.hash.update(block, hashLength));
    const written = Promise.all(writes).then(
      () => {
        this.free.push(block);
      },
      (err: Error) => {
        this.failure ??= err;
        this.free.push(block);
      },
    );
    this.inFlight.push(written);
    this.unsettled.add(written);
    void written.then(() => this.unsettled.delete(written));
  }

  private mismatch(size: number, digest = "sha256:?"): never {
    const expect = this.opts.expect!;
    throw new DigestMismatchError(
      this.opts.errorLabel ?? this.target!.path,
      { digest: expect.digest ?? "sha256:?", size: expect.size },
      { digest, size },
    );
  }

  private async finish(): Promise<void> {
    const expect = this.opts.expect;
    if (expect && this.bytesWritten !== expect.size) this.mismatch(this.bytesWritten);
    const end = this.position + this.fill;
    if (this.fill > 0) {
      const tarLength = Math.ceil(this.fill / 512) * 512;
      const length = this.opts.end === "tar" ? tarLength : this.target!.direct ? alignUp(this.fill) : this.fill;
      this.current!.fill(0, this.fill, Math.max(length, tarLength));
      this.submit(length, tarLength, this.fill);
    }
    await Promise.all(this.inFlight.splice(0));
    if (this.failure) throw this.failure;
    if (this.hash) this.sha256 = `sha256:${await this.hash.digest()}`;
    if (expect?.digest !== undefined && this.sha256 !== expect.digest) this.mismatch(this.bytesWritten, this.sha256);
    if (this.opts.end === "file" && this.position !== end) await this.target!.truncate(end);
    // A file that is renamed into place next must not be able to show up empty or with holes after a crash.
    if (this.opts.end === "file") await this.target!.sync();
    this.giveBack();
    await this.release();
  }
}

export interface FileWriterOptions {
  /** "wx": create, fail if it exists (temp files); "w": create or truncate. */
  flags: "wx" | "w";
  mode?: number;
  /** Bypass the page cache when the filesystem allows it (default: directIoWanted()). */
  direct?: boolean;
  mirror?: FileSpot;
  hashThread?: Hasher;
  pool?: BlockPool;
  expect?: BlockWriterOptions["expect"];
  errorLabel?: string;
  onBytes?: (bytes: number) => void;
}

/** A whole file as a BlockWriteStream: opened on construction, closed when finished or destroyed. */
export class FileWriteStream extends BlockWriteStream {
  private released = false;

  constructor(
    readonly path: string,
    opts: FileWriterOptions,
  ) {
    const flags = constants.O_WRONLY | constants.O_CREAT | (opts.flags === "wx" ? constants.O_EXCL : constants.O_TRUNC);
    super(() => FileTarget.open(path, flags, opts.mode ?? 0o644, opts.direct ?? directIoWanted()), {
      start: 0,
      end: "file",
      ...(opts.mirror ? { mirror: opts.mirror } : {}),
      ...(opts.hashThread ? { hashThread: opts.hashThread } : {}),
      ...(opts.pool ? { pool: opts.pool } : {}),
      ...(opts.expect ? { expect: opts.expect } : {}),
      ...(opts.errorLabel ? { errorLabel: opts.errorLabel } : {}),
      ...(opts.onBytes ? { onBytes: opts.onBytes } : {}),
    });
  }

  protected override async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.openTarget?.close();
  }
}
