/**
 * Level 1 (BestSpeed) match finder: Go's Snappy-derived greedy encoder. It works on whole
 * 64 KiB - 1 blocks, keeps one 16K-entry table of (4-byte value, position) and may reach back
 * into the previous block. Positions are stored relative to a running base (`cur`) that grows
 * by each block's size and is rebased before it could overflow an int32.
 */
import { LENGTH_SHIFT, MATCH_FLAG, MAX_STORE_BLOCK } from "./tables";

const TABLE_BITS = 14;
const TABLE_SIZE = 1 << TABLE_BITS;
const HASH_MUL = 0x1e35a7bd;
const MAX_DISTANCE = 1 << 15;
const MAX_MATCH_TAIL = 258 - 4;
/** Rebase before `cur` + one block could exceed int32 (Go: MaxInt32 - 2*maxStoreBlockSize). */
const REBASE_AT = 0x7fffffff - 2 * MAX_STORE_BLOCK;
/** Stop searching this close to the end (Snappy's fast-path margin, kept for identical output). */
const INPUT_MARGIN = 15;
const MIN_SEARCHED_BLOCK = 1 + 1 + INPUT_MARGIN;

function load32(b: Uint8Array, i: number): number {
  return b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
}

function hash(u: number): number {
  return Math.imul(u, HASH_MUL) >>> (32 - TABLE_BITS);
}

export class FastMatcher {
  private readonly vals = new Int32Array(TABLE_SIZE);
  private readonly offs = new Int32Array(TABLE_SIZE);
  private readonly prev = new Uint8Array(MAX_STORE_BLOCK);
  private prevLen = 0;
  private cur = MAX_STORE_BLOCK;

  /** Forget history: no later block may match into anything seen so far. */
  reset(): void {
    this.prevLen = 0;
    // Pushing the base past every stored position makes all of them out of range.
    this.cur += MAX_DISTANCE;
    if (this.cur >= REBASE_AT) this.rebase();
  }

  /** Tokenise src[0:n] into `tokens`; returns the token count (at most n). */
  encode(src: Uint8Array, n: number, tokens: Int32Array): number {
    if (this.cur >= REBASE_AT) this.rebase();
    if (n < MIN_SEARCHED_BLOCK) {
      this.cur += MAX_STORE_BLOCK;
      this.prevLen = 0;
      for (let i = 0; i < n; i++) tokens[i] = src[i]!;
      return n;
    }
    const vals = this.vals;
    const offs = this.offs;
    const cur = this.cur;
    const sLimit = n - INPUT_MARGIN;
    let nt = 0;
    let nextEmit = 0;
    let s = 0;
    let cv = load32(src, 0);
    let nextHash = hash(cv);

    search: for (;;) {
      // Snappy's skipping heuristic: after 32 misses look at every 2nd byte, then every 3rd, ...
      let skip = 32;
      let nextS = s;
      let candOff: number;
      for (;;) {
        s = nextS;
        const stride = skip >> 5;
        nextS = s + stride;
        skip += stride;
        if (nextS > sLimit) break search;
        candOff = offs[nextHash]!;
        const candVal = vals[nextHash]!;
        const now = load32(src, nextS);
        offs[nextHash] = s + cur;
        vals[nextHash] = cv;
        nextHash = hash(now);
        if (s - (candOff - cur) <= MAX_DISTANCE && cv === candVal) break;
        cv = now;
      }
      for (let i = nextEmit; i < s; i++) tokens[nt++] = src[i]!;

      // Emit matches back to back for as long as the position right after one starts another.
      for (;;) {
        s += 4;
        const t = candOff - cur + 4;
        const extra = this.extend(s, t, src, n);
        tokens[nt++] = MATCH_FLAG | ((extra + 1) << LENGTH_SHIFT) | (s - t - 1);
        s += extra;
        nextEmit = s;
        if (s >= sLimit) break search;
        const before = load32(src, s - 1);
        const here = load32(src, s);
        const hb = hash(before);
        offs[hb] = cur + s - 1;
        vals[hb] = before;
        const hh = hash(here);
        candOff = offs[hh]!;
        const candVal = vals[hh]!;
        offs[hh] = cur + s;
        vals[hh] = here;
        if (s - (candOff - cur) > MAX_DISTANCE || here !== candVal) {
          cv = load32(src, s + 1);
          nextHash = hash(cv);
          s++;
          break;
        }
      }
    }
    for (let i = nextEmit; i < n; i++) tokens[nt++] = src[i]!;
    this.cur = cur + n;
    this.prev.set(src.subarray(0, n));
    this.prevLen = n;
    return nt;
  }

  /**
   * How far a match already known to cover 4 bytes extends beyond them: src[s..] against src[t..],
   * where a negative t points into the previous block (and may run on into the current one).
   */
  private extend(s: number, t: number, src: Uint8Array, n: number): number {
    const limit = Math.min(s + MAX_MATCH_TAIL, n);
    const max = limit - s;
    let i = 0;
    if (t >= 0) {
      while (i < max && src[s + i] === src[t + i]) i++;
      return i;
    }
    const prev = this.prev;
    const tp = this.prevLen + t;
    if (tp < 0) return 0;
    const inPrev = Math.min(this.prevLen - tp, max);
    while (i < inPrev && src[s + i] === prev[tp + i]) i++;
    if (i < inPrev || inPrev === max) return i;
    let j = 0;
    while (i + j < max && src[s + i + j] === src[j]) j++;
    return i + j;
  }

  /** Rebase stored positions so `cur` restarts just above the maximum distance. */
  private rebase(): void {
    if (this.prevLen === 0) {
      this.vals.fill(0);
      this.offs.fill(0);
    } else {
      const delta = this.cur - (MAX_DISTANCE + 1);
      const offs = this.offs;
      for (let i = 0; i < TABLE_SIZE; i++) {
        const v = offs[i]! - delta;
        offs[i] = v < 0 ? 0 : v;
      }
    }
    this.cur = MAX_DISTANCE + 1;
  }
}
