/**
 * Block encoder matching GNU gzip's trees.c: symbol buffering, the early-flush guess and the
 * stored/static/dynamic choice; the Huffman trees themselves are built in deflate-common.
 * Every ordering below affects the emitted bits.
 */
import * as H from "../deflate-common/huffman";

// module-local copies: tally() and emitSymbols() run per symbol
const { LENGTH_CODE, BASE_LENGTH, BASE_DIST, EXTRA_LBITS, EXTRA_DBITS, LITERALS, END_BLOCK, D_CODES, distCode } = H;

export const LIT_BUFSIZE = 0x8000;
const DIST_BUFSIZE = 0x8000;

const BUF_SIZE = 1 << 16;

/** LSB-first bit output; full buffers are queued and handed to the consumer by deliver(). */
export class BitSink implements H.BitWriter {
  private buf = new Uint8Array(BUF_SIZE);
  private pos = 0;
  private bits = 0;
  private count = 0;
  private pending: Uint8Array[] = [];
  constructor(private readonly onData: (out: Uint8Array) => void) {}

  put(v: number, n: number): void {
    this.bits |= v << this.count;
    this.count += n;
    if (this.count >= 16) {
      if (this.pos + 2 > this.buf.length) this.drain();
      this.buf[this.pos++] = this.bits & 0xff;
      this.buf[this.pos++] = (this.bits >>> 8) & 0xff;
      this.bits >>>= 16;
      this.count -= 16;
    }
  }

  byte(b: number): void {
    if (this.pos === this.buf.length) this.drain();
    this.buf[this.pos++] = b;
  }

  /** Pad to a byte boundary with zero bits. */
  align(): void {
    if (this.count > 8) {
      this.byte(this.bits & 0xff);
      this.byte((this.bits >>> 8) & 0xff);
    } else if (this.count > 0) {
      this.byte(this.bits & 0xff);
    }
    this.bits = 0;
    this.count = 0;
  }

  bytes(src: Uint8Array, start: number, n: number): void {
    let off = start;
    const end = start + n;
    while (off < end) {
      if (this.pos === this.buf.length) this.drain();
      const k = Math.min(end - off, this.buf.length - this.pos);
      this.buf.set(src.subarray(off, off + k), this.pos);
      this.pos += k;
      off += k;
    }
  }

  /** Hand a full buffer to the pending list; a fresh one takes its place (no copy). */
  drain(): void {
    if (this.pos === 0) return;
    this.pending.push(this.buf.subarray(0, this.pos));
    this.buf = new Uint8Array(BUF_SIZE);
    this.pos = 0;
  }

  /** Pass finished output to the consumer; a partly filled buffer only goes out at the end. */
  deliver(end: boolean): void {
    if (end) this.drain();
    const out = this.pending;
    if (out.length === 0) return;
    this.pending = [];
    for (const b of out) this.onData(b);
  }
}

export class BlockEncoder {
  private readonly lbuf = new Uint8Array(LIT_BUFSIZE);
  private readonly dbuf = new Uint16Array(DIST_BUFSIZE);
  private readonly isMatch = new Uint8Array(LIT_BUFSIZE);
  private lastLit = 0;
  private lastDist = 0;

  private readonly trees = new H.BlockTrees();
  private readonly lfreq = this.trees.lt.freq;
  private readonly dfreq = this.trees.dt.freq;

  constructor(
    private readonly level: number,
    private readonly out: BitSink,
  ) {}

  /**
   * Record a literal (dist 0, lc = byte) or a match (dist >= 1, lc = length - 3).
   * `pos`/`blockStart` feed gzip's "is compression poor enough to cut the block" guess.
   * Returns true when the block must be flushed now.
   */
  tally(dist: number, lc: number, pos: number, blockStart: number): boolean {
    const i = this.lastLit++;
    this.lbuf[i] = lc;
    if (dist === 0) {
      this.isMatch[i] = 0;
      this.lfreq[lc]++;
    } else {
      const d = dist - 1;
      this.isMatch[i] = 1;
      this.lfreq[LENGTH_CODE[lc] + LITERALS + 1]++;
      this.dfreq[distCode(d)]++;
      this.dbuf[this.lastDist++] = d;
    }
    const n = this.lastLit;
    if (this.level > 2 && (n & 0xfff) === 0) {
      let outBits = n * 8;
      const df = this.dfreq;
      for (let c = 0; c < D_CODES; c++) outBits += df[c] * (5 + EXTRA_DBITS[c]);
      const outBytes = Math.floor(outBits / 8);
      const inBytes = pos - blockStart;
      if (this.lastDist < n >>> 1 && outBytes < Math.floor(inBytes / 2)) return true;
    }
    return n === LIT_BUFSIZE - 1 || this.lastDist === DIST_BUFSIZE;
  }

  private emitSymbols(lcode: Int32Array, llen: Int32Array, dcode: Int32Array, dlen: Int32Array): void {
    const out = this.out;
    let dx = 0;
    for (let i = 0; i < this.lastLit; i++) {
      let lc = this.lbuf[i];
      if (this.isMatch[i] === 0) {
        out.put(lcode[lc], llen[lc]);
        continue;
      }
      const c = LENGTH_CODE[lc];
      out.put(lcode[c + LITERALS + 1], llen[c + LITERALS + 1]);
      const xl = EXTRA_LBITS[c];
      if (xl !== 0) {
        lc -= BASE_LENGTH[c];
        out.put(lc, xl);
      }
      let d = this.dbuf[dx++];
      const dc = distCode(d);
      out.put(dcode[dc], dlen[dc]);
      const xd = EXTRA_DBITS[dc];
      if (xd !== 0) {
        d -= BASE_DIST[dc];
        out.put(d, xd);
      }
    }
    out.put(lcode[END_BLOCK], llen[END_BLOCK]);
  }

  /**
   * Encode the pending symbols as one block. `data`/`start` locate the block's raw bytes for a
   * stored block; start < 0 means they already left the window, so storing is not allowed.
   */
  flush(data: Uint8Array, start: number, storedLen: number, last: boolean): void {
    const trees = this.trees;
    const blMax = trees.build();
    let optBytes = Math.floor((trees.optLen + 3 + 7) / 8);
    const staticBytes = Math.floor((trees.staticLen + 3 + 7) / 8);
    if (staticBytes <= optBytes) optBytes = staticBytes;
    const eofBit = last ? 1 : 0;
    const out = this.out;

    if (storedLen + 4 <= optBytes && start >= 0) {
      out.put(eofBit, 3);
      out.align();
      out.byte(storedLen & 0xff);
      out.byte((storedLen >>> 8) & 0xff);
      out.byte(~storedLen & 0xff);
      out.byte((~storedLen >>> 8) & 0xff);
      out.bytes(data, start, storedLen);
    } else if (staticBytes === optBytes) {
      out.put(2 + eofBit, 3);
      this.emitSymbols(H.STATIC_LCODE, H.STATIC_LLEN, H.STATIC_DCODE, H.STATIC_DLEN);
    } else {
      out.put(4 + eofBit, 3);
      trees.send(blMax, out);
      this.emitSymbols(trees.lt.code, trees.lt.len, trees.dt.code, trees.dt.len);
    }
    this.lastLit = 0;
    this.lastDist = 0;
    if (last) out.align();
  }
}
