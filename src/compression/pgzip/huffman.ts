/**
 * Length-limited canonical Huffman codes built the way klauspost/compress (and Go's stdlib)
 * builds them: symbols sorted by (frequency, symbol), bit counts from the "levels and chains"
 * construction, then codes handed out per length in symbol order. Ties are fully ordered by
 * symbol, so any correct sort gives the same table.
 *
 * A code is packed as (bits << 5) | length; 0 means "symbol has no code".
 */
const MAX_BITS_LIMIT = 16;
const INF = 0x7fffffff;

function reverse(code: number, len: number): number {
  let r = 0;
  for (let i = 0; i < len; i++) {
    r = (r << 1) | (code & 1);
    code >>>= 1;
  }
  return r;
}

export class HuffEncoder {
  readonly codes: Uint32Array;
  /** Sort keys (freq << 9 | symbol) for the symbols in use. */
  private readonly keys: Int32Array;
  private readonly syms: Int32Array;
  // scratch for bitCounts
  private readonly lastFreq = new Int32Array(MAX_BITS_LIMIT + 1);
  private readonly nextCharFreq = new Int32Array(MAX_BITS_LIMIT + 1);
  private readonly nextPairFreq = new Int32Array(MAX_BITS_LIMIT + 1);
  private readonly needed = new Int32Array(MAX_BITS_LIMIT + 1);
  private readonly leafCounts = new Int32Array(MAX_BITS_LIMIT * MAX_BITS_LIMIT);
  private readonly bitCount = new Int32Array(MAX_BITS_LIMIT + 1);

  constructor(size: number) {
    this.codes = new Uint32Array(size);
    this.keys = new Int32Array(size);
    this.syms = new Int32Array(size);
  }

  codeLen(sym: number): number {
    return this.codes[sym] & 31;
  }

  /** Total bits to code `freq[0..n)` with this table. */
  bitLength(freq: Uint16Array, n: number): number {
    const codes = this.codes;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const f = freq[i];
      if (f !== 0) total += f * (codes[i] & 31);
    }
    return total;
  }

  /** Like bitLength, but INF if some used symbol has no code. */
  canReuseBits(freq: Uint16Array, n: number): number {
    const codes = this.codes;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const f = freq[i];
      if (f !== 0) {
        const c = codes[i];
        if (c === 0) return INF;
        total += f * (c & 31);
      }
    }
    return total;
  }

  /** Rebuild codes for symbols 0..n-1 from freq; codes past n are left untouched. */
  generate(freq: Uint16Array, n: number, maxBits: number): void {
    const codes = this.codes;
    const keys = this.keys;
    let count = 0;
    for (let i = 0; i < n; i++) {
      const f = freq[i];
      if (f !== 0) keys[count++] = (f << 9) | i;
      else codes[i] = 0;
    }
    if (count <= 2) {
      // One or two symbols: each gets a 1-bit code, in symbol order.
      for (let i = 0; i < count; i++) codes[keys[i] & 511] = (i << 5) | 1;
      return;
    }
    const list = keys.subarray(0, count);
    list.sort();
    this.bitCounts(list, maxBits);
    this.assign(list, maxBits);
  }

  /** Number of leaves per code length (bitCount[1..maxBits]) for the sorted list. */
  private bitCounts(list: Int32Array, maxBitsIn: number): void {
    const n = list.length;
    let maxBits = maxBitsIn;
    if (maxBits > n - 1) maxBits = n - 1;
    const freqAt = (k: number): number => (k < n ? list[k] >>> 9 : INF);
    const lastFreq = this.lastFreq;
    const nextCharFreq = this.nextCharFreq;
    const nextPairFreq = this.nextPairFreq;
    const needed = this.needed;
    const lc = this.leafCounts;
    lastFreq.fill(0);
    nextCharFreq.fill(0);
    nextPairFreq.fill(0);
    needed.fill(0);
    lc.fill(0);

    const f0 = list[0] >>> 9;
    const f1 = list[1] >>> 9;
    const f2 = list[2] >>> 9;
    for (let lv = 1; lv <= maxBits; lv++) {
      lastFreq[lv] = f1;
      nextCharFreq[lv] = f2;
      nextPairFreq[lv] = lv === 1 ? INF : f0 + f1;
      lc[lv * MAX_BITS_LIMIT + lv] = 2;
    }
    needed[maxBits] = 2 * n - 4;

    let lv = maxBits;
    while (lv < MAX_BITS_LIMIT) {
      if (nextPairFreq[lv] === INF && nextCharFreq[lv] === INF) {
        needed[lv] = 0;
        nextPairFreq[lv + 1] = INF;
        lv++;
        continue;
      }
      const prevFreq = lastFreq[lv];
      const row = lv * MAX_BITS_LIMIT;
      if (nextCharFreq[lv] < nextPairFreq[lv]) {
        // take the next leaf
        const k = lc[row + lv] + 1;
        lastFreq[lv] = nextCharFreq[lv];
        lc[row + lv] = k;
        nextCharFreq[lv] = freqAt(k);
      } else {
        // take a pair from the level below; inherit its leaf counts
        lastFreq[lv] = nextPairFreq[lv];
        const keep = lc[row + lv];
        lc.copyWithin(row, row - MAX_BITS_LIMIT, row);
        lc[row + lv] = keep;
        needed[lv - 1] = 2;
      }
      if (--needed[lv] === 0) {
        if (lv === maxBits) break;
        nextPairFreq[lv + 1] = prevFreq + lastFreq[lv];
        lv++;
      } else {
        while (needed[lv - 1] > 0) lv--;
      }
    }
    if (lc[maxBits * MAX_BITS_LIMIT + maxBits] !== n) throw new Error("pgzip: huffman construction failed");

    const bc = this.bitCount;
    bc.fill(0);
    const top = maxBits * MAX_BITS_LIMIT;
    let bits = 1;
    for (let level = maxBits; level > 0; level--) {
      bc[bits] = lc[top + level] - lc[top + level - 1];
      bits++;
    }
    for (let i = maxBits + 1; i <= MAX_BITS_LIMIT; i++) bc[i] = 0;
  }

  /** Hand out canonical codes: the most frequent symbols get the shortest lengths. */
  private assign(list: Int32Array, maxBits: number): void {
    const codes = this.codes;
    const syms = this.syms;
    const bc = this.bitCount;
    let code = 0;
    let remaining = list.length;
    for (let len = 0; len <= maxBits; len++) {
      code <<= 1;
      const cnt = bc[len];
      if (len === 0 || cnt === 0) continue;
      const chunk = syms.subarray(0, cnt);
      for (let k = 0; k < cnt; k++) chunk[k] = list[remaining - cnt + k] & 511;
      chunk.sort();
      for (let k = 0; k < cnt; k++) {
        codes[chunk[k]] = (reverse(code, len) << 5) | len;
        code++;
      }
      remaining -= cnt;
    }
  }
}

function fixedLiteral(): HuffEncoder {
  const h = new HuffEncoder(NUM_FIXED_LIT);
  for (let ch = 0; ch < NUM_FIXED_LIT; ch++) {
    let bits: number;
    let size: number;
    if (ch < 144) {
      bits = ch + 48;
      size = 8;
    } else if (ch < 256) {
      bits = ch + 400 - 144;
      size = 9;
    } else if (ch < 280) {
      bits = ch - 256;
      size = 7;
    } else {
      bits = ch + 192 - 280;
      size = 8;
    }
    h.codes[ch] = (reverse(bits, size) << 5) | size;
  }
  return h;
}
const NUM_FIXED_LIT = 286;

function fixedDistance(): HuffEncoder {
  const h = new HuffEncoder(30);
  for (let ch = 0; ch < 30; ch++) h.codes[ch] = (reverse(ch, 5) << 5) | 5;
  return h;
}

export const FIXED_LIT = fixedLiteral();
export const FIXED_DIST = fixedDistance();
