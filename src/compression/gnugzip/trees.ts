/**
 * Block encoder matching GNU gzip's trees.c: symbol buffering, the early-flush guess, Huffman
 * construction (heap with depth tie-break, length-limit repair) and the stored/static/dynamic choice.
 * Written from a reading of the algorithm; every ordering below affects the emitted bits.
 */

export const LIT_BUFSIZE = 0x8000;
const DIST_BUFSIZE = 0x8000;

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

const LEN_EXTRA = Int32Array.from([
  0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
]);
const DIST_EXTRA = Int32Array.from([
  0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13,
]);
const BL_EXTRA = Int32Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7]);
const BL_ORDER = Uint8Array.from([16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]);

function reverseBits(value: number, bits: number): number {
  let r = 0;
  for (let i = 0; i < bits; i++) {
    r = (r << 1) | (value & 1);
    value >>>= 1;
  }
  return r;
}

/** Canonical code assignment from per-symbol lengths, using the given per-length counts. */
function assignCodes(len: Int32Array, code: Int32Array, maxCode: number, counts: Int32Array): void {
  const next = new Int32Array(MAX_BITS + 1);
  let c = 0;
  for (let b = 1; b <= MAX_BITS; b++) {
    c = ((c + counts[b - 1]) << 1) & 0xffff;
    next[b] = c;
  }
  for (let n = 0; n <= maxCode; n++) {
    const l = len[n];
    if (l !== 0) code[n] = reverseBits(next[l]++, l);
  }
}

// Length/distance code lookup tables (lengths are match length - 3, distances are distance - 1).
const LENGTH_CODE = new Uint8Array(256);
const BASE_LENGTH = new Int32Array(LENGTH_CODES);
const DIST_CODE = new Uint8Array(512);
const BASE_DIST = new Int32Array(D_CODES);
const STATIC_LLEN = new Int32Array(L_CODES + 2);
const STATIC_LCODE = new Int32Array(L_CODES + 2);
const STATIC_DLEN = new Int32Array(D_CODES);
const STATIC_DCODE = new Int32Array(D_CODES);
{
  let length = 0;
  let code = 0;
  for (; code < LENGTH_CODES - 1; code++) {
    BASE_LENGTH[code] = length;
    for (let n = 0; n < 1 << LEN_EXTRA[code]; n++) LENGTH_CODE[length++] = code;
  }
  // length 258 has two encodings; the dedicated code 285 wins
  LENGTH_CODE[255] = code;
  let dist = 0;
  for (code = 0; code < 16; code++) {
    BASE_DIST[code] = dist;
    for (let n = 0; n < 1 << DIST_EXTRA[code]; n++) DIST_CODE[dist++] = code;
  }
  dist >>= 7;
  for (; code < D_CODES; code++) {
    BASE_DIST[code] = dist << 7;
    for (let n = 0; n < 1 << (DIST_EXTRA[code] - 7); n++) DIST_CODE[256 + dist++] = code;
  }
  const counts = new Int32Array(MAX_BITS + 1);
  for (let n = 0; n < L_CODES + 2; n++) {
    const l = n <= 143 ? 8 : n <= 255 ? 9 : n <= 279 ? 7 : 8;
    STATIC_LLEN[n] = l;
    counts[l]++;
  }
  assignCodes(STATIC_LLEN, STATIC_LCODE, L_CODES + 1, counts);
  for (let n = 0; n < D_CODES; n++) {
    STATIC_DLEN[n] = 5;
    STATIC_DCODE[n] = reverseBits(n, 5);
  }
}

function distCode(d: number): number {
  return d < 256 ? DIST_CODE[d] : DIST_CODE[256 + (d >> 7)];
}

/** One Huffman tree plus the parameters gzip keeps in its tree descriptor. */
class Tree {
  readonly freq: Int32Array;
  readonly len: Int32Array;
  readonly dad: Int32Array;
  readonly code: Int32Array;
  maxCode = 0;
  constructor(
    size: number,
    readonly elems: number,
    readonly maxLength: number,
    readonly extra: Int32Array,
    readonly extraBase: number,
    readonly staticLen: Int32Array | null,
  ) {
    this.freq = new Int32Array(size);
    this.len = new Int32Array(size);
    this.dad = new Int32Array(size);
    this.code = new Int32Array(size);
  }
}

const BUF_SIZE = 1 << 16;

/** LSB-first bit output; full buffers are queued and handed to the consumer by deliver(). */
export class BitSink {
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

  private readonly ltree = new Tree(HEAP_SIZE, L_CODES, MAX_BITS, LEN_EXTRA, LITERALS + 1, STATIC_LLEN);
  private readonly dtree = new Tree(2 * D_CODES + 1, D_CODES, MAX_BITS, DIST_EXTRA, 0, STATIC_DLEN);
  private readonly bltree = new Tree(2 * BL_CODES + 1, BL_CODES, MAX_BL_BITS, BL_EXTRA, 0, null);

  private readonly heap = new Int32Array(2 * L_CODES + 1);
  private heapLen = 0;
  private heapMax = 0;
  private readonly depth = new Uint8Array(2 * L_CODES + 1);
  private readonly blCount = new Int32Array(MAX_BITS + 1);

  private optLen = 0;
  private staticLen = 0;

  constructor(
    private readonly level: number,
    private readonly out: BitSink,
  ) {
    this.resetBlock();
  }

  private resetBlock(): void {
    this.ltree.freq.fill(0, 0, L_CODES);
    this.dtree.freq.fill(0, 0, D_CODES);
    this.bltree.freq.fill(0, 0, BL_CODES);
    this.ltree.freq[END_BLOCK] = 1;
    this.optLen = 0;
    this.staticLen = 0;
    this.lastLit = 0;
    this.lastDist = 0;
  }

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
      this.ltree.freq[lc]++;
    } else {
      const d = dist - 1;
      this.isMatch[i] = 1;
      this.ltree.freq[LENGTH_CODE[lc] + LITERALS + 1]++;
      this.dtree.freq[distCode(d)]++;
      this.dbuf[this.lastDist++] = d;
    }
    const n = this.lastLit;
    if (this.level > 2 && (n & 0xfff) === 0) {
      let outBits = n * 8;
      const df = this.dtree.freq;
      for (let c = 0; c < D_CODES; c++) outBits += df[c] * (5 + DIST_EXTRA[c]);
      const outBytes = Math.floor(outBits / 8);
      const inBytes = pos - blockStart;
      if (this.lastDist < n >>> 1 && outBytes < Math.floor(inBytes / 2)) return true;
    }
    return n === LIT_BUFSIZE - 1 || this.lastDist === DIST_BUFSIZE;
  }

  /** Sift node k down; ties on frequency go to the shallower subtree. */
  private siftDown(t: Tree, k: number): void {
    const heap = this.heap;
    const freq = t.freq;
    const depth = this.depth;
    const v = heap[k];
    let j = k << 1;
    while (j <= this.heapLen) {
      if (j < this.heapLen) {
        const a = heap[j + 1];
        const b = heap[j];
        if (freq[a] < freq[b] || (freq[a] === freq[b] && depth[a] <= depth[b])) j++;
      }
      const u = heap[j];
      if (freq[v] < freq[u] || (freq[v] === freq[u] && depth[v] <= depth[u])) break;
      heap[k] = u;
      k = j;
      j <<= 1;
    }
    heap[k] = v;
  }

  /** Depths from the finished tree, clamped to maxLength with gzip's redistribution of overflow. */
  private lengths(t: Tree): void {
    const heap = this.heap;
    const { len, dad, freq, extra, extraBase, maxCode, maxLength, staticLen } = t;
    const blCount = this.blCount;
    blCount.fill(0);
    let overflow = 0;
    len[heap[this.heapMax]] = 0;
    let h: number;
    for (h = this.heapMax + 1; h < HEAP_SIZE; h++) {
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

  private build(t: Tree): void {
    const heap = this.heap;
    const depth = this.depth;
    const { freq, len, dad, elems, staticLen } = t;
    let maxCode = -1;
    let node = elems;
    this.heapLen = 0;
    this.heapMax = HEAP_SIZE;
    for (let n = 0; n < elems; n++) {
      if (freq[n] !== 0) {
        heap[++this.heapLen] = maxCode = n;
        depth[n] = 0;
      } else {
        len[n] = 0;
      }
    }
    // Deflate wants at least two codes; gzip fakes symbols 0/1 (or the next one up).
    while (this.heapLen < 2) {
      const fake = maxCode < 2 ? ++maxCode : 0;
      heap[++this.heapLen] = fake;
      freq[fake] = 1;
      depth[fake] = 0;
      this.optLen--;
      if (staticLen) this.staticLen -= staticLen[fake];
    }
    t.maxCode = maxCode;
    for (let n = this.heapLen >> 1; n >= 1; n--) this.siftDown(t, n);
    do {
      const n = heap[1];
      heap[1] = heap[this.heapLen--];
      this.siftDown(t, 1);
      const m = heap[1];
      heap[--this.heapMax] = n;
      heap[--this.heapMax] = m;
      freq[node] = freq[n] + freq[m];
      depth[node] = (depth[n] >= depth[m] ? depth[n] : depth[m]) + 1;
      dad[n] = dad[m] = node;
      heap[1] = node++;
      this.siftDown(t, 1);
    } while (this.heapLen >= 2);
    heap[--this.heapMax] = heap[1];
    this.lengths(t);
    assignCodes(len, t.code, maxCode, this.blCount);
  }

  /** Walk a tree's code lengths as run-length symbols; either count them or emit them. */
  private runs(t: Tree, maxCode: number, emit: boolean): void {
    const len = t.len;
    const bl = this.bltree;
    let prevLen = -1;
    let nextLen = len[0];
    let count = 0;
    let maxCount = 7;
    let minCount = 4;
    if (nextLen === 0) {
      maxCount = 138;
      minCount = 3;
    }
    if (!emit) len[maxCode + 1] = 0xffff; // sentinel ends the final run
    for (let n = 0; n <= maxCode; n++) {
      const cur = nextLen;
      nextLen = len[n + 1];
      if (++count < maxCount && cur === nextLen) continue;
      if (count < minCount) {
        if (emit) {
          do this.out.put(bl.code[cur], bl.len[cur]);
          while (--count !== 0);
        } else bl.freq[cur] += count;
      } else if (cur !== 0) {
        if (emit) {
          if (cur !== prevLen) {
            this.out.put(bl.code[cur], bl.len[cur]);
            count--;
          }
          this.out.put(bl.code[REP_3_6], bl.len[REP_3_6]);
          this.out.put(count - 3, 2);
        } else {
          if (cur !== prevLen) bl.freq[cur]++;
          bl.freq[REP_3_6]++;
        }
      } else if (count <= 10) {
        if (emit) {
          this.out.put(bl.code[REPZ_3_10], bl.len[REPZ_3_10]);
          this.out.put(count - 3, 3);
        } else bl.freq[REPZ_3_10]++;
      } else {
        if (emit) {
          this.out.put(bl.code[REPZ_11_138], bl.len[REPZ_11_138]);
          this.out.put(count - 11, 7);
        } else bl.freq[REPZ_11_138]++;
      }
      count = 0;
      prevLen = cur;
      if (nextLen === 0) {
        maxCount = 138;
        minCount = 3;
      } else if (cur === nextLen) {
        maxCount = 6;
        minCount = 3;
      } else {
        maxCount = 7;
        minCount = 4;
      }
    }
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
      const xl = LEN_EXTRA[c];
      if (xl !== 0) {
        lc -= BASE_LENGTH[c];
        out.put(lc, xl);
      }
      let d = this.dbuf[dx++];
      const dc = distCode(d);
      out.put(dcode[dc], dlen[dc]);
      const xd = DIST_EXTRA[dc];
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
    const lt = this.ltree;
    const dt = this.dtree;
    const bt = this.bltree;
    this.build(lt);
    this.build(dt);
    this.runs(lt, lt.maxCode, false);
    this.runs(dt, dt.maxCode, false);
    this.build(bt);
    let blMax = BL_CODES - 1;
    for (; blMax >= 3; blMax--) if (bt.len[BL_ORDER[blMax]] !== 0) break;
    this.optLen += 3 * (blMax + 1) + 5 + 5 + 4;

    let optBytes = Math.floor((this.optLen + 3 + 7) / 8);
    const staticBytes = Math.floor((this.staticLen + 3 + 7) / 8);
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
      this.emitSymbols(STATIC_LCODE, STATIC_LLEN, STATIC_DCODE, STATIC_DLEN);
    } else {
      out.put(4 + eofBit, 3);
      const lcodes = lt.maxCode + 1;
      const dcodes = dt.maxCode + 1;
      out.put(lcodes - 257, 5);
      out.put(dcodes - 1, 5);
      out.put(blMax + 1 - 4, 4);
      for (let r = 0; r <= blMax; r++) out.put(bt.len[BL_ORDER[r]], 3);
      this.runs(lt, lcodes - 1, true);
      this.runs(dt, dcodes - 1, true);
      this.emitSymbols(lt.code, lt.len, dt.code, dt.len);
    }
    this.resetBlock();
    if (last) out.align();
  }
}
