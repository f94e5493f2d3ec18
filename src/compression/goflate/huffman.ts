/**
 * Length-limited canonical Huffman codes, built exactly the way Go's compress/flate builds them.
 *
 * Many different length assignments are optimal for the same histogram, so byte-exact output
 * needs the same construction, not just "an" optimal one:
 *   1. symbols with a non-zero count are ordered by (count, symbol) ascending;
 *   2. the number of symbols per code length comes from a lazily evaluated package-merge over
 *      `maxBits` levels (each level remembers its last node weight, the next leaf weight, the
 *      next pair weight from the level below and how many nodes it still owes);
 *   3. the shortest lengths go to the tail of that order (highest count, and for equal counts
 *      the higher symbol), and within one length codes are handed out in symbol order.
 * One or two used symbols get 1-bit codes 0 and 1 in symbol order.
 */

const INF = 0x7fffffff;
/** Room for the deepest tree Go allows (maxBits < 16) plus the guard level above it. */
const LEVELS = 17;

export class HuffmanCode {
  /** Code length per symbol; 0 for unused symbols. */
  readonly lens: Uint8Array;
  /** Code per symbol, bit-reversed so it can be emitted LSB first. */
  readonly codes: Uint16Array;

  // Scratch space, kept to avoid allocating per block.
  private readonly sortKeys: Float64Array;
  private readonly sortedSyms: Int32Array;
  private readonly sortedFreq: Int32Array;
  private readonly chunk: Int32Array;
  private readonly perLength = new Int32Array(LEVELS);
  private readonly lastWeight = new Int32Array(LEVELS);
  private readonly nextLeaf = new Int32Array(LEVELS);
  private readonly nextPair = new Int32Array(LEVELS);
  private readonly owed = new Int32Array(LEVELS);
  /** Newest node of each level, as a cell index. */
  private readonly chainHead = new Int32Array(LEVELS);
  private readonly cellCount: Int32Array;
  private readonly cellNext: Int32Array;

  constructor(readonly size: number) {
    this.lens = new Uint8Array(size);
    this.codes = new Uint16Array(size);
    this.sortKeys = new Float64Array(size);
    this.sortedSyms = new Int32Array(size + 1);
    this.sortedFreq = new Int32Array(size + 1);
    this.chunk = new Int32Array(size);
    // Each level creates at most 2 * size nodes.
    this.cellCount = new Int32Array(2 * size * LEVELS + LEVELS);
    this.cellNext = new Int32Array(2 * size * LEVELS + LEVELS);
  }

  /** A code with the given fixed lengths (used for the RFC's fixed Huffman block). */
  static fromLengths(lengths: ArrayLike<number>): HuffmanCode {
    const h = new HuffmanCode(lengths.length);
    const next = new Int32Array(17);
    const count = new Int32Array(17);
    for (let i = 0; i < lengths.length; i++) if (lengths[i]! > 0) count[lengths[i]!]++;
    // RFC 1951 3.2.2: first code of each length.
    let code = 0;
    for (let len = 1; len < 17; len++) {
      code = (code + count[len - 1]!) << 1;
      next[len] = code;
    }
    for (let i = 0; i < lengths.length; i++) {
      const len = lengths[i]!;
      h.lens[i] = len;
      if (len > 0) h.codes[i] = reverse(next[len]!++, len);
    }
    return h;
  }

  /** Sum of freq[i] * len[i]: the payload size in bits under this code. */
  cost(freq: Int32Array): number {
    let total = 0;
    const lens = this.lens;
    for (let i = 0; i < freq.length; i++) {
      const f = freq[i]!;
      if (f !== 0) total += f * lens[i]!;
    }
    return total;
  }

  /** Rebuild the code for `freq` (length this.size) with lengths of at most maxBits. */
  build(freq: Int32Array, maxBits: number): void {
    const lens = this.lens;
    const keys = this.sortKeys;
    let used = 0;
    for (let i = 0; i < this.size; i++) {
      const f = freq[i]!;
      if (f !== 0) keys[used++] = f * 512 + i;
      else lens[i] = 0;
    }
    if (used <= 2) {
      // keys were collected in symbol order.
      for (let k = 0; k < used; k++) {
        const sym = keys[k]! % 512;
        lens[sym] = 1;
        this.codes[sym] = k;
      }
      return;
    }
    // (count, symbol) is a total order, so any sort gives Go's order.
    const order = keys.subarray(0, used).sort();
    const syms = this.sortedSyms;
    const weights = this.sortedFreq;
    for (let k = 0; k < used; k++) {
      const key = order[k]!;
      const sym = key % 512;
      syms[k] = sym;
      weights[k] = (key - sym) / 512;
    }
    weights[used] = INF;
    this.countLengths(used, maxBits);
    this.assign(used);
  }

  /**
   * Fill perLength[1..maxBits'] with the number of symbols of each code length.
   *
   * What each level has to remember about its newest node is the number of leaves to the left of
   * that node and of each of its ancestors one level down, two levels down, ... When a level
   * takes a package from the level below, it inherits that level's whole ancestry. Go copies the
   * counts; here every node is an immutable (leafCount, ancestor) cell in a pool, so taking a
   * package is O(1) and only the top level's final chain is walked at the end.
   */
  private countLengths(n: number, requestedMaxBits: number): void {
    const w = this.sortedFreq;
    const last = this.lastWeight;
    const leaf = this.nextLeaf;
    const pair = this.nextPair;
    const owed = this.owed;
    const head = this.chainHead;
    const cellCount = this.cellCount;
    const cellNext = this.cellNext;
    // A tree over n leaves is never deeper than n - 1.
    const maxBits = Math.min(requestedMaxBits, n - 1);
    this.perLength.fill(0);
    owed.fill(0);
    let cells = 0;
    for (let lv = 1; lv <= maxBits; lv++) {
      // Every level starts as if its two cheapest leaves were already placed.
      last[lv] = w[1]!;
      leaf[lv] = w[2]!;
      pair[lv] = lv === 1 ? INF : w[0]! + w[1]!;
      cellCount[cells] = 2;
      cellNext[cells] = -1;
      head[lv] = cells++;
    }
    // The top level must produce 2n - 2 nodes in total; two are already there.
    owed[maxBits] = 2 * n - 4;

    let lv = maxBits;
    for (;;) {
      if (pair[lv] === INF && leaf[lv] === INF) {
        // Nothing left to take here: retire this level for good.
        if (lv >= maxBits) throw new Error("goflate: huffman construction ran out of nodes");
        owed[lv] = 0;
        pair[lv + 1] = INF;
        lv++;
        continue;
      }
      const before = last[lv]!;
      const mine = head[lv]!;
      if (leaf[lv]! < pair[lv]!) {
        const k = cellCount[mine]! + 1;
        last[lv] = leaf[lv]!;
        leaf[lv] = w[k]!;
        cellCount[cells] = k;
        cellNext[cells] = cellNext[mine]!;
      } else {
        // Take a package from the level below; it then owes us two fresh nodes.
        last[lv] = pair[lv]!;
        cellCount[cells] = cellCount[mine]!;
        cellNext[cells] = head[lv - 1]!;
        owed[lv - 1] = 2;
      }
      head[lv] = cells++;
      if (--owed[lv] === 0) {
        if (lv === maxBits) break;
        pair[lv + 1] = before + last[lv]!;
        lv++;
      } else {
        while (owed[lv - 1]! > 0) lv--;
      }
    }
    // Walk the top chain: leaves left of the ancestor at each depth.
    let cell = head[maxBits]!;
    if (cellCount[cell] !== n) throw new Error("goflate: huffman leaf count mismatch");
    let bits = 1;
    for (let level = maxBits; level > 0; level--) {
      const next = cellNext[cell]!;
      const below = next < 0 ? 0 : cellCount[next]!;
      this.perLength[bits++] = cellCount[cell]! - below;
      cell = next;
    }
  }

  /** Hand out canonical codes: short lengths to the most frequent symbols, symbol order within a length. */
  private assign(n: number): void {
    const syms = this.sortedSyms;
    const chunk = this.chunk;
    let end = n;
    let code = 0;
    for (let len = 1; len < LEVELS; len++) {
      code <<= 1;
      const count = this.perLength[len]!;
      if (count === 0) continue;
      const part = chunk.subarray(0, count);
      part.set(syms.subarray(end - count, end));
      part.sort();
      for (let k = 0; k < count; k++) {
        const sym = part[k]!;
        this.lens[sym] = len;
        this.codes[sym] = reverse(code++, len);
      }
      end -= count;
    }
  }
}

/** Reverse the low `len` bits of `v`. */
export function reverse(v: number, len: number): number {
  let r = 0;
  for (let i = 0; i < len; i++) {
    r = (r << 1) | (v & 1);
    v >>>= 1;
  }
  return r;
}
