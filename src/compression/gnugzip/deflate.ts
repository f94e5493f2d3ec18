/**
 * Match finder and block driver reproducing GNU gzip 1.x deflate.c output bit for bit.
 *
 * gzip keeps a 64 KiB window that it refills with read() calls of exactly the free space; when the
 * lookahead runs low near the top it slides the upper 32 KiB down. Bytes beyond the end of input
 * (stale data from before a slide) can influence which equally good match is picked, so the window
 * is maintained with the same writes a regular-file read() sequence would produce.
 */
import { BitSink, BlockEncoder } from "./trees";

const WSIZE = 0x8000;
const WMASK = WSIZE - 1;
const WINDOW_SIZE = 2 * WSIZE;
const HASH_BITS = 15;
const HASH_SIZE = 1 << HASH_BITS;
const HASH_MASK = HASH_SIZE - 1;
const H_SHIFT = 5; // ceil(HASH_BITS / MIN_MATCH)
const MIN_MATCH = 3;
const MAX_MATCH = 258;
const MIN_LOOKAHEAD = MAX_MATCH + MIN_MATCH + 1;
const MAX_DIST = WSIZE - MIN_LOOKAHEAD;
const TOO_FAR = 4096;

/** good_length, max_lazy, nice_length, max_chain for levels 1..9. */
const CONFIG: ReadonlyArray<readonly [number, number, number, number]> = [
  [0, 0, 0, 0],
  [4, 4, 8, 4],
  [4, 5, 16, 8],
  [4, 6, 32, 32],
  [4, 4, 16, 16],
  [8, 16, 32, 32],
  [8, 16, 128, 128],
  [8, 32, 128, 256],
  [32, 128, 258, 1024],
  [32, 258, 258, 4096],
];

const EMPTY = new Uint8Array(0);

export class GnuDeflater {
  // A little slack past 64 KiB so end-of-input hash updates never read outside the array.
  private readonly window = new Uint8Array(WINDOW_SIZE + 8);
  private readonly head = new Uint16Array(HASH_SIZE);
  private readonly prev = new Uint16Array(WSIZE);
  private readonly sink: BitSink;
  private readonly blocks: BlockEncoder;

  private readonly goodMatch: number;
  private readonly maxLazy: number;
  private readonly niceMatch: number;
  private readonly maxChain: number;
  private readonly fast: boolean;

  private insH = 0;
  private strstart = 0;
  private blockStart = 0;
  private matchStart = 0;
  private lookahead = 0;
  private eofile = false;
  private matchLength: number;
  private matchAvailable = false;
  private phase = 0; // 0: priming the window, 1: compressing, 2: finished

  // Input not yet copied into the window (a read() is only emulated once it can be served in full).
  private stage = new Uint8Array(WINDOW_SIZE);
  private stageLen = 0;
  private src: Uint8Array = EMPTY;
  private srcPos = 0;

  constructor(level: number, onData: (out: Uint8Array) => void) {
    if (!Number.isInteger(level) || level < 1 || level > 9) throw new RangeError(`gzip level must be 1..9: ${level}`);
    const c = CONFIG[level];
    this.goodMatch = c[0];
    this.maxLazy = c[1];
    this.niceMatch = c[2];
    this.maxChain = c[3];
    this.fast = level <= 3;
    this.matchLength = this.fast ? 0 : MIN_MATCH - 1;
    this.sink = new BitSink(onData);
    this.blocks = new BlockEncoder(level, this.sink);
  }

  write(chunk: Uint8Array): void {
    if (this.phase === 2) throw new Error("write after end");
    if (chunk.length === 0) return;
    this.src = chunk;
    this.srcPos = 0;
    this.pump(false);
    const rest = chunk.length - this.srcPos;
    if (rest > 0) {
      // pump only stops when fewer bytes than one read are available, so this fits
      this.stage.set(chunk.subarray(this.srcPos), this.stageLen);
      this.stageLen += rest;
    }
    this.src = EMPTY;
    this.srcPos = 0;
  }

  end(): void {
    if (this.phase === 2) return;
    this.pump(true);
    this.sink.drain();
  }

  /** Emulate read(fd, window + at, want) on a regular file; false = wait for more input. */
  private read(at: number, want: number, final: boolean): number {
    const inSrc = this.src.length - this.srcPos;
    const avail = this.stageLen + inSrc;
    if (avail < want && !final) return -1;
    const n = Math.min(avail, want);
    const w = this.window;
    const fromStage = Math.min(n, this.stageLen);
    if (fromStage > 0) {
      w.set(this.stage.subarray(0, fromStage), at);
      if (fromStage < this.stageLen) this.stage.copyWithin(0, fromStage, this.stageLen);
      this.stageLen -= fromStage;
    }
    const fromSrc = n - fromStage;
    if (fromSrc > 0) {
      w.set(this.src.subarray(this.srcPos, this.srcPos + fromSrc), at + fromStage);
      this.srcPos += fromSrc;
    }
    return n;
  }

  /** One fill step (slide if high in the window, then read the free space). False = need input. */
  private fill(final: boolean): boolean {
    let more = WINDOW_SIZE - this.lookahead - this.strstart;
    if (this.strstart >= WSIZE + MAX_DIST) {
      const w = this.window;
      w.copyWithin(0, WSIZE, WINDOW_SIZE);
      this.matchStart -= WSIZE;
      this.strstart -= WSIZE;
      this.blockStart -= WSIZE;
      const head = this.head;
      for (let i = 0; i < HASH_SIZE; i++) {
        const m = head[i];
        head[i] = m >= WSIZE ? m - WSIZE : 0;
      }
      const prev = this.prev;
      for (let i = 0; i < WSIZE; i++) {
        const m = prev[i];
        prev[i] = m >= WSIZE ? m - WSIZE : 0;
      }
      more += WSIZE;
    }
    const at = this.strstart + this.lookahead;
    const n = this.read(at, more, final);
    if (n < 0) return false;
    if (n === 0) {
      this.eofile = true;
      // gzip zeroes two bytes so the last hash updates don't see stale data there
      this.window[at] = 0;
      this.window[at + 1] = 0;
    } else {
      this.lookahead += n;
    }
    return true;
  }

  private topUp(final: boolean): boolean {
    while (this.lookahead < MIN_LOOKAHEAD && !this.eofile) {
      if (!this.fill(final)) return false;
    }
    return true;
  }

  private pump(final: boolean): void {
    if (this.phase === 0) {
      if (!this.topUp(final)) return;
      this.insH = ((this.window[0] << H_SHIFT) ^ this.window[1]) & HASH_MASK;
      this.phase = 1;
    }
    while (this.phase === 1) {
      if (!this.topUp(final)) return;
      if (this.lookahead === 0) {
        this.finish();
        return;
      }
      if (this.fast) this.runFast();
      else this.runLazy();
    }
  }

  private finish(): void {
    const s = this.strstart;
    if (!this.fast && this.matchAvailable) this.blocks.tally(0, this.window[s - 1], s, this.blockStart);
    this.flushBlock(s, true);
    this.phase = 2;
  }

  private flushBlock(s: number, last: boolean): void {
    const bs = this.blockStart;
    this.blocks.flush(this.window, bs >= 0 ? bs : -1, s - bs, last);
  }

  /**
   * Longest match for the string at s walking the hash chain from cur. Only matches longer than
   * `best` count; ties keep the nearer candidate. Byte 2 is implied by the hash, as in gzip.
   */
  private longest(cur: number, best: number, s: number): number {
    const w = this.window;
    const prev = this.prev;
    let chain = this.maxChain;
    const limit = s > MAX_DIST ? s - MAX_DIST : 0;
    const strend = s + MAX_MATCH;
    const nice = this.niceMatch;
    let end1 = w[s + best - 1];
    let end0 = w[s + best];
    const b0 = w[s];
    const b1 = w[s + 1];
    if (best >= this.goodMatch) chain >>= 2;
    do {
      if (w[cur + best] !== end0 || w[cur + best - 1] !== end1 || w[cur] !== b0 || w[cur + 1] !== b1) continue;
      let a = s + 3;
      let b = cur + 3;
      while (a < strend && w[a] === w[b]) {
        a++;
        b++;
      }
      const len = a - s;
      if (len > best) {
        this.matchStart = cur;
        best = len;
        if (len >= nice) break;
        end1 = w[s + best - 1];
        end0 = w[s + best];
      }
    } while ((cur = prev[cur & WMASK]) > limit && --chain !== 0);
    return best;
  }

  /** Levels 4..9: lazy evaluation, a match is taken only if the next position has no longer one. */
  private runLazy(): void {
    const w = this.window;
    const head = this.head;
    const prev = this.prev;
    const blocks = this.blocks;
    const maxLazy = this.maxLazy;
    const eof = this.eofile;
    let s = this.strstart;
    let la = this.lookahead;
    let h = this.insH;
    let matchLen = this.matchLength;
    let avail = this.matchAvailable;
    while (la >= MIN_LOOKAHEAD || (eof && la !== 0)) {
      h = ((h << H_SHIFT) ^ w[s + 2]) & HASH_MASK;
      const hashHead = head[h];
      prev[s & WMASK] = hashHead;
      head[h] = s;

      const prevLen = matchLen;
      const prevMatch = this.matchStart;
      matchLen = MIN_MATCH - 1;
      if (hashHead !== 0 && prevLen < maxLazy && s - hashHead <= MAX_DIST && s <= WINDOW_SIZE - MIN_LOOKAHEAD) {
        matchLen = this.longest(hashHead, prevLen, s);
        if (matchLen > la) matchLen = la;
        if (matchLen === MIN_MATCH && s - this.matchStart > TOO_FAR) matchLen--;
      }

      if (prevLen >= MIN_MATCH && matchLen <= prevLen) {
        const flush = blocks.tally(s - 1 - prevMatch, prevLen - MIN_MATCH, s, this.blockStart);
        la -= prevLen - 1;
        // s-1 and s are hashed already; hash the rest of the match
        for (let k = prevLen - 2; k !== 0; k--) {
          s++;
          h = ((h << H_SHIFT) ^ w[s + 2]) & HASH_MASK;
          prev[s & WMASK] = head[h];
          head[h] = s;
        }
        avail = false;
        matchLen = MIN_MATCH - 1;
        s++;
        if (flush) {
          this.flushBlock(s, false);
          this.blockStart = s;
        }
      } else if (avail) {
        if (blocks.tally(0, w[s - 1], s, this.blockStart)) {
          this.flushBlock(s, false);
          this.blockStart = s;
        }
        s++;
        la--;
      } else {
        avail = true;
        s++;
        la--;
      }
    }
    this.strstart = s;
    this.lookahead = la;
    this.insH = h;
    this.matchLength = matchLen;
    this.matchAvailable = avail;
  }

  /** Levels 1..3: greedy matching; long matches are not hashed (max_lazy is the insert limit). */
  private runFast(): void {
    const w = this.window;
    const head = this.head;
    const prev = this.prev;
    const blocks = this.blocks;
    const maxInsert = this.maxLazy;
    const eof = this.eofile;
    let s = this.strstart;
    let la = this.lookahead;
    let h = this.insH;
    let matchLen = this.matchLength;
    while (la >= MIN_LOOKAHEAD || (eof && la !== 0)) {
      h = ((h << H_SHIFT) ^ w[s + 2]) & HASH_MASK;
      const hashHead = head[h];
      prev[s & WMASK] = hashHead;
      head[h] = s;
      if (hashHead !== 0 && s - hashHead <= MAX_DIST && s <= WINDOW_SIZE - MIN_LOOKAHEAD) {
        matchLen = this.longest(hashHead, MIN_MATCH - 1, s);
        if (matchLen > la) matchLen = la;
      }
      let flush: boolean;
      if (matchLen >= MIN_MATCH) {
        flush = blocks.tally(s - this.matchStart, matchLen - MIN_MATCH, s, this.blockStart);
        la -= matchLen;
        if (matchLen <= maxInsert) {
          for (let k = matchLen - 1; k !== 0; k--) {
            s++;
            h = ((h << H_SHIFT) ^ w[s + 2]) & HASH_MASK;
            prev[s & WMASK] = head[h];
            head[h] = s;
          }
          s++;
        } else {
          s += matchLen;
          h = ((w[s] << H_SHIFT) ^ w[s + 1]) & HASH_MASK;
        }
        matchLen = 0;
      } else {
        flush = blocks.tally(0, w[s], s, this.blockStart);
        la--;
        s++;
      }
      if (flush) {
        this.flushBlock(s, false);
        this.blockStart = s;
      }
    }
    this.strstart = s;
    this.lookahead = la;
    this.insH = h;
    this.matchLength = matchLen;
  }
}
