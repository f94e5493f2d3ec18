/**
 * Block side of a zlib 1.2.x compatible deflate: symbol buffer, Huffman tree construction with zlib's
 * tie-breaking, the stored/fixed/dynamic block choice and LSB-first bit output.
 */

const L_CODES = 286;
const D_CODES = 30;
const BL_CODES = 19;
const HEAP_SIZE = 2 * L_CODES + 1;
const MAX_BITS = 15;
const MAX_BL_BITS = 7;
const END_BLOCK = 256;
const REP_3_6 = 16;
const REPZ_3_10 = 17;
const REPZ_11_138 = 18;

/** Symbols per block: lit_bufsize - 1 with memLevel 8. */
export const SYM_LIMIT = (1 << 14) - 1;
/** Output is handed out once this much has accumulated; a block never adds more than ~100 KiB. */
const EMIT_AT = 1 << 16;
const OUT_SIZE = 1 << 18;

const EXTRA_LBITS = Int32Array.of(
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  1,
  1,
  1,
  1,
  2,
  2,
  2,
  2,
  3,
  3,
  3,
  3,
  4,
  4,
  4,
  4,
  5,
  5,
  5,
  5,
  0,
);
const EXTRA_DBITS = Int32Array.of(
  0,
  0,
  0,
  0,
  1,
  1,
  2,
  2,
  3,
  3,
  4,
  4,
  5,
  5,
  6,
  6,
  7,
  7,
  8,
  8,
  9,
  9,
  10,
  10,
  11,
  11,
  12,
  12,
  13,
  13,
);
const EXTRA_BLBITS = Int32Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7);
const BL_ORDER = Int32Array.of(16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15);

/** Length code (0..28) for match length - 3. */
export const LENGTH_CODE = new Uint8Array(256);
const BASE_LENGTH = new Int32Array(29);
/** Distance code for dist - 1: entries 0..255 directly, 256.. for (dist - 1) >> 7. */
export const DIST_CODE = new Uint8Array(512);
const BASE_DIST = new Int32Array(D_CODES);

const STATIC_LLEN = new Int32Array(L_CODES + 2);
const STATIC_LCODE = new Int32Array(L_CODES + 2);
const STATIC_DLEN = new Int32Array(D_CODES).fill(5);
const STATIC_DCODE = new Int32Array(D_CODES);

function reverseBits(code: number, len: number): number {
  let r = 0;
  for (let i = 0; i < len; i++) {
    r = (r << 1) | (code & 1);
    code >>>= 1;
  }
  return r;
}

/** Canonical codes from lengths (RFC 1951 3.2.2), bit-reversed for LSB-first output. */
function assignCodes(code: Int32Array, len: Int32Array, maxCode: number, blCount: Int32Array): void {
  const next = new Int32Array(MAX_BITS + 1);
  let c = 0;
  for (let bits = 1; bits <= MAX_BITS; bits++) {
    c = (c + blCount[bits - 1]) << 1;
    next[bits] = c;
  }
  for (let n = 0; n <= maxCode; n++) {
    const l = len[n];
    if (l !== 0) code[n] = reverseBits(next[l]++, l);
  }
}

(function initTables(): void {
  let length = 0;
  for (let c = 0; c < 28; c++) {
    BASE_LENGTH[c] = length;
    for (let n = 0; n < 1 << EXTRA_LBITS[c]; n++) LENGTH_CODE[length++] = c;
  }
  // Length 258 has its own code (285) although 227 + 31 would also reach it.
  LENGTH_CODE[255] = 28;
  BASE_LENGTH[28] = 255;
  let dist = 0;
  for (let c = 0; c < D_CODES; c++) {
    BASE_DIST[c] = dist;
    const end = dist + (1 << EXTRA_DBITS[c]);
    for (; dist < end; dist++) DIST_CODE[dist < 256 ? dist : 256 + (dist >> 7)] = c;
  }
  const blCount = new Int32Array(MAX_BITS + 1);
  for (let n = 0; n < L_CODES + 2; n++) {
    STATIC_LLEN[n] = n < 144 ? 8 : n < 256 ? 9 : n < 280 ? 7 : 8;
    blCount[STATIC_LLEN[n]]++;
  }
  assignCodes(STATIC_LCODE, STATIC_LLEN, L_CODES + 1, blCount);
  for (let n = 0; n < D_CODES; n++) STATIC_DCODE[n] = reverseBits(n, 5);
})();

class Tree {
  readonly freq: Int32Array;
  readonly len: Int32Array;
  readonly code: Int32Array;
  readonly dad: Int32Array;
  maxCode = 0;

  constructor(
    readonly elems: number,
    readonly base: number,
    readonly extra: Int32Array,
    readonly maxLength: number,
    readonly staticLen: Int32Array | null,
  ) {
    const size = 2 * elems + 1;
    this.freq = new Int32Array(size);
    this.len = new Int32Array(size);
    this.code = new Int32Array(size);
    this.dad = new Int32Array(size);
  }
}

export class BlockCoder {
  /** Per symbol: distance (0 for a literal) and literal byte or match length - 3. */
  readonly symDist = new Uint16Array(SYM_LIMIT + 1);
  readonly symLc = new Uint8Array(SYM_LIMIT + 1);
  symNext = 0;
  readonly lt = new Tree(L_CODES, 257, EXTRA_LBITS, MAX_BITS, STATIC_LLEN);
  readonly dt = new Tree(D_CODES, 0, EXTRA_DBITS, MAX_BITS, STATIC_DLEN);
  private readonly bt = new Tree(BL_CODES, 0, EXTRA_BLBITS, MAX_BL_BITS, null);

  private readonly heap = new Int32Array(HEAP_SIZE);
  private readonly depth = new Int32Array(HEAP_SIZE);
  private readonly blCount = new Int32Array(MAX_BITS + 1);
  private optLen = 0;
  private staticLen = 0;

  private out = new Uint8Array(OUT_SIZE);
  private outPos = 0;
  private bitBuf = 0;
  private bitCount = 0;

  /** `peek` sees the output held back so far (final bytes; a view) after every block. */
  constructor(
    private readonly onData: (out: Uint8Array) => void,
    private readonly peek?: (partial: Uint8Array) => void,
  ) {
    this.initBlock();
  }

  private initBlock(): void {
    this.lt.freq.fill(0, 0, L_CODES);
    this.dt.freq.fill(0, 0, D_CODES);
    this.bt.freq.fill(0, 0, BL_CODES);
    this.lt.freq[END_BLOCK] = 1;
    this.optLen = 0;
    this.staticLen = 0;
    this.symNext = 0;
  }

  /** Ends the current block; `blockStart` < 0 means its bytes have left the window (no stored block). */
  flushBlock(win: Uint8Array, blockStart: number, storedLen: number, last: boolean): void {
    this.buildTree(this.lt);
    this.buildTree(this.dt);
    const maxBlIndex = this.buildBlTree();
    let optLenb = (this.optLen + 3 + 7) >>> 3;
    const staticLenb = (this.staticLen + 3 + 7) >>> 3;
    if (staticLenb <= optLenb) optLenb = staticLenb;
    const lastBit = last ? 1 : 0;
    if (storedLen + 4 <= optLenb && blockStart >= 0) {
      this.storedBlock(win, blockStart, storedLen, lastBit);
    } else if (staticLenb === optLenb) {
      this.sendBits(2 + lastBit, 3);
      this.compressBlock(STATIC_LCODE, STATIC_LLEN, STATIC_DCODE, STATIC_DLEN);
    } else {
      this.sendBits(4 + lastBit, 3);
      this.sendAllTrees(this.lt.maxCode + 1, this.dt.maxCode + 1, maxBlIndex + 1);
      this.compressBlock(this.lt.code, this.lt.len, this.dt.code, this.dt.len);
    }
    this.initBlock();
    if (last) this.windup();
    if (this.outPos >= EMIT_AT || last) this.emit();
    else this.peek?.(this.out.subarray(0, this.outPos));
  }

  private emit(): void {
    if (this.outPos === 0) return;
    this.onData(this.out.slice(0, this.outPos));
    this.outPos = 0;
  }

  private sendBits(value: number, n: number): void {
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
    this.sendBits(lastBit, 3);
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
    this.sendBits(lcode[END_BLOCK], llen[END_BLOCK]);
  }

  /** Sifts heap[k] down; order is lower frequency first, ties broken by smaller subtree depth (zlib's). */
  private downHeap(freq: Int32Array, k: number, heapLen: number): void {
    const heap = this.heap;
    const depth = this.depth;
    const v = heap[k];
    const fv = freq[v];
    const dv = depth[v];
    let j = k << 1;
    while (j <= heapLen) {
      let hj = heap[j];
      if (j < heapLen) {
        const h1 = heap[j + 1];
        if (freq[h1] < freq[hj] || (freq[h1] === freq[hj] && depth[h1] <= depth[hj])) {
          j++;
          hj = h1;
        }
      }
      if (fv < freq[hj] || (fv === freq[hj] && dv <= depth[hj])) break;
      heap[k] = hj;
      k = j;
      j <<= 1;
    }
    heap[k] = v;
  }

  private buildTree(t: Tree): void {
    const { freq, len, dad, elems, staticLen } = t;
    const heap = this.heap;
    const depth = this.depth;
    let heapLen = 0;
    let heapMax = HEAP_SIZE;
    let maxCode = -1;
    for (let n = 0; n < elems; n++) {
      if (freq[n] !== 0) {
        heap[++heapLen] = maxCode = n;
        depth[n] = 0;
      } else {
        len[n] = 0;
      }
    }
    // A valid code needs two symbols; the dummies are not counted in the block cost estimates.
    while (heapLen < 2) {
      const node = maxCode < 2 ? ++maxCode : 0;
      heap[++heapLen] = node;
      freq[node] = 1;
      depth[node] = 0;
      this.optLen--;
      if (staticLen) this.staticLen -= staticLen[node];
    }
    t.maxCode = maxCode;
    for (let n = heapLen >> 1; n >= 1; n--) this.downHeap(freq, n, heapLen);
    let node = elems;
    do {
      const n = heap[1];
      heap[1] = heap[heapLen--];
      this.downHeap(freq, 1, heapLen);
      const m = heap[1];
      heap[--heapMax] = n;
      heap[--heapMax] = m;
      freq[node] = freq[n] + freq[m];
      depth[node] = (depth[n] >= depth[m] ? depth[n] : depth[m]) + 1;
      dad[n] = dad[m] = node;
      heap[1] = node++;
      this.downHeap(freq, 1, heapLen);
    } while (heapLen >= 2);
    heap[--heapMax] = heap[1];
    this.genBitLengths(t, heapMax);
    assignCodes(t.code, len, maxCode, this.blCount);
  }

  /** Lengths from the tree in heap[heapMax..], capped at maxLength with zlib's redistribution. */
  private genBitLengths(t: Tree, heapMax: number): void {
    const { freq, len, dad, base, extra, maxLength, staticLen, maxCode } = t;
    const heap = this.heap;
    const blCount = this.blCount;
    blCount.fill(0);
    len[heap[heapMax]] = 0;
    let overflow = 0;
    let h = heapMax + 1;
    for (; h < HEAP_SIZE; h++) {
      const n = heap[h];
      let bits = len[dad[n]] + 1;
      if (bits > maxLength) {
        bits = maxLength;
        overflow++;
      }
      len[n] = bits;
      if (n > maxCode) continue;
      blCount[bits]++;
      const xbits = n >= base ? extra[n - base] : 0;
      const f = freq[n];
      this.optLen += f * (bits + xbits);
      if (staticLen) this.staticLen += f * (staticLen[n] + xbits);
    }
    if (overflow === 0) return;
    do {
      let bits = maxLength - 1;
      while (blCount[bits] === 0) bits--;
      blCount[bits]--;
      blCount[bits + 1] += 2;
      blCount[maxLength]--;
      overflow -= 2;
    } while (overflow > 0);
    for (let bits = maxLength; bits !== 0; bits--) {
      let n = blCount[bits];
      while (n !== 0) {
        const m = heap[--h];
        if (m > maxCode) continue;
        if (len[m] !== bits) {
          this.optLen += (bits - len[m]) * freq[m];
          len[m] = bits;
        }
        n--;
      }
    }
  }

  private buildBlTree(): number {
    this.scanTree(this.lt);
    this.scanTree(this.dt);
    this.buildTree(this.bt);
    let maxBlIndex = BL_CODES - 1;
    for (; maxBlIndex >= 3; maxBlIndex--) if (this.bt.len[BL_ORDER[maxBlIndex]] !== 0) break;
    this.optLen += 3 * (maxBlIndex + 1) + 5 + 5 + 4;
    return maxBlIndex;
  }

  /** Counts the code-length symbols (with run-length codes 16/17/18) needed to send `t`. */
  private scanTree(t: Tree): void {
    const { len, maxCode } = t;
    const bf = this.bt.freq;
    let prevLen = -1;
    let nextLen = len[0];
    let count = 0;
    let maxCount = nextLen === 0 ? 138 : 7;
    let minCount = nextLen === 0 ? 3 : 4;
    len[maxCode + 1] = 0xffff; // guard, also relied on by sendTree
    for (let n = 0; n <= maxCode; n++) {
      const curLen = nextLen;
      nextLen = len[n + 1];
      if (++count < maxCount && curLen === nextLen) continue;
      if (count < minCount) bf[curLen] += count;
      else if (curLen !== 0) {
        if (curLen !== prevLen) bf[curLen]++;
        bf[REP_3_6]++;
      } else if (count <= 10) bf[REPZ_3_10]++;
      else bf[REPZ_11_138]++;
      count = 0;
      prevLen = curLen;
      if (nextLen === 0) {
        maxCount = 138;
        minCount = 3;
      } else if (curLen === nextLen) {
        maxCount = 6;
        minCount = 3;
      } else {
        maxCount = 7;
        minCount = 4;
      }
    }
  }

  private sendTree(t: Tree): void {
    const { len, maxCode } = t;
    const bcode = this.bt.code;
    const blen = this.bt.len;
    let prevLen = -1;
    let nextLen = len[0];
    let count = 0;
    let maxCount = nextLen === 0 ? 138 : 7;
    let minCount = nextLen === 0 ? 3 : 4;
    for (let n = 0; n <= maxCode; n++) {
      const curLen = nextLen;
      nextLen = len[n + 1];
      if (++count < maxCount && curLen === nextLen) continue;
      if (count < minCount) {
        for (; count > 0; count--) this.sendBits(bcode[curLen], blen[curLen]);
      } else if (curLen !== 0) {
        if (curLen !== prevLen) {
          this.sendBits(bcode[curLen], blen[curLen]);
          count--;
        }
        this.sendBits(bcode[REP_3_6], blen[REP_3_6]);
        this.sendBits(count - 3, 2);
      } else if (count <= 10) {
        this.sendBits(bcode[REPZ_3_10], blen[REPZ_3_10]);
        this.sendBits(count - 3, 3);
      } else {
        this.sendBits(bcode[REPZ_11_138], blen[REPZ_11_138]);
        this.sendBits(count - 11, 7);
      }
      count = 0;
      prevLen = curLen;
      if (nextLen === 0) {
        maxCount = 138;
        minCount = 3;
      } else if (curLen === nextLen) {
        maxCount = 6;
        minCount = 3;
      } else {
        maxCount = 7;
        minCount = 4;
      }
    }
  }

  private sendAllTrees(lcodes: number, dcodes: number, blcodes: number): void {
    this.sendBits(lcodes - 257, 5);
    this.sendBits(dcodes - 1, 5);
    this.sendBits(blcodes - 4, 4);
    for (let rank = 0; rank < blcodes; rank++) this.sendBits(this.bt.len[BL_ORDER[rank]], 3);
    this.sendTree(this.lt);
    this.sendTree(this.dt);
  }
}
