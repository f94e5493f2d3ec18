/**
 * Byte-exact re-implementation of the gzip writer of github.com/klauspost/pgzip (v1.2.5) on top
 * of klauspost/compress/flate (v1.15.12), as containers/image uses it for image layers
 * (pgzip.NewWriterLevel with the default SetConcurrency(1 MiB, GOMAXPROCS)).
 *
 * pgzip cuts the input into blocks of exactly `blockSize` bytes, however the caller sized its
 * Write calls; the last block holds the remainder (possibly nothing). Each block is deflated on
 * its own by a freshly reset flate writer whose preset dictionary is the previous block's last
 * 16 KiB, then sync-flushed (empty stored block 00 00 ff ff); the last block is additionally
 * closed with an empty final fixed-Huffman block (03 00).
 *
 * Only the deflate body is produced here: the caller owns the 10-byte gzip header and the
 * CRC-32/ISIZE trailer.
 */
import { BitWriter } from "./bitwriter";
import { FastEncoder, newFastEncoder } from "./fast";
import { LazyCompressor } from "./lazy";
import { Tokens } from "./tokens";
import { MAX_STORE } from "./tables";
import type { RawDeflateEncoder } from "../raw-deflate";

/** pgzip's default block size and its preset-dictionary ("tail") size. */
export const PGZIP_BLOCK_SIZE = 1 << 20;
export const PGZIP_TAIL_SIZE = 16384;

export interface PgzipDeflateOptions {
  /** Input bytes per independently compressed block (SetConcurrency's blockSize). */
  blockSize?: number;
  /**
   * Sees the current block's output so far as it grows (a view; later emitted whole through
   * onData), so a wrong guess can be dropped before a whole 1 MiB block is compressed.
   */
  peek?: (partial: Uint8Array) => void;
}

/** One flate writer's worth of work: compress a whole block, with an optional dictionary. */
interface BlockCompressor {
  /** buf[dictStart..dataStart) is the dictionary, buf[dataStart..dataEnd) the block. */
  compress(buf: Uint8Array, dictStart: number, dataStart: number, dataEnd: number, last: boolean): void;
}

/** Levels 1-6: the input is consumed in 65535-byte windows, each tokenised by a fast encoder. */
class FastBlocks implements BlockCompressor {
  private readonly tokens = new Tokens();
  private readonly enc: FastEncoder;

  constructor(
    level: number,
    private readonly w: BitWriter,
  ) {
    this.enc = newFastEncoder(level);
    w.logNewTablePenalty = 7;
  }

  compress(buf: Uint8Array, dictStart: number, dataStart: number, dataEnd: number, last: boolean): void {
    const w = this.w;
    const tk = this.tokens;
    w.reset();
    this.enc.reset();
    tk.reset();
    if (dataStart - dictStart > 0) {
      // prime the encoder with (at most 32 KiB of) the dictionary, discarding its tokens
      const from = Math.max(dictStart, dataStart - 32768);
      this.enc.encode(tk, buf, from, dataStart);
      tk.reset();
    }
    let pos = dataStart;
    while (dataEnd - pos > MAX_STORE) {
      this.window(buf, pos, pos + MAX_STORE, false);
      pos += MAX_STORE;
    }
    this.window(buf, pos, dataEnd, true);
    w.writeStoredHeader(0, false);
    w.flush();
    if (last) {
      w.writeStoredHeader(0, true);
      w.flush();
    }
  }

  /** One window; `sync` marks the final (flushing) one, which may be short. */
  private window(buf: Uint8Array, from: number, to: number, sync: boolean): void {
    const w = this.w;
    const tk = this.tokens;
    const n = to - from;
    if (n < MAX_STORE) {
      if (!sync) return;
      if (n < 128) {
        if (n === 0) return;
        if (n <= 32) w.writeStored(buf, from, to, false);
        else w.writeBlockHuff(false, buf, from, to, true);
        tk.reset();
        return;
      }
    }
    this.enc.encode(tk, buf, from, to);
    if (tk.n === 0) {
      w.writeStored(buf, from, to, false);
    } else if (tk.n > n - (n >> 4)) {
      // barely anything matched: a literal-only table is cheaper
      w.writeBlockHuff(false, buf, from, to, sync);
    } else {
      w.writeBlockDynamic(tk, false, buf, from, to, sync);
    }
    tk.reset();
  }
}

/** Levels 7-9. */
class LazyBlocks implements BlockCompressor {
  private readonly c: LazyCompressor;

  constructor(
    level: number,
    private readonly w: BitWriter,
  ) {
    this.c = new LazyCompressor(level, w);
    w.logNewTablePenalty = 8;
  }

  compress(buf: Uint8Array, dictStart: number, dataStart: number, dataEnd: number, last: boolean): void {
    this.w.reset();
    this.c.resetDict(dataStart > dictStart ? buf.subarray(dictStart, dataStart) : null);
    this.c.write(buf.subarray(dataStart, dataEnd));
    this.c.flush();
    if (last) this.c.close();
  }
}

/** Level 0: stored blocks of up to 65535 bytes; the dictionary is ignored. */
class StoredBlocks implements BlockCompressor {
  constructor(private readonly w: BitWriter) {}

  compress(buf: Uint8Array, _dictStart: number, dataStart: number, dataEnd: number, last: boolean): void {
    const w = this.w;
    w.reset();
    let pos = dataStart;
    while (dataEnd - pos > MAX_STORE) {
      w.writeStored(buf, pos, pos + MAX_STORE, false);
      pos += MAX_STORE;
    }
    if (dataEnd > pos) w.writeStored(buf, pos, dataEnd, false);
    w.writeStoredHeader(0, false);
    w.flush();
    if (last) {
      w.writeStoredHeader(0, true);
      w.flush();
    }
  }
}

/** Level -2 (HuffmanOnly): literal-only blocks over 32 KiB windows; the dictionary is ignored. */
class HuffOnlyBlocks implements BlockCompressor {
  constructor(private readonly w: BitWriter) {
    w.logNewTablePenalty = 10;
  }

  compress(buf: Uint8Array, _dictStart: number, dataStart: number, dataEnd: number, last: boolean): void {
    const w = this.w;
    const WIN = 32 << 10;
    w.reset();
    let pos = dataStart;
    while (dataEnd - pos > WIN) {
      w.writeBlockHuff(false, buf, pos, pos + WIN, false);
      pos += WIN;
    }
    if (dataEnd > pos) w.writeBlockHuff(false, buf, pos, dataEnd, true);
    w.writeStoredHeader(0, false);
    w.flush();
    if (last) {
      w.writeStoredHeader(0, true);
      w.flush();
    }
  }
}

function blockCompressor(level: number, w: BitWriter): BlockCompressor {
  if (level === -1) level = 5;
  if (level === 0) return new StoredBlocks(w);
  if (level === -2) return new HuffOnlyBlocks(w);
  if (level >= 1 && level <= 6) return new FastBlocks(level, w);
  if (level >= 7 && level <= 9) return new LazyBlocks(level, w);
  throw new RangeError(`pgzip: invalid compression level ${level}`);
}

/**
 * Streaming encoder for the deflate body of a pgzip stream. `onData` receives each finished
 * block's bytes (a fresh copy it may keep). Memory: one block plus 16 KiB of dictionary.
 */
export function createPgzipDeflate(
  level: number,
  opts: PgzipDeflateOptions | undefined,
  onData: (out: Uint8Array) => void,
): RawDeflateEncoder {
  const blockSize = opts?.blockSize ?? PGZIP_BLOCK_SIZE;
  if (!Number.isInteger(blockSize) || blockSize <= PGZIP_TAIL_SIZE) {
    throw new RangeError(`pgzip: block size must be an integer > ${PGZIP_TAIL_SIZE}`);
  }
  const w = new BitWriter();
  const peek = opts?.peek;
  if (peek) w.onBlock = () => peek(w.out.subarray(0, w.pos));
  const comp = blockCompressor(level, w);
  const D = PGZIP_TAIL_SIZE;
  // [dictionary (the previous block's tail) | current block]
  const buf = new Uint8Array(D + blockSize);
  let dictLen = 0;
  let fill = 0;
  let ended = false;

  const emit = (last: boolean): void => {
    comp.compress(buf, D - dictLen, D, D + fill, last);
    onData(w.out.slice(0, w.pos));
    // pgzip hands the next block a dictionary only if this one was longer than the tail
    if (fill > D) {
      buf.copyWithin(0, D + fill - D, D + fill);
      dictLen = D;
    } else {
      dictLen = 0;
    }
    fill = 0;
  };

  return {
    write(chunk: Uint8Array): void {
      if (ended) throw new Error("pgzip: write after end");
      let off = 0;
      while (off < chunk.length) {
        const n = Math.min(blockSize - fill, chunk.length - off);
        buf.set(chunk.subarray(off, off + n), D + fill);
        fill += n;
        off += n;
        if (fill === blockSize) emit(false);
      }
    },
    end(): void {
      if (ended) return;
      ended = true;
      emit(true);
    },
  };
}
