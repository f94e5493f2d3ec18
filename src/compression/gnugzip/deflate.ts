/**
 * Match finder and block driver reproducing GNU gzip 1.x deflate.c output bit for bit.
 *
 * gzip keeps a 64 KiB window that it refills with read() calls of exactly the free space; when the
 * lookahead runs low near the top it slides the upper 32 KiB down. Bytes beyond the end of input
 * (stale data from before a slide) can influence which equally good match is picked, so the window
 * is maintained with the same writes a regular-file read() sequence would produce.
 */
import * as P from "../deflate-common/params";
import { BitSink, BlockEncoder } from "./trees";

// module-local copies so the hot loops see plain constants
const { WSIZE, WMASK, WINDOW_SIZE, HASH_SIZE, HASH_MASK, HASH_SHIFT: H_SHIFT, MIN_MATCH, MAX_MATCH } = P;
const { MIN_LOOKAHEAD, MAX_DIST, TOO_FAR, CONFIG } = P;

const EMPTY = new Uint8Array(0);

/*
 * The window and hash tables live at module level: V8 then treats them as constants in the hot
 * loops (no per-access map/bounds-pointer reloads), which is worth ~10%. Only one deflater uses
 * them at a time (`owner`); another one that wants to run first parks the owner's copy.
 * A little slack past 64 KiB so end-of-input hash updates never read outside the array.
 */
const WIN = new Uint8Array(WINDOW_SIZE + 8);
// head and prev share one buffer so sliding and parking handle both at once
const LINKS = new ArrayBuffer(2 * (HASH_SIZE + WSIZE));
const HEAD = new Uint16Array(LINKS, 0, HASH_SIZE);
const PREV = new Uint16Array(LINKS, 2 * HASH_SIZE, WSIZE);
const LINKS32 = new Uint32Array(LINKS);
const LINKS8 = new Uint8Array(LINKS);

/** A deflater's claim on the shared arrays; holds its copy of them while another one runs. */
class Slot {
  saved: Uint8Array | null = null;

  park(): void {
    const saved = this.saved ?? (this.saved = new Uint8Array(WIN.length + LINKS8.length));
    saved.set(WIN, 0);
    saved.set(LINKS8, WIN.length);
  }

  restore(): void {
    const saved = this.saved;
    if (saved === null) {
      // a fresh gzip process starts from a zeroed window and tables
      WIN.fill(0);
      LINKS8.fill(0);
    } else {
      WIN.set(saved.subarray(0, WIN.length));
      LINKS8.set(saved.subarray(WIN.length));
    }
  }
}
let owner: Slot | null = null;

/**
 * Slide hash links down by WSIZE, dropping those that fall out (m >= WSIZE ? m - WSIZE : 0).
 * WSIZE is bit 15 of each 16-bit link, so two links are handled per 32-bit word with masks.
 */
function slideLinks(): void {
  const a = LINKS32;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    a[i] = x & (((x & 0x80008000) >>> 15) * 0x7fff);
  }
}

/**
 * gzip's longest_match: walk the hash chain from cur for the string at s. Only matches longer than
 * `best` count, so ties keep the nearer candidate. Returns (matchStart << 9) | length, where the
 * start is only meaningful if length > best.
 */
function longestMatch(cur: number, best: number, s: number, chain: number, nice: number): number {
  const w = WIN;
  const prev = PREV;
  const limit = s > MAX_DIST ? s - MAX_DIST : 0;
  const strend = s + MAX_MATCH;
  let start = 0;
  let end1 = w[s + best - 1];
  let end0 = w[s + best];
  const b0 = w[s];
  const b1 = w[s + 1];
  for (;;) {
    if (w[cur + best] === end0 && w[cur + best - 1] === end1 && w[cur] === b0 && w[cur + 1] === b1) {
      // byte 2 is implied by the hash (gzip never compares it); 256 steps from s+2 land on strend
      let p = s + 2;
      let q = cur + 2;
      while (
        w[++p] === w[++q] &&
        w[++p] === w[++q] &&
        w[++p] === w[++q] &&
        w[++p] === w[++q] &&
        w[++p] === w[++q] &&
        w[++p] === w[++q] &&
        w[++p] === w[++q] &&
        w[++p] === w[++q] &&
        p < strend
      );
      const len = p - s;
      if (len > best) {
        start = cur;
        best = len;
        if (len >= nice) break;
        end1 = w[s + best - 1];
        end0 = w[s + best];
      }
    }
    cur = prev[cur & WMASK];
    if (cur <= limit) break;
    chain = (chain - 1) | 0;
    if (chain === 0) break;
  }
  return (start << 9) | best;
}

export class GnuDeflater {
  private readonly slot = new Slot();
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
    this.acquire();
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
    // output goes out only after pump so a consumer may drive another deflater from onData
    this.sink.deliver(false);
  }

  end(): void {
    if (this.phase === 2) return;
    this.acquire();
    this.pump(true);
    if (owner === this.slot) owner = null;
    this.slot.saved = null;
    this.sink.deliver(true);
  }

  /** Take over the shared window/hash arrays, parking the previous user's contents. */
  private acquire(): void {
    const slot = this.slot;
    if (owner === slot) return;
    if (owner !== null) owner.park();
    slot.restore();
    owner = slot;
  }

  /** Emulate read(fd, window + at, want) on a regular file; false = wait for more input. */
  private read(at: number, want: number, final: boolean): number {
    const inSrc = this.src.length - this.srcPos;
    const avail = this.stageLen + inSrc;
    if (avail < want && !final) return -1;
    const n = Math.min(avail, want);
    const w = WIN;
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
      WIN.copyWithin(0, WSIZE, WINDOW_SIZE);
      this.matchStart -= WSIZE;
      this.strstart -= WSIZE;
      this.blockStart -= WSIZE;
      slideLinks();
      more += WSIZE;
    }
    const at = this.strstart + this.lookahead;
    const n = this.read(at, more, final);
    if (n < 0) return false;
    if (n === 0) {
      this.eofile = true;
      // gzip zeroes two bytes so the last hash updates don't see stale data there
      WIN[at] = 0;
      WIN[at + 1] = 0;
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
      this.insH = ((WIN[0] << H_SHIFT) ^ WIN[1]) & HASH_MASK;
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
    if (!this.fast && this.matchAvailable) this.blocks.tally(0, WIN[s - 1], s, this.blockStart);
    this.flushBlock(s, true);
    this.phase = 2;
  }

  private flushBlock(s: number, last: boolean): void {
    const bs = this.blockStart;
    this.blocks.flush(WIN, bs >= 0 ? bs : -1, s - bs, last);
  }

  /** Levels 4..9: lazy evaluation, a match is taken only if the next position has no longer one. */
  private runLazy(): void {
    const w = WIN;
    const head = HEAD;
    const prev = PREV;
    const blocks = this.blocks;
    const maxLazy = this.maxLazy;
    const goodMatch = this.goodMatch;
    const niceMatch = this.niceMatch;
    const maxChain = this.maxChain | 0;
    const eof = this.eofile;
    let s = this.strstart;
    let la = this.lookahead;
    let h = this.insH;
    let matchLen = this.matchLength;
    let matchStart = this.matchStart;
    let avail = this.matchAvailable;
    while (la >= MIN_LOOKAHEAD || (eof && la !== 0)) {
      h = ((h << H_SHIFT) ^ w[s + 2]) & HASH_MASK;
      const cur = head[h];
      prev[s & WMASK] = cur;
      head[h] = s;

      const prevLen = matchLen;
      const prevMatch = matchStart;
      matchLen = MIN_MATCH - 1;
      if (cur !== 0 && prevLen < maxLazy && s - cur <= MAX_DIST && s <= WINDOW_SIZE - MIN_LOOKAHEAD) {
        const m = longestMatch(cur, prevLen, s, prevLen >= goodMatch ? maxChain >> 2 : maxChain, niceMatch);
        const best = m & 511;
        if (best > prevLen) matchStart = m >>> 9;
        matchLen = best > la ? la : best;
        if (matchLen === MIN_MATCH && s - matchStart > TOO_FAR) matchLen--;
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
    this.matchStart = matchStart;
    this.matchAvailable = avail;
  }

  /** Levels 1..3: greedy matching; long matches are not hashed (max_lazy is the insert limit). */
  private runFast(): void {
    const w = WIN;
    const head = HEAD;
    const prev = PREV;
    const blocks = this.blocks;
    const maxInsert = this.maxLazy;
    const niceMatch = this.niceMatch;
    const maxChain = this.maxChain | 0;
    const eof = this.eofile;
    let s = this.strstart;
    let la = this.lookahead;
    let h = this.insH;
    let matchLen = this.matchLength;
    let matchStart = this.matchStart;
    while (la >= MIN_LOOKAHEAD || (eof && la !== 0)) {
      h = ((h << H_SHIFT) ^ w[s + 2]) & HASH_MASK;
      const hashHead = head[h];
      prev[s & WMASK] = hashHead;
      head[h] = s;
      if (hashHead !== 0 && s - hashHead <= MAX_DIST && s <= WINDOW_SIZE - MIN_LOOKAHEAD) {
        const m = longestMatch(hashHead, MIN_MATCH - 1, s, maxChain, niceMatch);
        matchLen = m & 511;
        if (matchLen > MIN_MATCH - 1) matchStart = m >>> 9;
        if (matchLen > la) matchLen = la;
      }
      let flush: boolean;
      if (matchLen >= MIN_MATCH) {
        flush = blocks.tally(s - matchStart, matchLen - MIN_MATCH, s, this.blockStart);
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
    this.matchStart = matchStart;
  }
}
