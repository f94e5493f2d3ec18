import { Transform, type TransformCallback } from "node:stream";
import { MAX_TAR_HEADERS, MAX_TAR_META_BYTES, MAX_TAR_TRAILER_BYTES } from "../oci/limits";
import { quote } from "../quote";

const BLOCK = 512;

/**
 * The tar's block structure, checked before tar-stream sees it. tar-stream skips zero blocks and
 * reads on to the end of its input, reads whatever follows the end-of-archive marker as more
 * entries, treats a directory's data as headers, and accepts a tar without the marker. This pass
 * follows the same framing (header, data rounded up to 512 bytes) and fails at the first byte that
 * a bundle cannot legitimately hold:
 * - a directory entry with data, a pax header that changes a size, a global pax or GNU long-link header;
 * - more than MAX_TAR_HEADERS headers, or a pax / long-name header over MAX_TAR_META_BYTES;
 * - a lone zero block followed by more entries;
 * - anything but zeros after the end-of-archive marker, or more than MAX_TAR_TRAILER_BYTES of them;
 * - the end of the input before the end-of-archive marker.
 * Bytes after the marker are read (so the outer codec checks its stream to the end) but not passed on.
 */
export class TarGuard extends Transform {
  private readonly block = Buffer.alloc(BLOCK);
  private filled = 0;
  /** Data bytes (with padding) of the current entry still to pass. */
  private left = 0;
  /** A pax header's data, collected to be checked before it is passed on. */
  private meta?: { chunks: Buffer[]; left: number; header: Buffer };
  private zeroBlocks = 0;
  private headers = 0;
  /** Extended headers in a row (each describes the next entry: one or two, never a run of them). */
  private metaRun = 0;
  private ended = false;
  private trailing = 0;

  constructor(private readonly label: string) {
    super({ readableHighWaterMark: 1 << 20, writableHighWaterMark: 1 << 20 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.scan(chunk);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  private scan(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.ended) {
        this.trailer(chunk.subarray(off));
        return;
      }
      if (this.left > 0) {
        const n = Math.min(this.left, chunk.length - off);
        const piece = chunk.subarray(off, off + n);
        this.left -= n;
        off += n;
        if (this.meta) {
          this.meta.chunks.push(Buffer.from(piece));
          if (this.left === 0) this.checkMeta();
        } else {
          this.push(piece);
        }
        continue;
      }
      const n = Math.min(BLOCK - this.filled, chunk.length - off);
      chunk.copy(this.block, this.filled, off, off + n);
      this.filled += n;
      off += n;
      if (this.filled < BLOCK) return;
      this.filled = 0;
      this.header(Buffer.from(this.block));
    }
  }

  private fail(why: string): never {
    throw new Error(`${this.label}: ${why}`);
  }

  private header(block: Buffer): void {
    if (block.every((b) => b === 0)) {
      this.zeroBlocks++;
      if (this.zeroBlocks === 2) {
        this.ended = true;
        this.push(Buffer.alloc(2 * BLOCK));
      }
      return;
    }
    if (this.zeroBlocks > 0) {
      this.fail("a lone zero block in the tar, with entries after it (tar readers disagree on what follows)");
    }
    if (++this.headers > MAX_TAR_HEADERS) this.fail(`more than ${MAX_TAR_HEADERS} tar headers`);
    const type = String.fromCharCode(block[156]!);
    const size = tarSize(block, this.label);
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    if (type === "5" && size > 0) {
      this.fail(`directory entry ${entryName(block)} declares ${size} bytes of data (directories have none)`);
    }
    if (type === "S") {
      this.fail(`entry ${entryName(block)} is a GNU sparse file, which bundles never hold (not supported)`);
    }
    if (type === "g" || type === "K") {
      this.fail(`unsupported tar header type '${type}' (bundles use ustar headers)`);
    }
    if (type === "x" || type === "L") {
      if (++this.metaRun > 2) this.fail("a run of tar extended headers without the entries they describe");
      if (size > MAX_TAR_META_BYTES)
        this.fail(`a tar extended header of ${size} bytes (the limit is ${MAX_TAR_META_BYTES})`);
      this.meta = { chunks: [], left: padded, header: block };
      this.left = padded;
      if (padded === 0) this.checkMeta();
      return;
    }
    this.metaRun = 0;
    this.push(block);
    this.left = padded;
  }

  /** A pax header may name a path, but not change the size of the entry after it. */
  private checkMeta(): void {
    const meta = this.meta!;
    this.meta = undefined;
    const data = Buffer.concat(meta.chunks);
    if (String.fromCharCode(meta.header[156]!) === "x" && /(^|\n)\d+ size=/.test(data.toString("latin1"))) {
      this.fail("a pax header sets an entry's size (bundles give sizes in the ustar header)");
    }
    this.push(meta.header);
    this.push(data);
  }

  private trailer(rest: Buffer): void {
    const allowed = MAX_TAR_TRAILER_BYTES - this.trailing;
    const n = Math.min(rest.length, allowed + 1);
    for (let i = 0; i < n; i++) {
      if (rest[i] !== 0) this.fail("data after the tar's end-of-archive marker");
    }
    this.trailing += rest.length;
    if (this.trailing > MAX_TAR_TRAILER_BYTES) {
      this.fail(`more than ${MAX_TAR_TRAILER_BYTES} bytes after the tar's end-of-archive marker`);
    }
  }

  override _flush(cb: TransformCallback): void {
    if (this.ended) {
      cb();
      return;
    }
    const where = this.left > 0 || this.filled > 0 ? "in the middle of an entry" : "without its end-of-archive marker";
    cb(new Error(`${this.label}: truncated tar: it ends ${where}; the bundle is incomplete — re-copy the file`));
  }
}

function entryName(block: Buffer): string {
  const end = block.indexOf(0);
  return quote(block.subarray(0, end < 0 || end > 100 ? 100 : end).toString("utf8"));
}

/** A numeric field as tar-stream reads it (octal, or base-256 when the high bit is set), checked strictly. */
function tarNumber(block: Buffer, start: number, length: number, label: string): number {
  const field = block.subarray(start, start + length);
  if (field[0]! & 0x80) {
    if (field[0] !== 0x80) throw new Error(`${label}: corrupt tar header (negative number)`);
    let v = 0;
    for (let i = 1; i < field.length; i++) v = v * 256 + field[i]!;
    if (!Number.isSafeInteger(v)) throw new Error(`${label}: corrupt tar header (number out of range)`);
    return v;
  }
  let off = 0;
  while (off < field.length && field[off] === 0x20) off++;
  let end = field.indexOf(0x20, off);
  if (end < 0) end = field.length;
  while (off < end && field[off] === 0) off++;
  if (off === end) return 0;
  const text = field.subarray(off, end).toString("latin1");
  if (!/^[0-7]+\0*$/.test(text)) throw new Error(`${label}: corrupt tar header (bad number field)`);
  return parseInt(text, 8);
}

/** The size field, after the header's checksum checked out. */
function tarSize(block: Buffer, label: string): number {
  let sum = 0;
  let others = 0;
  for (let i = 0; i < BLOCK; i++) {
    const inField = i >= 148 && i < 156;
    sum += inField ? 0x20 : block[i]!;
    if (!inField) others |= block[i]!;
  }
  if (others === 0 || sum !== tarNumber(block, 148, 8, label)) {
    throw new Error(`${label}: corrupt tar header (checksum mismatch)`);
  }
  return tarNumber(block, 124, 12, label);
}
