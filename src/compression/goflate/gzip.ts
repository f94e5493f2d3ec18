/**
 * Go's compress/gzip writer on top of GoDeflater: same header bytes (XFL 2 for level 9, 4 for
 * level 1, else 0; OS 255 unless set; MTIME 0 for the zero/epoch time), same trailer.
 */
import { Transform, type TransformCallback } from "node:stream";
import { crc32 } from "../crc32";
import { BEST_COMPRESSION, BEST_SPEED, GoDeflater, concat } from "./deflate";

export interface GoGzipHeader {
  /** Modification time: seconds since the Unix epoch, or a Date. Written only when after the epoch. */
  mtime?: number | Date;
  /** OS byte; Go's default is 255 (unknown). */
  os?: number;
  /** Latin-1 file name (FNAME); omitted when empty. */
  name?: string;
  /** Latin-1 comment (FCOMMENT); omitted when empty. */
  comment?: string;
  /** FEXTRA payload (at most 65535 bytes); written whenever present, even if empty. */
  extra?: Uint8Array;
}

function latin1(s: string, errorLabel: string): Uint8Array {
  const bytes: number[] = [];
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (cp === 0 || cp > 0xff) throw new Error(`gzip: non-Latin-1 header string in ${errorLabel}`);
    bytes.push(cp);
  }
  bytes.push(0);
  return Uint8Array.from(bytes);
}

function mtimeSeconds(m: number | Date | undefined): number {
  if (m === undefined) return 0;
  const ms = m instanceof Date ? m.getTime() : m * 1000;
  // Go writes uint32(ModTime.Unix()) only for times after the epoch; Unix() rounds down.
  return ms > 0 ? Math.floor(ms / 1000) >>> 0 : 0;
}

export function gzipHeader(level: number, header: GoGzipHeader = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  const fixed = new Uint8Array(10);
  fixed[0] = 0x1f;
  fixed[1] = 0x8b;
  fixed[2] = 8;
  const name = header.name ?? "";
  const comment = header.comment ?? "";
  if (header.extra !== undefined) fixed[3] |= 0x04;
  if (name !== "") fixed[3] |= 0x08;
  if (comment !== "") fixed[3] |= 0x10;
  new DataView(fixed.buffer).setUint32(4, mtimeSeconds(header.mtime), true);
  fixed[8] = level === BEST_COMPRESSION ? 2 : level === BEST_SPEED ? 4 : 0;
  fixed[9] = header.os ?? 255;
  parts.push(fixed);
  if (header.extra !== undefined) {
    if (header.extra.length > 0xffff) throw new Error("gzip: extra data is too large");
    parts.push(Uint8Array.of(header.extra.length & 0xff, header.extra.length >>> 8), header.extra);
  }
  if (name !== "") parts.push(latin1(name, "name"));
  if (comment !== "") parts.push(latin1(comment, "comment"));
  return concat(parts);
}

/** Incremental gzip member writer; each method returns the output produced by that call. */
export class GoGzipWriter {
  private readonly deflater: GoDeflater;
  private readonly header: Uint8Array;
  private wroteHeader = false;
  private crc = 0;
  private size = 0;
  private closed = false;

  constructor(level = -1, header: GoGzipHeader = {}) {
    if (!Number.isInteger(level) || level < -2 || level > 9) {
      throw new RangeError(`gzip: invalid compression level: ${level}`);
    }
    this.header = gzipHeader(level, header);
    this.deflater = new GoDeflater(level);
  }

  private start(out: Uint8Array[]): void {
    if (this.wroteHeader) return;
    this.wroteHeader = true;
    out.push(this.header);
  }

  write(data: Uint8Array): Uint8Array[] {
    if (this.closed) throw new Error("gzip: write after close");
    const out: Uint8Array[] = [];
    this.start(out);
    this.size = (this.size + data.length) >>> 0;
    this.crc = crc32(data, this.crc);
    for (const c of this.deflater.write(data)) out.push(c);
    return out;
  }

  flush(): Uint8Array[] {
    if (this.closed) return [];
    const out: Uint8Array[] = [];
    this.start(out);
    for (const c of this.deflater.flush()) out.push(c);
    return out;
  }

  close(): Uint8Array[] {
    if (this.closed) return [];
    this.closed = true;
    const out: Uint8Array[] = [];
    this.start(out);
    for (const c of this.deflater.closeChunks()) out.push(c);
    const trailer = new Uint8Array(8);
    const view = new DataView(trailer.buffer);
    view.setUint32(0, this.crc, true);
    view.setUint32(4, this.size, true);
    out.push(trailer);
    return out;
  }
}

function toBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.length);
}

/** A Transform producing exactly the gzip member Go's gzip.NewWriterLevel(w, level) would write. */
export function createGoGzip(level = -1, header: GoGzipHeader = {}): Transform {
  const writer = new GoGzipWriter(level, header);
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
      try {
        for (const c of writer.write(chunk)) this.push(toBuffer(c));
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
    flush(cb: TransformCallback): void {
      try {
        for (const c of writer.close()) this.push(toBuffer(c));
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
  });
}

/** A Transform producing the raw DEFLATE stream of Go's flate.NewWriter(w, level). */
export function createGoDeflate(level = -1): Transform {
  const deflater = new GoDeflater(level);
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
      try {
        for (const c of deflater.write(chunk)) this.push(toBuffer(c));
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
    flush(cb: TransformCallback): void {
      try {
        for (const c of deflater.closeChunks()) this.push(toBuffer(c));
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
  });
}
