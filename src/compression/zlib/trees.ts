/**
 * Block side of a zlib 1.2.x compatible deflate: symbol buffer, the stored/fixed/dynamic block choice
 * and LSB-first bit output; the Huffman trees are built in deflate-common.
 */
import * as H from "../deflate-common/huffman";

// module-local copies: compressBlock() runs per symbol
const { LENGTH_CODE, BASE_LENGTH, DIST_CODE, BASE_DIST, EXTRA_LBITS, EXTRA_DBITS, END_BLOCK } = H;

/** Symbols per block: lit_bufsize - 1 with memLevel 8. */
export const SYM_LIMIT = (1 << 14) - 1;
/** Output is handed out once this much has accumulated; a block never adds more than ~100 KiB. */
const EMIT_AT = 1 << 16;
const OUT_SIZE = 1 << 18;

export class BlockCoder implements H.BitWriter {
  /** Per symbol: distance (0 for a literal) and literal byte or match length - 3. */
  readonly symDist = new Uint16Array(SYM_LIMIT + 1);
  readonly symLc = new Uint8Array(SYM_LIMIT + 1);
  symNext = 0;
  private readonly trees = new H.BlockTrees();
  /** Symbol counts of the current block, updated by the match finder. */
  readonly lfreq = this.trees.lt.freq;
  readonly dfreq = this.trees.dt.freq;

  private out = new Uint8Array(OUT_SIZE);
  private outPos = 0;
  private bitBuf = 0;
  private bitCount = 0;

  /** `peek` sees the output held back so far (final bytes; a view) after every block. */
  constructor(
    private readonly onData: (out: Uint8Array) => void,
    private readonly peek?: (partial: Uint8Array) => void,
  ) {}

  /** Ends the current block; `blockStart` < 0 means its bytes have left the window (no stored block). */
  flushBlock(win: Uint8Array, blockStart: number, storedLen: number, last: boolean): void {
    const trees = this.trees;
    const maxBlIndex = trees.build();
    let optLenb = (trees.optLen + 3 + 7) >>> 3;
    const staticLenb = (trees.staticLen + 3 + 7) >>> 3;
    if (staticLenb <= optLenb) optLenb = staticLenb;
    const lastBit = last ? 1 : 0;
    if (storedLen + 4 <= optLenb && blockStart >= 0) {
      this.storedBlock(win, blockStart, storedLen, lastBit);
    } else if (staticLenb === optLenb) {
      this.put(2 + lastBit, 3);
      this.compressBlock(H.STATIC_LCODE, H.STATIC_LLEN, H.STATIC_DCODE, H.STATIC_DLEN);
    } else {
      this.put(4 + lastBit, 3);
      trees.send(maxBlIndex, this);
      this.compressBlock(trees.lt.code, trees.lt.len, trees.dt.code, trees.dt.len);
    }
    this.symNext = 0;
    if (last) this.windup();
    if (this.outPos >= EMIT_AT || last) this.emit();
    else this.peek?.(this.out.subarray(0, this.outPos));
  }

  private emit(): void {
    if (this.outPos === 0) return;
    this.onData(this.out.slice(0, this.outPos));
    this.outPos = 0;
  }

  put(value: number, n: number): void {
    let bb = this.bitBuf | (value << this.bitCount);
    let bc = this.bitCount + n;
    if (bc >= 16) {
      this.out[this.outPos++] = bb & 0xff;
      this.out[this.outPos++] = (bb >>> 8) & 0xff;
      bb >>>= 16;
      bc -= 16;
    }
    this.bitBuf = bb;
    this.bitCount = bc;
  }

  /** Pads the bit stream to a byte boundary. */
  private windup(): void {
    if (this.bitCount > 8) {
      this.out[this.outPos++] = this.bitBuf & 0xff;
      this.out[this.outPos++] = (this.bitBuf >>> 8) & 0xff;
    } else if (this.bitCount > 0) {
      this.out[this.outPos++] = this.bitBuf & 0xff;
    }
    this.bitBuf = 0;
    this.bitCount = 0;
  }

  private storedBlock(win: Uint8Array, start: number, len: number, lastBit: number): void {
    if (len > 0xffff) throw new Error("zlib deflate: stored block too long");
    this.put(lastBit, 3);
    this.windup();
    const out = this.out;
    let p = this.outPos;
    out[p++] = len & 0xff;
    out[p++] = len >>> 8;
    out[p++] = ~len & 0xff;
    out[p++] = (~len >>> 8) & 0xff;
    out.set(win.subarray(start, start + len), p);
    this.outPos = p + len;
  }

  private compressBlock(lcode: Int32Array, llen: Int32Array, dcode: Int32Array, dlen: Int32Array): void {
    const symDist = this.symDist;
    const symLc = this.symLc;
    const n = this.symNext;
    const out = this.out;
    let p = this.outPos;
    let bb = this.bitBuf;
    let bc = this.bitCount;
    for (let i = 0; i < n; i++) {
      let dist = symDist[i];
      const lc = symLc[i];
      let v: number;
      let nb: number;
      if (dist === 0) {
        v = lcode[lc];
        nb = llen[lc];
      } else {
        // Every write adds at most 16 bits to at most 15 pending ones, so 32-bit ints suffice.
        const c = LENGTH_CODE[lc];
        bb |= lcode[c + 257] << bc;
        bc += llen[c + 257];
        if (bc >= 16) {
          out[p++] = bb & 0xff;
          out[p++] = (bb >>> 8) & 0xff;
          bb >>>= 16;
          bc -= 16;
        }
        const xl = EXTRA_LBITS[c];
        if (xl !== 0) {
          bb |= (lc - BASE_LENGTH[c]) << bc;
          bc += xl;
          if (bc >= 16) {
            out[p++] = bb & 0xff;
            out[p++] = (bb >>> 8) & 0xff;
            bb >>>= 16;
            bc -= 16;
          }
        }
        dist--;
        const dc = dist < 256 ? DIST_CODE[dist] : DIST_CODE[256 + (dist >> 7)];
        v = dcode[dc];
        nb = dlen[dc];
        const xd = EXTRA_DBITS[dc];
        if (xd !== 0) {
          bb |= v << bc;
          bc += nb;
          if (bc >= 16) {
            out[p++] = bb & 0xff;
            out[p++] = (bb >>> 8) & 0xff;
            bb >>>= 16;
            bc -= 16;
          }
          v = dist - BASE_DIST[dc];
          nb = xd;
        }
      }
      bb |= v << bc;
      bc += nb;
      if (bc >= 16) {
        out[p++] = bb & 0xff;
        out[p++] = (bb >>> 8) & 0xff;
        bb >>>= 16;
        bc -= 16;
      }
    }
    this.outPos = p;
    this.bitBuf = bb;
    this.bitCount = bc;
    this.put(lcode[END_BLOCK], llen[END_BLOCK]);
  }
}
