/**
 * The six "fast" match finders of klauspost/compress (levels 1-6). Each one scans a chunk of at
 * most 65535 bytes, may refer back 32 KiB into earlier chunks of the same stream, and leaves its
 * hash tables primed for the next chunk.
 *
 * Positions are indices into one caller-owned buffer holding the dictionary and the block
 * contiguously; the reference keeps a sliding history slice instead, so we track where that
 * slice would start (histStart) for the few bounds that depend on it. Empty table slots hold
 * EMPTY, which every distance check rejects, just as stale entries are rejected by the reference.
 */
import { Tokens } from "./tokens";

const EMPTY = -(1 << 30);
const MAX_OFF = 32768;
/** The reference's history buffer capacity; when full it keeps only the last 32 KiB. */
const HISTORY_CAP = 65535 * 5;
const INPUT_MARGIN = 11;
const MIN_NON_LITERAL = 13;

const PRIME4 = 2654435761;
const P5_HI = 0xcf;
const P5_LO = 0x1bbcdcbb;
const P7_HI = 0xcf1bbc;
const P7_LO = 0xdcbfa563;
const P7_LO_0 = P7_LO & 0xffff;
const P7_LO_1 = P7_LO >>> 16;

function rd32(b: Uint8Array, i: number): number {
  return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24);
}

/** Top bits of (4 bytes × PRIME4) mod 2^32; `shift` = 32 - table bits. */
function h4(b: Uint8Array, i: number, shift: number): number {
  return Math.imul(rd32(b, i), PRIME4) >>> shift;
}

/** Hash of a 5-byte value given as its low word and fifth byte (top bits of (v<<24)·P5 mod 2^64). */
function h5w(lo: number, b4: number, shift: number): number {
  const b0 = lo & 255;
  const hiWord = (lo >>> 8) | (b4 << 24);
  const top = Math.floor((b0 * P5_LO) / 256) + Math.imul(b0 << 24, P5_HI) + Math.imul(hiWord, P5_LO);
  return top >>> shift;
}

function h5(b: Uint8Array, i: number, shift: number): number {
  return h5w(rd32(b, i), b[i + 4], shift);
}

/** 15-bit hash of 7 bytes: top bits of (v<<8)·P7 mod 2^64. */
function h7(b: Uint8Array, i: number): number {
  const lo = rd32(b, i);
  const hi3 = b[i + 4] | (b[i + 5] << 8) | (b[i + 6] << 16);
  const loW = (lo << 8) >>> 0;
  const hiW = (lo >>> 24) | (hi3 << 8);
  // high word of loW × P7_LO, from 16-bit halves
  const a0 = loW & 0xffff;
  const a1 = loW >>> 16;
  const m1 = a1 * P7_LO_0 + ((a0 * P7_LO_0) >>> 16);
  const m2 = a0 * P7_LO_1 + (m1 & 0xffff);
  const mulHi = a1 * P7_LO_1 + (m1 >>> 16) + (m2 >>> 16);
  return (mulHi + Math.imul(loW, P7_HI) + Math.imul(hiW, P7_LO)) >>> 17;
}

/** Length of the common prefix of b[a..] and b[t..], at most `max`. */
function matchLen(b: Uint8Array, a: number, t: number, max: number): number {
  let n = 0;
  while (n + 4 <= max && rd32(b, a + n) === rd32(b, t + n)) n += 4;
  while (n < max && b[a + n] === b[t + n]) n++;
  return n;
}

export abstract class FastEncoder {
  /** Where the reference's history slice would start, and its length. */
  protected histStart = 0;
  protected histLen = 0;

  /** Forget everything (a new pgzip block). */
  reset(): void {
    this.histLen = 0;
    this.clearTables();
  }

  protected abstract clearTables(): void;

  /** Tokenise b[start..end) (≤ 65535 bytes, directly after the previous chunk) into tk. */
  abstract encode(tk: Tokens, b: Uint8Array, start: number, end: number): void;

  protected addBlock(start: number, end: number): void {
    if (this.histLen === 0) this.histStart = start;
    if (this.histLen + (end - start) > HISTORY_CAP) {
      this.histStart += this.histLen - MAX_OFF;
      this.histLen = MAX_OFF;
    }
    this.histLen += end - start;
  }
}

function emitRemainder(tk: Tokens, b: Uint8Array, nextEmit: number, end: number): void {
  // nothing matched at all: leave the token list empty so the chunk is stored
  if (nextEmit < end && tk.n !== 0) tk.addLiterals(b, nextEmit, end);
}

// ---------------------------------------------------------------------------------------- 1

class Level1 extends FastEncoder {
  private readonly table = new Int32Array(1 << 15);

  protected clearTables(): void {
    this.table.fill(EMPTY);
  }

  encode(tk: Tokens, b: Uint8Array, start: number, end: number): void {
    this.addBlock(start, end);
    if (end - start < MIN_NON_LITERAL) {
      tk.n = end - start;
      return;
    }
    const table = this.table;
    const histStart = this.histStart;
    const sLimit = end - INPUT_MARGIN;
    const SH = 17;
    let s = start;
    let nextEmit = s;
    outer: for (;;) {
      let nextS: number;
      let cand: number;
      for (;;) {
        let h = h5(b, s, SH);
        cand = table[h];
        nextS = s + 2 + ((s - nextEmit) >> 5);
        if (nextS > sLimit) break outer;
        table[h] = s;
        h = h5(b, nextS, SH);
        if (s - cand < MAX_OFF && rd32(b, s) === rd32(b, cand)) {
          table[h] = nextS;
          break;
        }
        s = nextS;
        nextS++;
        cand = table[h];
        table[h] = s;
        if (s - cand < MAX_OFF && rd32(b, s) === rd32(b, cand)) {
          table[h] = nextS;
          break;
        }
        s = nextS;
      }
      for (;;) {
        let t = cand;
        let l = 4 + matchLen(b, s + 4, t + 4, end - s - 4);
        while (t > histStart && s > nextEmit && b[t - 1] === b[s - 1]) {
          s--;
          t--;
          l++;
        }
        if (nextEmit < s) tk.addLiterals(b, nextEmit, s);
        tk.addLongMatch(l, s - t - 1);
        s += l;
        nextEmit = s;
        if (nextS >= s) s = nextS + 1;
        if (s >= sLimit) {
          if (s + l + 8 < end) table[h5(b, s, SH)] = s;
          break outer;
        }
        table[h5(b, s - 2, SH)] = s - 2;
        const h = h5(b, s, SH);
        cand = table[h];
        table[h] = s;
        if (s - cand > MAX_OFF || rd32(b, s) !== rd32(b, cand)) {
          s++;
          break;
        }
      }
    }
    emitRemainder(tk, b, nextEmit, end);
  }
}

// ---------------------------------------------------------------------------------------- 2

class Level2 extends FastEncoder {
  private readonly table = new Int32Array(1 << 17);

  protected clearTables(): void {
    this.table.fill(EMPTY);
  }

  encode(tk: Tokens, b: Uint8Array, start: number, end: number): void {
    this.addBlock(start, end);
    if (end - start < MIN_NON_LITERAL) {
      tk.n = end - start;
      return;
    }
    const table = this.table;
    const histStart = this.histStart;
    const sLimit = end - INPUT_MARGIN;
    const SH = 15;
    let s = start;
    let nextEmit = s;
    let cvPos = s;
    outer: for (;;) {
      let nextS = s;
      let cand: number;
      for (;;) {
        let h = h5(b, cvPos, SH);
        s = nextS;
        nextS = s + 2 + ((s - nextEmit) >> 5);
        if (nextS > sLimit) break outer;
        cand = table[h];
        table[h] = s;
        h = h5(b, nextS, SH);
        if (s - cand < MAX_OFF && rd32(b, s) === rd32(b, cand)) {
          table[h] = nextS;
          break;
        }
        s = nextS;
        nextS++;
        cand = table[h];
        table[h] = s;
        if (s - cand < MAX_OFF && rd32(b, s) === rd32(b, cand)) break;
        cvPos = nextS;
      }
      for (;;) {
        let t = cand;
        let l = 4 + matchLen(b, s + 4, t + 4, end - s - 4);
        while (t > histStart && s > nextEmit && b[t - 1] === b[s - 1]) {
          s--;
          t--;
          l++;
        }
        if (nextEmit < s) tk.addLiterals(b, nextEmit, s);
        tk.addLongMatch(l, s - t - 1);
        s += l;
        nextEmit = s;
        if (nextS >= s) s = nextS + 1;
        if (s >= sLimit) {
          if (s + l + 8 < end) table[h5(b, s, SH)] = s;
          break outer;
        }
        // index a few positions inside the match (the third from a word with only 4 live bytes)
        for (let i = s - l + 2; i < s - 5; i += 7) {
          table[h5(b, i, SH)] = i;
          table[h5(b, i + 2, SH)] = i + 2;
          table[h5w(rd32(b, i + 4), 0, SH)] = i + 4;
        }
        table[h5(b, s - 2, SH)] = s - 2;
        table[h5(b, s - 1, SH)] = s - 1;
        const h = h5(b, s, SH);
        cand = table[h];
        table[h] = s;
        if (s - cand > MAX_OFF || rd32(b, s) !== rd32(b, cand)) {
          s++;
          break;
        }
      }
      cvPos = s;
    }
    emitRemainder(tk, b, nextEmit, end);
  }
}

// ---------------------------------------------------------------------------------------- 3

class Level3 extends FastEncoder {
  private readonly cur = new Int32Array(1 << 16);
  private readonly prev = new Int32Array(1 << 16);

  protected clearTables(): void {
    this.cur.fill(EMPTY);
    this.prev.fill(EMPTY);
  }

  encode(tk: Tokens, b: Uint8Array, start: number, end: number): void {
    this.addBlock(start, end);
    if (end - start < MIN_NON_LITERAL) {
      tk.n = end - start;
      return;
    }
    const cur = this.cur;
    const prev = this.prev;
    const histStart = this.histStart;
    const sLimit = end - INPUT_MARGIN;
    const SH = 16;
    let s = start;
    let nextEmit = s;
    let cvPos = s;
    outer: for (;;) {
      let nextS = s;
      let cand: number;
      for (;;) {
        const h = h5(b, cvPos, SH);
        s = nextS;
        nextS = s + 1 + ((s - nextEmit) >> 7);
        if (nextS > sLimit) break outer;
        const cc = cur[h];
        const cp = prev[h];
        const minOff = s - (MAX_OFF - 4);
        prev[h] = cc;
        cur[h] = s;
        cand = cc;
        cvPos = nextS;
        if (cand < minOff) continue;
        const v = rd32(b, s);
        if (v === rd32(b, cand)) {
          if (cp < minOff || v !== rd32(b, cp)) break;
          // both candidates match: keep the longer
          const lim = end - s - 4;
          if (matchLen(b, s + 4, cp + 4, lim) > matchLen(b, s + 4, cand + 4, lim)) cand = cp;
          break;
        }
        cand = cp;
        if (cand > minOff && v === rd32(b, cand)) break;
      }
      for (;;) {
        let t = cand;
        let l = 4 + matchLen(b, s + 4, t + 4, end - s - 4);
        while (t > histStart && s > nextEmit && b[t - 1] === b[s - 1]) {
          s--;
          t--;
          l++;
        }
        if (nextEmit < s) tk.addLiterals(b, nextEmit, s);
        tk.addLongMatch(l, s - t - 1);
        s += l;
        nextEmit = s;
        if (nextS >= s) s = nextS + 1;
        if (s >= sLimit) {
          t += l;
          if (t + 8 < end && t > histStart) {
            const h = h5(b, t, SH);
            prev[h] = cur[h];
            cur[h] = t;
          }
          break outer;
        }
        for (let i = s - l + 2; i < s - 5; i += 6) {
          const h = h5(b, i, SH);
          prev[h] = cur[h];
          cur[h] = i;
        }
        let h = h5(b, s - 2, SH);
        prev[h] = cur[h];
        cur[h] = s - 2;
        h = h5(b, s - 1, SH);
        prev[h] = cur[h];
        cur[h] = s - 1;
        h = h5(b, s, SH);
        const cc = cur[h];
        const cp = prev[h];
        prev[h] = cc;
        cur[h] = s;
        const minOff = s - (MAX_OFF - 4);
        if (cc > minOff) {
          const v = rd32(b, s);
          if (v === rd32(b, cc)) {
            cand = cc;
            continue;
          }
          if (cp > minOff && v === rd32(b, cp)) {
            cand = cp;
            continue;
          }
        }
        s++;
        cvPos = s;
        break;
      }
    }
    emitRemainder(tk, b, nextEmit, end);
  }
}

// ---------------------------------------------------------------------------------------- 4

class Level4 extends FastEncoder {
  private readonly table = new Int32Array(1 << 15);
  private readonly bTable = new Int32Array(1 << 15);

  protected clearTables(): void {
    this.table.fill(EMPTY);
    this.bTable.fill(EMPTY);
  }

  encode(tk: Tokens, b: Uint8Array, start: number, end: number): void {
    this.addBlock(start, end);
    if (end - start < MIN_NON_LITERAL) {
      tk.n = end - start;
      return;
    }
    const table = this.table;
    const bTable = this.bTable;
    const histStart = this.histStart;
    const sLimit = end - INPUT_MARGIN;
    const SH = 17;
    let s = start;
    let nextEmit = s;
    outer: for (;;) {
      let nextS = s;
      let t: number;
      for (;;) {
        // (the hashed position always equals nextS here)
        const hS = h4(b, nextS, SH);
        const hL = h7(b, nextS);
        s = nextS;
        nextS = s + 1 + ((s - nextEmit) >> 6);
        if (nextS > sLimit) break outer;
        const sC = table[hS];
        const lC = bTable[hL];
        table[hS] = s;
        bTable[hL] = s;
        const v = rd32(b, s);
        t = lC;
        if (s - t < MAX_OFF && v === rd32(b, t)) break;
        t = sC;
        if (s - t < MAX_OFF && v === rd32(b, t)) {
          const lc2 = bTable[h7(b, nextS)];
          if (nextS - lc2 < MAX_OFF && rd32(b, lc2) === rd32(b, nextS)) {
            const l1 = matchLen(b, s + 4, t + 4, end - s - 4);
            const l2 = matchLen(b, nextS + 4, lc2 + 4, end - nextS - 4);
            if (l2 > l1) {
              s = nextS;
              t = lc2;
            }
          }
          break;
        }
      }
      let l = 4 + matchLen(b, s + 4, t + 4, end - s - 4);
      while (t > histStart && s > nextEmit && b[t - 1] === b[s - 1]) {
        s--;
        t--;
        l++;
      }
      if (nextEmit < s) tk.addLiterals(b, nextEmit, s);
      tk.addLongMatch(l, s - t - 1);
      s += l;
      nextEmit = s;
      if (nextS >= s) s = nextS + 1;
      if (s >= sLimit) {
        if (s + 8 < end) {
          table[h4(b, s, SH)] = s;
          bTable[h7(b, s)] = s;
        }
        break;
      }
      for (let i = nextS; i < s - 1; i += 3) {
        bTable[h7(b, i)] = i;
        bTable[h7(b, i + 1)] = i + 1;
        table[h4(b, i + 1, SH)] = i + 1;
      }
      table[h4(b, s - 1, SH)] = s - 1;
      bTable[h7(b, s - 1)] = s - 1;
    }
    emitRemainder(tk, b, nextEmit, end);
  }
}

// ---------------------------------------------------------------------------------------- 5

class Level5 extends FastEncoder {
  private readonly table = new Int32Array(1 << 15);
  private readonly bCur = new Int32Array(1 << 15);
  private readonly bPrev = new Int32Array(1 << 15);

  protected clearTables(): void {
    this.table.fill(EMPTY);
    this.bCur.fill(EMPTY);
    this.bPrev.fill(EMPTY);
  }

  encode(tk: Tokens, b: Uint8Array, start: number, end: number): void {
    this.addBlock(start, end);
    if (end - start < MIN_NON_LITERAL) {
      tk.n = end - start;
      return;
    }
    const table = this.table;
    const bCur = this.bCur;
    const bPrev = this.bPrev;
    const histStart = this.histStart;
    const sLimit = end - INPUT_MARGIN;
    const SH = 17;
    // matchlen with the reference's 254-byte cap (so l ≤ 258 before any extension)
    const capped = (a: number, t: number): number => {
      const max = Math.min(a + 254, end) - a;
      return matchLen(b, a, t, max);
    };
    let s = start;
    let nextEmit = s;
    outer: for (;;) {
      let nextS = s;
      let l = 0;
      let t: number;
      for (;;) {
        let hS = h4(b, nextS, SH);
        let hL = h7(b, nextS);
        s = nextS;
        nextS = s + 1 + ((s - nextEmit) >> 6);
        if (nextS > sLimit) break outer;
        const sC = table[hS];
        const lCur = bCur[hL];
        const lPrev = bPrev[hL];
        table[hS] = s;
        bPrev[hL] = bCur[hL];
        bCur[hL] = s;
        hS = h4(b, nextS, SH);
        hL = h7(b, nextS);
        const v = rd32(b, s);
        t = lCur;
        if (s - t < MAX_OFF) {
          if (v === rd32(b, t)) {
            table[hS] = nextS;
            bPrev[hL] = bCur[hL];
            bCur[hL] = nextS;
            const t2 = lPrev;
            if (s - t2 < MAX_OFF && v === rd32(b, t2)) {
              l = capped(s + 4, t + 4) + 4;
              const ml1 = capped(s + 4, t2 + 4) + 4;
              if (ml1 > l) {
                t = t2;
                l = ml1;
              }
            }
            break;
          }
          t = lPrev;
          if (s - t < MAX_OFF && v === rd32(b, t)) {
            table[hS] = nextS;
            bPrev[hL] = bCur[hL];
            bCur[hL] = nextS;
            break;
          }
        }
        t = sC;
        if (s - t < MAX_OFF && v === rd32(b, t)) {
          l = capped(s + 4, t + 4) + 4;
          const nCur = bCur[hL];
          const nPrev = bPrev[hL];
          table[hS] = nextS;
          bPrev[hL] = bCur[hL];
          bCur[hL] = nextS;
          let t2 = nCur;
          if (nextS - t2 < MAX_OFF) {
            const nv = rd32(b, nextS);
            if (rd32(b, t2) === nv) {
              const ml = capped(nextS + 4, t2 + 4) + 4;
              if (ml > l) {
                t = t2;
                s = nextS;
                l = ml;
                break;
              }
            }
            t2 = nPrev;
            if (nextS - t2 < MAX_OFF && rd32(b, t2) === nv) {
              const ml = capped(nextS + 4, t2 + 4) + 4;
              if (ml > l) {
                t = t2;
                s = nextS;
                l = ml;
                break;
              }
            }
          }
          break;
        }
      }

      if (l === 0) l = 4 + matchLen(b, s + 4, t + 4, end - s - 4);
      else if (l === 258) l += matchLen(b, s + l, t + l, end - s - l);

      // a match ending where a long-hash entry points may start 2 bytes later and run longer
      const sAt = s + l;
      if (l < 30 && sAt < sLimit) {
        const t2 = bCur[h7(b, sAt)] - l + 2;
        const s2 = s + 2;
        const off = s2 - t2;
        if (t2 >= histStart && off < MAX_OFF && off > 0) {
          const l2 = matchLen(b, s2, t2, end - s2);
          if (l2 > l) {
            t = t2;
            l = l2;
            s = s2;
          }
        }
      }

      while (t > histStart && s > nextEmit && b[t - 1] === b[s - 1]) {
        s--;
        t--;
        l++;
      }
      if (nextEmit < s) tk.addLiterals(b, nextEmit, s);
      tk.addLongMatch(l, s - t - 1);
      s += l;
      nextEmit = s;
      if (nextS >= s) s = nextS + 1;
      if (s >= sLimit) break;

      let i = s - l + 1;
      if (i < s - 1) {
        table[h4(b, i, SH)] = i;
        let h = h7(b, i);
        bPrev[h] = bCur[h];
        bCur[h] = i;
        h = h7(b, i + 1);
        bPrev[h] = bCur[h];
        bCur[h] = i + 1;
        table[h4(b, i + 2, SH)] = i + 2;
        for (i += 4; i < s - 1; i += 3) {
          h = h7(b, i);
          bPrev[h] = bCur[h];
          bCur[h] = i;
          table[h4(b, i + 1, SH)] = i + 1;
        }
      }
      table[h4(b, s - 1, SH)] = s - 1;
      const h = h7(b, s - 1);
      bPrev[h] = bCur[h];
      bCur[h] = s - 1;
    }
    emitRemainder(tk, b, nextEmit, end);
  }
}

// ---------------------------------------------------------------------------------------- 6

class Level6 extends FastEncoder {
  private readonly table = new Int32Array(1 << 15);
  private readonly bCur = new Int32Array(1 << 15);
  private readonly bPrev = new Int32Array(1 << 15);

  protected clearTables(): void {
    this.table.fill(EMPTY);
    this.bCur.fill(EMPTY);
    this.bPrev.fill(EMPTY);
  }

  encode(tk: Tokens, b: Uint8Array, start: number, end: number): void {
    this.addBlock(start, end);
    if (end - start < MIN_NON_LITERAL) {
      tk.n = end - start;
      return;
    }
    const table = this.table;
    const bCur = this.bCur;
    const bPrev = this.bPrev;
    const histStart = this.histStart;
    const sLimit = end - INPUT_MARGIN;
    const SH = 17;
    const capped = (a: number, t: number): number => {
      const max = Math.min(a + 254, end) - a;
      return matchLen(b, a, t, max);
    };
    let s = start;
    let nextEmit = s;
    let repeat = 1;
    outer: for (;;) {
      let nextS = s;
      let l = 0;
      let t: number;
      for (;;) {
        let hS = h4(b, nextS, SH);
        let hL = h7(b, nextS);
        s = nextS;
        nextS = s + 1 + ((s - nextEmit) >> 7);
        if (nextS > sLimit) break outer;
        const sC = table[hS];
        const lCur = bCur[hL];
        const lPrev = bPrev[hL];
        table[hS] = s;
        bPrev[hL] = bCur[hL];
        bCur[hL] = s;
        hS = h4(b, nextS, SH);
        hL = h7(b, nextS);
        const v = rd32(b, s);
        t = lCur;
        if (s - t < MAX_OFF) {
          if (v === rd32(b, t)) {
            table[hS] = nextS;
            bPrev[hL] = bCur[hL];
            bCur[hL] = nextS;
            const t2 = lPrev;
            if (s - t2 < MAX_OFF && v === rd32(b, t2)) {
              l = capped(s + 4, t + 4) + 4;
              const ml1 = capped(s + 4, t2 + 4) + 4;
              if (ml1 > l) {
                t = t2;
                l = ml1;
              }
            }
            break;
          }
          t = lPrev;
          if (s - t < MAX_OFF && v === rd32(b, t)) {
            table[hS] = nextS;
            bPrev[hL] = bCur[hL];
            bCur[hL] = nextS;
            break;
          }
        }
        t = sC;
        if (s - t < MAX_OFF && v === rd32(b, t)) {
          l = capped(s + 4, t + 4) + 4;
          const nCur = bCur[hL];
          const nPrev = bPrev[hL];
          table[hS] = nextS;
          bPrev[hL] = bCur[hL];
          bCur[hL] = nextS;

          // the last match distance, tried one byte further on
          let t2 = s - repeat + 1;
          if (rd32(b, t2) === rd32(b, s + 1)) {
            const ml = capped(s + 5, t2 + 4) + 4;
            if (ml > l) {
              t = t2;
              l = ml;
              s += 1;
              break;
            }
          }
          t2 = nCur;
          if (nextS - t2 < MAX_OFF) {
            const nv = rd32(b, nextS);
            if (rd32(b, t2) === nv) {
              const ml = capped(nextS + 4, t2 + 4) + 4;
              if (ml > l) {
                t = t2;
                s = nextS;
                l = ml;
              }
            }
            t2 = nPrev;
            if (nextS - t2 < MAX_OFF && rd32(b, t2) === nv) {
              const ml = capped(nextS + 4, t2 + 4) + 4;
              if (ml > l) {
                t = t2;
                s = nextS;
                l = ml;
                break;
              }
            }
          }
          break;
        }
      }

      if (l === 0) l = 4 + matchLen(b, s + 4, t + 4, end - s - 4);
      else if (l === 258) l += matchLen(b, s + l, t + l, end - s - l);

      const sAt = s + l;
      if (sAt < sLimit) {
        const hl = h7(b, sAt);
        const eCur = bCur[hl];
        const ePrev = bPrev[hl];
        const s2 = s + 2;
        let t2 = eCur - l + 2;
        let off = s2 - t2;
        if (off < MAX_OFF) {
          if (off > 0 && t2 >= histStart) {
            const l2 = matchLen(b, s2, t2, end - s2);
            if (l2 > l) {
              t = t2;
              l = l2;
              s = s2;
            }
          }
          t2 = ePrev - l + 2;
          off = s2 - t2;
          if (off > 0 && off < MAX_OFF && t2 >= histStart) {
            const l2 = matchLen(b, s2, t2, end - s2);
            if (l2 > l) {
              t = t2;
              l = l2;
              s = s2;
            }
          }
        }
      }

      while (t > histStart && s > nextEmit && b[t - 1] === b[s - 1]) {
        s--;
        t--;
        l++;
      }
      if (nextEmit < s) tk.addLiterals(b, nextEmit, s);
      tk.addLongMatch(l, s - t - 1);
      repeat = s - t;
      s += l;
      nextEmit = s;
      if (nextS >= s) s = nextS + 1;
      if (s >= sLimit) {
        for (let i = nextS + 1; i < end - 8; i += 2) {
          table[h4(b, i, SH)] = i;
          const h = h7(b, i);
          bPrev[h] = bCur[h];
          bCur[h] = i;
        }
        break;
      }
      for (let i = nextS + 1; i < s - 1; i += 2) {
        const ha = h7(b, i);
        const hb = h7(b, i + 1);
        table[h4(b, i, SH)] = i;
        bPrev[ha] = bCur[ha];
        bCur[ha] = i;
        bPrev[hb] = bCur[hb];
        bCur[hb] = i + 1;
      }
    }
    emitRemainder(tk, b, nextEmit, end);
  }
}

export function newFastEncoder(level: number): FastEncoder {
  switch (level) {
    case 1:
      return new Level1();
    case 2:
      return new Level2();
    case 3:
      return new Level3();
    case 4:
      return new Level4();
    case 5:
      return new Level5();
    case 6:
      return new Level6();
    default:
      throw new RangeError(`pgzip: no fast encoder for level ${level}`);
  }
}
