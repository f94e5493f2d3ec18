/**
 * Match finder and block driver reproducing zlib 1.2.x deflate (raw, windowBits 15, memLevel 8, default
 * strategy) bit for bit: deflate_fast for levels 1-3, lazy deflate_slow for 4-9.
 *
 * zlib's result can depend on when fill_window runs (a slide turns a chain head at window offset 0 into
 * NIL). Input is therefore staged so the window is refilled only when a full window's worth is available,
 * which is what a single deflate() call over the whole input does; the output is independent of chunking.
 */
import * as H from "../deflate-common/huffman";
import * as P from "../deflate-common/params";
import { BlockCoder, SYM_LIMIT } from "./trees";

// module-local copies so the hot loops see plain constants
const { WSIZE, WMASK, WINDOW_SIZE, HASH_SIZE, HASH_MASK, HASH_SHIFT, MIN_MATCH, MAX_MATCH } = P;
const { MIN_LOOKAHEAD, MAX_DIST, TOO_FAR, CONFIG } = P;
const { LENGTH_CODE, DIST_CODE } = H;

const STAGE_SIZE = 4 * WINDOW_SIZE;
const NO_MATCH = 0xffff; // longestMatch start when no better match was found

/**
 * Longest match for the string at `scan` along the hash chain from `cur`, starting from `best`.
 * Returns `len << 16 | start`, start NO_MATCH when nothing beat `best`. Candidates are screened on
 * bytes 0-1 and best-1..best; byte 2 then matches too since chains only hold strings of one 15-bit hash.
 */
function longestMatch(
  view: DataView,
  prev: Uint16Array,
  scan: number,
  cur: number,
  best: number,
  chain: number,
  nice: number,
  lookahead: number,
): number {
  const limit = scan > MAX_DIST ? scan - MAX_DIST : 0;
  if (nice > lookahead) nice = lookahead;
  let start = NO_MATCH;
  const start2 = view.getUint16(scan, true);
  let end2 = view.getUint16(scan + best - 1, true);
  do {
    if (view.getUint16(cur + best - 1, true) !== end2 || view.getUint16(cur, true) !== start2) continue;
    // Compare 4 bytes at a time; the window has slack so reads past 258 stay in bounds.
    let len = MIN_MATCH;
    for (;;) {
      const x = view.getInt32(cur + len, true) ^ view.getInt32(scan + len, true);
      if (x !== 0) {
        len += (31 - Math.clz32(x & -x)) >> 3;
        break;
      }
      len += 4;
      if (len >= MAX_MATCH) {
        len = MAX_MATCH;
        break;
      }
    }
    if (len > best) {
      start = cur;
      best = len;
      if (len >= nice) break;
      end2 = view.getUint16(scan + best - 1, true);
    }
  } while ((cur = prev[cur & WMASK]) > limit && --chain !== 0);
  return ((best <= lookahead ? best : lookahead) << 16) | start;
}

export class ZlibDeflater {
  private readonly win = new Uint8Array(WINDOW_SIZE + 16);
  private readonly view = new DataView(this.win.buffer);
  private readonly head = new Uint16Array(HASH_SIZE);
  private readonly prev = new Uint16Array(WSIZE);
  private readonly head32 = new Uint32Array(this.head.buffer);
  private readonly prev32 = new Uint32Array(this.prev.buffer);
  private readonly coder: BlockCoder;
  private readonly stage = new Uint8Array(STAGE_SIZE);
  private stageStart = 0;
  private stageEnd = 0;

  private readonly goodMatch: number;
  private readonly maxLazy: number;
  private readonly niceMatch: number;
  private readonly maxChain: number;
  private readonly fast: boolean;

  private strstart = 0;
  private blockStart = 0;
  private lookahead = 0;
  private insH = 0;
  private matchStart = 0;
  private matchLength = MIN_MATCH - 1;
  private prevLength = MIN_MATCH - 1;
  private matchAvailable = false;
  private done = false;

  constructor(level: number, onData: (out: Uint8Array) => void, peek?: (partial: Uint8Array) => void) {
    if (!Number.isInteger(level) || level < 1 || level > 9) throw new RangeError(`zlib level ${level}`);
    [this.goodMatch, this.maxLazy, this.niceMatch, this.maxChain] = CONFIG[level];
    this.fast = level <= 3;
    this.coder = new BlockCoder(onData, peek);
  }

  write(chunk: Uint8Array): void {
    if (this.done) throw new Error("zlib deflate: write after end");
    let off = 0;
    while (off < chunk.length) {
      if (this.stageEnd === STAGE_SIZE) {
        this.stage.copyWithin(0, this.stageStart, this.stageEnd);
        this.stageEnd -= this.stageStart;
        this.stageStart = 0;
      }
      const n = Math.min(STAGE_SIZE - this.stageEnd, chunk.length - off);
      this.stage.set(chunk.subarray(off, off + n), this.stageEnd);
      this.stageEnd += n;
      off += n;
      if (this.stageEnd - this.stageStart >= WINDOW_SIZE) this.run(false);
    }
  }

  end(): void {
    if (this.done) return;
    this.done = true;
    this.run(true);
  }

  private run(finish: boolean): void {
    if (this.fast) this.deflateFast(finish);
    else this.deflateSlow(finish);
  }

  /** True when the window may be refilled now: a full window of input is staged, or input has ended. */
  private canFill(finish: boolean): boolean {
    return finish || this.stageEnd - this.stageStart >= WINDOW_SIZE;
  }

  private fillWindow(): void {
    const win = this.win;
    do {
      let more = WINDOW_SIZE - this.lookahead - this.strstart;
      if (this.strstart >= WSIZE + MAX_DIST) {
        win.copyWithin(0, WSIZE, WSIZE + WSIZE - more);
        this.matchStart -= WSIZE;
        this.strstart -= WSIZE;
        this.blockStart -= WSIZE;
        this.slideHash();
        more += WSIZE;
      }
      const avail = this.stageEnd - this.stageStart;
      if (avail === 0) break;
      const n = Math.min(avail, more);
      win.set(this.stage.subarray(this.stageStart, this.stageStart + n), this.strstart + this.lookahead);
      this.stageStart += n;
      this.lookahead += n;
      if (this.lookahead >= MIN_MATCH) {
        this.insH = ((win[this.strstart] << HASH_SHIFT) ^ win[this.strstart + 1]) & HASH_MASK;
      }
    } while (this.lookahead < MIN_LOOKAHEAD && this.stageEnd > this.stageStart);
  }

  /** Rebases head and prev by WSIZE (older positions become NIL), two 16-bit entries per 32-bit word. */
  private slideHash(): void {
    for (const a of [this.head32, this.prev32]) {
      for (let i = 0; i < a.length; i++) {
        const w = a[i];
        const top = (w & 0x80008000) >>> 0;
        // Each lane becomes 0x7fff when its top bit is set, else 0; lanes cannot borrow from each other.
        a[i] = w & (top - (top >>> 15));
      }
    }
  }

  /** Levels 4-9: a match is taken only if the next position does not start a longer one. */
  private deflateSlow(finish: boolean): void {
    const { win, view, head, prev, coder, maxLazy, goodMatch, niceMatch, maxChain } = this;
    const symDist = coder.symDist;
    const symLc = coder.symLc;
    const lfreq = coder.lfreq;
    const dfreq = coder.dfreq;
    let strstart = this.strstart;
    let lookahead = this.lookahead;
    let insH = this.insH;
    let matchStart = this.matchStart;
    let matchLength = this.matchLength;
    let prevLength = this.prevLength;
    let matchAvailable = this.matchAvailable;
    let blockStart = this.blockStart;
    let sym = coder.symNext;
    for (;;) {
      if (lookahead < MIN_LOOKAHEAD) {
        if (!this.canFill(finish)) break;
        this.strstart = strstart;
        this.lookahead = lookahead;
        this.insH = insH;
        this.matchStart = matchStart;
        this.blockStart = blockStart;
        this.fillWindow();
        strstart = this.strstart;
        lookahead = this.lookahead;
        insH = this.insH;
        matchStart = this.matchStart;
        blockStart = this.blockStart;
        if (lookahead === 0) break;
      }
      let hashHead = 0;
      if (lookahead >= MIN_MATCH) {
        insH = ((insH << HASH_SHIFT) ^ win[strstart + 2]) & HASH_MASK;
        hashHead = head[insH];
        prev[strstart & WMASK] = hashHead;
        head[insH] = strstart;
      }
      prevLength = matchLength;
      const prevMatch = matchStart;
      matchLength = MIN_MATCH - 1;
      if (hashHead !== 0 && prevLength < maxLazy && strstart - hashHead <= MAX_DIST) {
        const chain = prevLength >= goodMatch ? maxChain >> 2 : maxChain;
        const r = longestMatch(view, prev, strstart, hashHead, prevLength, chain, niceMatch, lookahead);
        matchLength = r >>> 16;
        if ((r & 0xffff) !== NO_MATCH) matchStart = r & 0xffff;
        // A far 3-byte match usually costs more than three literals.
        if (matchLength === MIN_MATCH && strstart - matchStart > TOO_FAR) matchLength = MIN_MATCH - 1;
      }
      if (prevLength >= MIN_MATCH && matchLength <= prevLength) {
        const maxInsert = strstart + lookahead - MIN_MATCH;
        const dist = strstart - 1 - prevMatch;
        const lc = prevLength - MIN_MATCH;
        symDist[sym] = dist;
        symLc[sym++] = lc;
        lfreq[LENGTH_CODE[lc] + 257]++;
        dfreq[dist <= 256 ? DIST_CODE[dist - 1] : DIST_CODE[256 + ((dist - 1) >> 7)]]++;
        lookahead -= prevLength - 1;
        let n = prevLength - 2;
        do {
          if (++strstart <= maxInsert) {
            insH = ((insH << HASH_SHIFT) ^ win[strstart + 2]) & HASH_MASK;
            prev[strstart & WMASK] = head[insH];
            head[insH] = strstart;
          }
        } while (--n !== 0);
        matchAvailable = false;
        matchLength = MIN_MATCH - 1;
        strstart++;
        if (sym === SYM_LIMIT) {
          coder.symNext = sym;
          coder.flushBlock(win, blockStart, strstart - blockStart, false);
          sym = 0;
          blockStart = strstart;
        }
      } else if (matchAvailable) {
        const c = win[strstart - 1];
        symDist[sym] = 0;
        symLc[sym++] = c;
        lfreq[c]++;
        if (sym === SYM_LIMIT) {
          coder.symNext = sym;
          coder.flushBlock(win, blockStart, strstart - blockStart, false);
          sym = 0;
          blockStart = strstart;
        }
        strstart++;
        lookahead--;
      } else {
        matchAvailable = true;
        strstart++;
        lookahead--;
      }
    }
    if (finish) {
      if (matchAvailable) {
        const c = win[strstart - 1];
        symDist[sym] = 0;
        symLc[sym++] = c;
        lfreq[c]++;
        matchAvailable = false;
      }
      coder.symNext = sym;
      coder.flushBlock(win, blockStart, strstart - blockStart, true);
      sym = 0;
      blockStart = strstart;
    }
    coder.symNext = sym;
    this.strstart = strstart;
    this.lookahead = lookahead;
    this.insH = insH;
    this.matchStart = matchStart;
    this.matchLength = matchLength;
    this.prevLength = prevLength;
    this.matchAvailable = matchAvailable;
    this.blockStart = blockStart;
  }

  /** Levels 1-3: greedy matching; short matches are fully inserted into the hash chains. */
  private deflateFast(finish: boolean): void {
    const { win, view, head, prev, coder, maxLazy, niceMatch, maxChain } = this;
    const symDist = coder.symDist;
    const symLc = coder.symLc;
    const lfreq = coder.lfreq;
    const dfreq = coder.dfreq;
    let strstart = this.strstart;
    let lookahead = this.lookahead;
    let insH = this.insH;
    let matchStart = this.matchStart;
    let matchLength = this.matchLength;
    let blockStart = this.blockStart;
    let sym = coder.symNext;
    for (;;) {
      if (lookahead < MIN_LOOKAHEAD) {
        if (!this.canFill(finish)) break;
        this.strstart = strstart;
        this.lookahead = lookahead;
        this.insH = insH;
        this.matchStart = matchStart;
        this.blockStart = blockStart;
        this.fillWindow();
        strstart = this.strstart;
        lookahead = this.lookahead;
        insH = this.insH;
        matchStart = this.matchStart;
        blockStart = this.blockStart;
        if (lookahead === 0) break;
      }
      let hashHead = 0;
      if (lookahead >= MIN_MATCH) {
        insH = ((insH << HASH_SHIFT) ^ win[strstart + 2]) & HASH_MASK;
        hashHead = head[insH];
        prev[strstart & WMASK] = hashHead;
        head[insH] = strstart;
      }
      if (hashHead !== 0 && strstart - hashHead <= MAX_DIST) {
        // deflate_fast never updates prev_length, so the search always starts from MIN_MATCH - 1.
        const r = longestMatch(view, prev, strstart, hashHead, MIN_MATCH - 1, maxChain, niceMatch, lookahead);
        matchLength = r >>> 16;
        if ((r & 0xffff) !== NO_MATCH) matchStart = r & 0xffff;
      }
      if (matchLength >= MIN_MATCH) {
        const dist = strstart - matchStart;
        const lc = matchLength - MIN_MATCH;
        symDist[sym] = dist;
        symLc[sym++] = lc;
        lfreq[LENGTH_CODE[lc] + 257]++;
        dfreq[dist <= 256 ? DIST_CODE[dist - 1] : DIST_CODE[256 + ((dist - 1) >> 7)]]++;
        lookahead -= matchLength;
        if (matchLength <= maxLazy && lookahead >= MIN_MATCH) {
          let n = matchLength - 1;
          do {
            strstart++;
            insH = ((insH << HASH_SHIFT) ^ win[strstart + 2]) & HASH_MASK;
            prev[strstart & WMASK] = head[insH];
            head[insH] = strstart;
          } while (--n !== 0);
          strstart++;
        } else {
          strstart += matchLength;
          insH = ((win[strstart] << HASH_SHIFT) ^ win[strstart + 1]) & HASH_MASK;
        }
        matchLength = 0;
      } else {
        const c = win[strstart];
        symDist[sym] = 0;
        symLc[sym++] = c;
        lfreq[c]++;
        lookahead--;
        strstart++;
      }
      if (sym === SYM_LIMIT) {
        coder.symNext = sym;
        coder.flushBlock(win, blockStart, strstart - blockStart, false);
        sym = 0;
        blockStart = strstart;
      }
    }
    if (finish) {
      coder.symNext = sym;
      coder.flushBlock(win, blockStart, strstart - blockStart, true);
      sym = 0;
      blockStart = strstart;
    }
    coder.symNext = sym;
    this.strstart = strstart;
    this.lookahead = lookahead;
    this.insH = insH;
    this.matchStart = matchStart;
    this.matchLength = matchLength;
    this.blockStart = blockStart;
  }
}
