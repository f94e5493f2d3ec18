/**
 * Huffman side of deflate as GNU gzip's trees.c and zlib's trees.c both do it: code tables, the
 * heap-built trees with their depth tie-break, the length-limit repair, canonical codes and the
 * run-length coding of the code lengths. Every ordering here decides the emitted bits.
 */

const MAX_BITS = 15;
const MAX_BL_BITS = 7;
const LENGTH_CODES = 29;
const LITERALS = 256;
const END_BLOCK = 256;
const L_CODES = LITERALS + 1 + LENGTH_CODES; // 286
const D_CODES = 30;
const BL_CODES = 19;
const HEAP_SIZE = 2 * L_CODES + 1; // 573

const REP_3_6 = 16;
const REPZ_3_10 = 17;
const REPZ_11_138 = 18;

const EXTRA_LBITS = Int32Array.from([
  0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
]);
const EXTRA_DBITS = Int32Array.from([
  0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13,
]);
const EXTRA_BLBITS = Int32Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7]);
/** Order in which the code-length code lengths are sent. */
const BL_ORDER = Uint8Array.from([16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]);

/** Length code (0..28) for match length - 3. */
const LENGTH_CODE = new Uint8Array(256);
const BASE_LENGTH = new Int32Array(LENGTH_CODES);
/** Distance code for dist - 1: entries 0..255 directly, 256.. for (dist - 1) >> 7. */
const DIST_CODE = new Uint8Array(512);
const BASE_DIST = new Int32Array(D_CODES);
/** The fixed (block type 1) trees; two extra literal codes complete the code. */
const STATIC_LLEN = new Int32Array(L_CODES + 2);
const STATIC_LCODE = new Int32Array(L_CODES + 2);
const STATIC_DLEN = new Int32Array(D_CODES).fill(5);
const STATIC_DCODE = new Int32Array(D_CODES);

/** Distance code for d = dist - 1. */
function distCode(d: number): number {
  return d < 256 ? DIST_CODE[d] : DIST_CODE[256 + (d >> 7)];
}

function reverseBits(value: number, bits: number): number {
  let r = 0;
  for (let i = 0; i < bits; i++) {
    r = (r << 1) | (value & 1);
    value >>>= 1;
  }
  return r;
}

/** Canonical codes from lengths (RFC 1951 3.2.2), bit-reversed for LSB-first output. */
function assignCodes(code: Int32Array, len: Int32Array, maxCode: number, blCount: Int32Array): void {
  const next = new Int32Array(MAX_BITS + 1);
  let c = 0;
  for (let bits = 1; bits <= MAX_BITS; bits++) {
    // both C sources keep next_code in 16 bits
    c = ((c + blCount[bits - 1]) << 1) & 0xffff;
    next[bits] = c;
  }
  for (let n = 0; n <= maxCode; n++) {
    const l = len[n];
    if (l !== 0) code[n] = reverseBits(next[l]++, l);
  }
}

(function initTables(): void {
  let length = 0;
  for (let c = 0; c < LENGTH_CODES - 1; c++) {
    BASE_LENGTH[c] = length;
    for (let n = 0; n < 1 << EXTRA_LBITS[c]; n++) LENGTH_CODE[length++] = c;
  }
  // Length 258 has its own code (285) although 227 + 31 would also reach it.
  LENGTH_CODE[255] = LENGTH_CODES - 1;
  BASE_LENGTH[LENGTH_CODES - 1] = 255;
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

/** LSB-first bit output. */
export interface BitWriter {
  put(value: number, bits: number): void;
}

/** One tree with the parameters of the C tree descriptor; node arrays cover the internal nodes too. */
export class HuffTree {
  readonly freq: Int32Array;
  readonly len: Int32Array;
  readonly code: Int32Array;
  readonly dad: Int32Array;
  /** Largest symbol with a nonzero frequency, set by the build. */
  maxCode = 0;

  constructor(
    readonly elems: number,
    readonly extraBase: number,
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

/**
 * The literal/length, distance and code-length trees of one block, with the block's bit costs under
 * dynamic (optLen) and fixed (staticLen) codes as the block-type choice needs them.
 */
export class BlockTrees {
  readonly lt = new HuffTree(L_CODES, LITERALS + 1, EXTRA_LBITS, MAX_BITS, STATIC_LLEN);
  readonly dt = new HuffTree(D_CODES, 0, EXTRA_DBITS, MAX_BITS, STATIC_DLEN);
  readonly bt = new HuffTree(BL_CODES, 0, EXTRA_BLBITS, MAX_BL_BITS, null);
  optLen = 0;
  staticLen = 0;

  private readonly heap = new Int32Array(HEAP_SIZE);
  // subtree heights; C keeps them in bytes and the block sizes keep them far below 256
  private readonly depth = new Uint8Array(HEAP_SIZE);
  private readonly blCount = new Int32Array(MAX_BITS + 1);
  private readonly countRun = (sym: number): void => {
    this.bt.freq[sym]++;
  };

  constructor() {
    this.clearCounts();
  }

  /** Zero counts for the next block except the end-of-block code, which every block has once. */
  private clearCounts(): void {
    this.lt.freq.fill(0, 0, L_CODES);
    this.dt.freq.fill(0, 0, D_CODES);
    this.bt.freq.fill(0, 0, BL_CODES);
    this.lt.freq[END_BLOCK] = 1;
  }

  /**
   * Builds all three trees from the block's counts and sets optLen/staticLen; the counts are then
   * cleared for the next block (done here, not by the callers: inlined into a match loop the clearing
   * slowed it down by ~5%). Returns the index in BL_ORDER of the last code-length code length to send.
   */
  build(): number {
    this.optLen = 0;
    this.staticLen = 0;
    this.buildTree(this.lt);
    this.buildTree(this.dt);
    walkRuns(this.lt.len, this.lt.maxCode, this.countRun);
    walkRuns(this.dt.len, this.dt.maxCode, this.countRun);
    this.buildTree(this.bt);
    let blMax = BL_CODES - 1;
    for (; blMax >= 3; blMax--) if (this.bt.len[BL_ORDER[blMax]] !== 0) break;
    this.optLen += 3 * (blMax + 1) + 5 + 5 + 4;
    this.clearCounts();
    return blMax;
  }

  /** Writes the dynamic block header after the 3 block-type bits (HLIT, HDIST, HCLEN and the trees). */
  send(blMax: number, out: BitWriter): void {
    const { lt, dt, bt } = this;
    out.put(lt.maxCode + 1 - 257, 5);
    out.put(dt.maxCode + 1 - 1, 5);
    out.put(blMax + 1 - 4, 4);
    for (let r = 0; r <= blMax; r++) out.put(bt.len[BL_ORDER[r]], 3);
    const bcode = bt.code;
    const blen = bt.len;
    const emit = (sym: number, extra: number, extraBits: number): void => {
      out.put(bcode[sym], blen[sym]);
      if (extraBits !== 0) out.put(extra, extraBits);
    };
    walkRuns(lt.len, lt.maxCode, emit);
    walkRuns(dt.len, dt.maxCode, emit);
  }

  /** Sifts heap[k] down; lower frequency first, ties to the shallower subtree. */
  private siftDown(freq: Int32Array, k: number, heapLen: number): void {
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

  private buildTree(t: HuffTree): void {
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
    // A valid code needs two symbols; the dummies are taken out of the cost estimates again.
    while (heapLen < 2) {
      const node = maxCode < 2 ? ++maxCode : 0;
      heap[++heapLen] = node;
      freq[node] = 1;
      depth[node] = 0;
      this.optLen--;
      if (staticLen) this.staticLen -= staticLen[node];
    }
    t.maxCode = maxCode;
    for (let n = heapLen >> 1; n >= 1; n--) this.siftDown(freq, n, heapLen);
    let node = elems;
    do {
      const n = heap[1];
      heap[1] = heap[heapLen--];
      this.siftDown(freq, 1, heapLen);
      const m = heap[1];
      heap[--heapMax] = n;
      heap[--heapMax] = m;
      freq[node] = freq[n] + freq[m];
      depth[node] = (depth[n] >= depth[m] ? depth[n] : depth[m]) + 1;
      dad[n] = dad[m] = node;
      heap[1] = node++;
      this.siftDown(freq, 1, heapLen);
    } while (heapLen >= 2);
    heap[--heapMax] = heap[1];
    this.genBitLengths(t, heapMax);
    assignCodes(t.code, len, maxCode, this.blCount);
  }

  /** Lengths from the tree in heap[heapMax..], capped at maxLength with the C redistribution of overflow. */
  private genBitLengths(t: HuffTree, heapMax: number): void {
    const { freq, len, dad, extraBase, extra, maxLength, staticLen, maxCode } = t;
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
      if (n > maxCode) continue; // internal node
      blCount[bits]++;
      const xbits = n >= extraBase ? extra[n - extraBase] : 0;
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
    // Reassign lengths walking leaves from most to least frequent.
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
}

/**
 * Walks the code lengths len[0..maxCode] as code-length symbols (0..15 literally, 16/17/18 for runs),
 * handing each one with its extra-bits value to `visit`; scanning and sending share this walk.
 */
function walkRuns(
  len: Int32Array,
  maxCode: number,
  visit: (sym: number, extra: number, extraBits: number) => void,
): void {
  let prevLen = -1;
  let nextLen = len[0];
  let count = 0;
  let maxCount = nextLen === 0 ? 138 : 7;
  let minCount = nextLen === 0 ? 3 : 4;
  len[maxCode + 1] = 0xffff; // guard: ends the final run
  for (let n = 0; n <= maxCode; n++) {
    const curLen = nextLen;
    nextLen = len[n + 1];
    if (++count < maxCount && curLen === nextLen) continue;
    if (count < minCount) {
      for (; count > 0; count--) visit(curLen, 0, 0);
    } else if (curLen !== 0) {
      if (curLen !== prevLen) {
        visit(curLen, 0, 0);
        count--;
      }
      visit(REP_3_6, count - 3, 2);
    } else if (count <= 10) {
      visit(REPZ_3_10, count - 3, 3);
    } else {
      visit(REPZ_11_138, count - 11, 7);
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

// Exported by list so uses inside this module stay plain bindings, not loads from `exports`.
export {
  MAX_BITS,
  MAX_BL_BITS,
  LENGTH_CODES,
  LITERALS,
  END_BLOCK,
  L_CODES,
  D_CODES,
  BL_CODES,
  HEAP_SIZE,
  EXTRA_LBITS,
  EXTRA_DBITS,
  LENGTH_CODE,
  BASE_LENGTH,
  DIST_CODE,
  BASE_DIST,
  STATIC_LLEN,
  STATIC_LCODE,
  STATIC_DLEN,
  STATIC_DCODE,
  distCode,
};
