/**
 * Byte-exact model of the raw deflate body that pigz 2.6 (Debian, linked against zlib 1.2.13)
 * writes, for levels 1..9 with the default options (no -i, no --rsyncable, no -11 zopfli).
 *
 * pigz cuts its input into blocks of exactly `-b` KiB (128 KiB by default); the last block holds
 * the remainder, which is empty only for empty input. A block is "final" when no input follows it,
 * so a file of exactly n blocks ends with a full block finished with Z_FINISH.
 *
 * Multi-threaded mode (the default whenever more than one thread is allowed, i.e. -p >= 2 or more
 * than one CPU — even for a single small block) runs every block through its own zlib stream:
 *   deflateReset + deflateParams(level), deflateSetDictionary(last 32 KiB of the previous block's
 *   input) for every block but the first, then one deflate() call over the whole block with
 *   - Z_FINISH for the final block, otherwise
 *   - Z_BLOCK, then deflatePending(&bits):
 *       bits odd        -> deflate(Z_SYNC_FLUSH)  (empty stored block, i.e. ... 00 00 ff ff)
 *       bits 2, 4 or 6  -> deflatePrime(10, 2) until byte aligned (1, 2 or 3 empty static blocks
 *                          for 6, 4 or 2 pending bits), then deflate(Z_BLOCK) to flush them
 *       bits 0          -> nothing.
 * Single-threaded mode (-p 1, or a one-CPU machine) keeps one continuous zlib stream with the
 * full sliding window instead of reset + dictionary, but ends each non-final block the same way.
 *
 * zlib is pako's port, initialised with the classic zlib hash (legacyHash) so it produces the
 * same bytes as zlib 1.2.13 (its low-level deflateInit2 would otherwise pick Chromium's hash). pako does not export
 * deflatePending/deflatePrime, so the pending bits are read from (and cleared in) the stream's
 * state and the empty static blocks are appended here; that is exactly what deflatePrime plus
 * the following flush-only deflate() call emit.
 *
 * Only the body is produced: the 10-byte gzip header and the CRC-32/ISIZE trailer are the
 * caller's.
 */
import ZStream from "pako/lib/zlib/zstream.js";
import { deflate, deflateEnd, deflateInit2, deflateReset, deflateSetDictionary } from "pako/lib/zlib/deflate.js";
import type { RawDeflateEncoder } from "../raw-deflate";

/** pigz's default block size (-b 128) and its preset-dictionary size (DICT). */
export const PIGZ_BLOCK_SIZE = 131072;
export const PIGZ_DICT_SIZE = 32768;

const Z_SYNC_FLUSH = 2;
const Z_FINISH = 4;
const Z_BLOCK = 5;
const Z_OK = 0;
const Z_STREAM_END = 1;
const Z_BUF_ERROR = -5;
const Z_DEFLATED = 8;
const Z_DEFAULT_STRATEGY = 0;

export interface PigzDeflateOptions {
  /** Block size in bytes (pigz -b KiB * 1024); at least 32 KiB. Default 128 KiB. */
  blockSize?: number;
  /**
   * Thread count pigz runs with (-p, default: number of CPUs). 1 selects pigz's single-threaded
   * path (one continuous stream); anything larger the multi-threaded one. Output does not
   * otherwise depend on the number. Default 2 (multi-threaded).
   */
  threads?: number;
}

/** One zlib deflate stream (raw, windowBits 15, memLevel 8) plus pigz's flush discipline. */
class Engine {
  private readonly strm = new ZStream();

  constructor(
    level: number,
    private readonly onData: (out: Uint8Array) => void,
  ) {
    if (deflateInit2(this.strm, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY, true) !== Z_OK) {
      throw new Error(`pigz: cannot initialise deflate at level ${level}`);
    }
  }

  reset(dictionary: Uint8Array | null): void {
    deflateReset(this.strm);
    if (dictionary !== null && dictionary.length > 0 && deflateSetDictionary(this.strm, dictionary) !== Z_OK) {
      throw new Error("pigz: deflateSetDictionary failed");
    }
  }

  /** Compress `data` completely, ending at a byte boundary (non-final) or finishing the stream. */
  block(data: Uint8Array, final: boolean): void {
    const strm = this.strm;
    strm.input = data;
    strm.next_in = 0;
    strm.avail_in = data.length;
    if (final) {
      this.run(Z_FINISH);
      return;
    }
    this.run(Z_BLOCK);
    const s = strm.state;
    if (s === null) throw new Error("pigz: deflate stream not initialised");
    // Unlike zlib, pako does not move whole bytes out of its 16-bit bit buffer when it flushes
    // pending output, so bi_valid is 0..16 here; zlib's deflatePending would report bi_valid % 8.
    const bits = s.bi_valid;
    if (s.pending !== 0 || bits > 16) throw new Error("pigz: unexpected pending output after Z_BLOCK");
    if (bits & 1) {
      this.run(Z_SYNC_FLUSH);
    } else if (bits !== 0) {
      // Emit the buffered bits, then deflatePrime(strm, 10, 2) until aligned: each is an empty
      // non-final static block (BFINAL 0, BTYPE 01, end-of-block code 0000000).
      let acc = s.bi_buf & ((1 << bits) - 1);
      let n = bits;
      const out: number[] = [];
      for (;;) {
        while (n >= 8) {
          out.push(acc & 0xff);
          acc >>>= 8;
          n -= 8;
        }
        if (n === 0) break;
        acc |= 2 << n;
        n += 10;
      }
      s.bi_buf = 0;
      s.bi_valid = 0;
      this.onData(Uint8Array.from(out));
    }
  }

  end(): void {
    deflateEnd(this.strm);
  }

  /** pigz's deflate_engine: call deflate() until it leaves output room. */
  private run(flush: number): void {
    const strm = this.strm;
    do {
      const room = Math.max(65536, strm.avail_in + (strm.avail_in >>> 3) + 1024);
      const out = new Uint8Array(room);
      strm.output = out;
      strm.next_out = 0;
      strm.avail_out = room;
      const ret = deflate(strm, flush);
      if (ret !== Z_OK && ret !== Z_STREAM_END && ret !== Z_BUF_ERROR) {
        throw new Error(`pigz: deflate failed (${ret}${strm.msg ? `: ${strm.msg}` : ""})`);
      }
      if (strm.next_out > 0) this.onData(out.subarray(0, strm.next_out));
    } while (strm.avail_out === 0);
    if (strm.avail_in !== 0) throw new Error("pigz: deflate left input unconsumed");
  }
}

/**
 * Streaming pigz deflate body at `level` (1..9). `onData` receives the body in order; buffers
 * handed out are not reused.
 */
export function createPigzDeflate(
  level: number,
  onData: (out: Uint8Array) => void,
  options: PigzDeflateOptions = {},
): RawDeflateEncoder {
  if (!Number.isInteger(level) || level < 1 || level > 9) throw new RangeError(`pigz: unsupported level ${level}`);
  const blockSize = options.blockSize ?? PIGZ_BLOCK_SIZE;
  if (!Number.isInteger(blockSize) || blockSize < PIGZ_DICT_SIZE || blockSize % 1024 !== 0) {
    throw new RangeError(`pigz: block size must be a multiple of 1 KiB and at least 32 KiB, got ${blockSize}`);
  }
  const single = (options.threads ?? 2) <= 1;

  const engine = new Engine(level, onData);
  const cur = new Uint8Array(blockSize);
  let fill = 0;
  let dict: Uint8Array | null = null;
  let ended = false;

  const compress = (data: Uint8Array, final: boolean): void => {
    if (!single) engine.reset(dict);
    engine.block(data, final);
    // Blocks are never shorter than DICT unless final, so the next dictionary is this block's tail.
    if (!single && !final) dict = data.slice(data.length - PIGZ_DICT_SIZE);
  };

  return {
    write(chunk: Uint8Array): void {
      if (ended) throw new Error("pigz: write after end");
      let off = 0;
      while (off < chunk.length) {
        // A full block is only compressed once more input shows it is not the last one.
        if (fill === blockSize) {
          compress(cur, false);
          fill = 0;
        }
        const n = Math.min(blockSize - fill, chunk.length - off);
        cur.set(chunk.subarray(off, off + n), fill);
        fill += n;
        off += n;
      }
    },
    end(): void {
      if (ended) return;
      ended = true;
      compress(cur.subarray(0, fill), true);
      engine.end();
    },
  };
}
