/**
 * A byte-exact re-implementation of the encoder in Go's compress/flate (Go 1.7 through 1.26 share
 * this logic), so that streams written by Go programs can be reproduced from their input.
 *
 * write() follows Go's Write loop ("process what the window holds, then top the window up"), so
 * the same sequence of calls gives the same bytes. Without flush() the output does not depend on
 * how the input is split at all, in Go or here:
 *   - levels 0, 1 and -2 encode a block only when their 65535-byte buffer is full (or at the end);
 *   - levels 2-9 only decide about a position while at least 262 bytes follow it (a maximal match
 *     plus hash lookahead), so every decision sees the same bytes however the input arrived.
 *     The one split-dependent event is when the window slides: with small writes it can happen
 *     just before, with large writes just after, the token that fills a 16384-token block. In the
 *     first case that block can no longer be stored raw. But such a block covers more than 32 KiB,
 *     i.e. at least 16K bytes beyond one per token, and then even the fixed Huffman code is
 *     cheaper than storing, so the choice — and the output — is the same either way.
 * flush() (Go's Flush, zlib's Z_SYNC_FLUSH) encodes everything buffered, with the shorter
 * lookahead available, and appends an empty stored block, so it does change the output.
 */
import { BlockWriter } from "./bitwriter";
import { FastMatcher } from "./fast";
import { LENGTH_SHIFT, MATCH_FLAG, MAX_STORE_BLOCK } from "./tables";

export const NO_COMPRESSION = 0;
export const BEST_SPEED = 1;
export const BEST_COMPRESSION = 9;
export const DEFAULT_COMPRESSION = -1;
export const HUFFMAN_ONLY = -2;

const WINDOW = 1 << 15;
const WINDOW_MASK = WINDOW - 1;
const MIN_MATCH = 4;
const MAX_MATCH = 258;
/** Positions are only examined while this many bytes follow them (unless flushing). */
const LOOKAHEAD = MIN_MATCH + MAX_MATCH;
const MAX_BLOCK_TOKENS = 1 << 14;
const HASH_BITS = 17;
const HASH_SHIFT = 32 - HASH_BITS;
const HASH_MUL = 0x1e35a7bd;
/** Stored chain positions are index + hashOffset; renormalise before they grow past this. */
const MAX_HASH_OFFSET = 1 << 24;
const NO_BLOCK_START = 0x7fffffff;

interface Tuning {
  /** Do not look for a better match once the previous one is this long (lazy levels only). */
  lazy: number;
  /** Stop searching a chain at a match this long. */
  nice: number;
  /** Chain entries examined per position. */
  chain: number;
  /** Greedy levels: matches up to this long get every position hashed. 0 = lazy level. */
  insertUpTo: number;
}

// Go's table also has a "good" length that would quarter the chain, but it is compared with the
// minimum length 3 that every search starts from, and all "good" values are >= 4, so it never applies.
const TUNING: Record<number, Tuning> = {
  2: { lazy: 0, nice: 16, chain: 8, insertUpTo: 5 },
  3: { lazy: 0, nice: 32, chain: 32, insertUpTo: 6 },
  4: { lazy: 4, nice: 16, chain: 16, insertUpTo: 0 },
  5: { lazy: 16, nice: 32, chain: 32, insertUpTo: 0 },
  6: { lazy: 16, nice: 128, chain: 128, insertUpTo: 0 },
  7: { lazy: 32, nice: 128, chain: 256, insertUpTo: 0 },
  8: { lazy: 128, nice: 258, chain: 1024, insertUpTo: 0 },
  9: { lazy: 258, nice: 258, chain: 4096, insertUpTo: 0 },
};

type Mode = "store" | "huffman" | "fast" | "greedy" | "lazy";

export class GoDeflater {
  readonly level: number;
  private readonly mode: Mode;
  private readonly out = new BlockWriter();
  private readonly window: Uint8Array;
  private windowEnd = 0;
  private sync = false;
  private closed = false;
  private readonly tokens: Int32Array;

  // Level 1.
  private readonly fast: FastMatcher | null = null;

  // Levels 2-9.
  private readonly tuning: Tuning | null = null;
  private readonly hashHead: Uint32Array | null = null;
  private readonly hashPrev: Uint32Array | null = null;
  private hashOffset = 1;
  private chainHead = -1;
  private index = 0;
  private blockStart = 0;
  private ntokens = 0;
  /** Lazy levels: window[index - 1] still awaits a decision. */
  private pending = false;
  /** Lazy levels: best match found at the previous position (length 3 = none). */
  private matchLength = MIN_MATCH - 1;
  private matchOffset = 0;

  constructor(level: number) {
    if (!Number.isInteger(level) || level < HUFFMAN_ONLY || level > BEST_COMPRESSION) {
      throw new RangeError(`goflate: invalid compression level ${level}: want value in range [-2, 9]`);
    }
    if (level === DEFAULT_COMPRESSION) level = 6;
    this.level = level;
    if (level === NO_COMPRESSION || level === HUFFMAN_ONLY || level === BEST_SPEED) {
      this.mode = level === NO_COMPRESSION ? "store" : level === HUFFMAN_ONLY ? "huffman" : "fast";
      this.window = new Uint8Array(MAX_STORE_BLOCK);
      this.tokens = new Int32Array(level === BEST_SPEED ? MAX_STORE_BLOCK : 0);
      if (level === BEST_SPEED) this.fast = new FastMatcher();
    } else {
      const tuning = TUNING[level]!;
      this.tuning = tuning;
      this.mode = tuning.insertUpTo > 0 ? "greedy" : "lazy";
      this.window = new Uint8Array(2 * WINDOW);
      this.tokens = new Int32Array(MAX_BLOCK_TOKENS);
      this.hashHead = new Uint32Array(1 << HASH_BITS);
      this.hashPrev = new Uint32Array(WINDOW);
    }
  }

  /** Compress `data`; returns the output chunks completed so far (possibly none). */
  write(data: Uint8Array): Uint8Array[] {
    if (this.closed) throw new Error("goflate: write after close");
    let offset = 0;
    while (offset < data.length) {
      this.step();
      offset += this.fill(data, offset);
    }
    return this.out.takeChunks();
  }

  /** Go's Flush: encode everything buffered, then an empty stored block to byte-align. */
  flush(): Uint8Array[] {
    if (this.closed) throw new Error("goflate: flush after close");
    this.sync = true;
    this.step();
    this.out.storedHeader(0, false);
    this.out.alignToByte();
    this.sync = false;
    return this.out.takeAll();
  }

  /** Go's Close: encode everything, end with an empty final stored block; returns the rest of the stream. */
  close(): Uint8Array {
    if (this.closed) return new Uint8Array(0);
    this.sync = true;
    this.step();
    this.out.storedHeader(0, true);
    this.out.alignToByte();
    this.closed = true;
    return concat(this.out.takeAll());
  }

  /** Like close() but returns the remaining output as chunks. */
  closeChunks(): Uint8Array[] {
    if (this.closed) return [];
    this.sync = true;
    this.step();
    this.out.storedHeader(0, true);
    this.out.alignToByte();
    this.closed = true;
    return this.out.takeAll();
  }

  private step(): void {
    switch (this.mode) {
      case "store":
        if (this.windowEnd > 0 && (this.windowEnd === MAX_STORE_BLOCK || this.sync)) {
          this.out.storedBlock(this.window.subarray(0, this.windowEnd), false);
          this.windowEnd = 0;
        }
        return;
      case "huffman":
        if (this.windowEnd === 0 || (this.windowEnd < MAX_STORE_BLOCK && !this.sync)) return;
        this.out.huffmanBlock(this.window.subarray(0, this.windowEnd), false);
        this.windowEnd = 0;
        return;
      case "fast":
        this.stepFast();
        return;
      case "greedy":
        this.stepGreedy();
        return;
      case "lazy":
        this.stepLazy();
        return;
    }
  }

  private fill(data: Uint8Array, offset: number): number {
    if (this.hashHead !== null && this.index >= 2 * WINDOW - LOOKAHEAD) this.slide();
    const n = Math.min(data.length - offset, this.window.length - this.windowEnd);
    this.window.set(data.subarray(offset, offset + n), this.windowEnd);
    this.windowEnd += n;
    return n;
  }

  /** Drop the older half of the window; chain entries stay valid by raising hashOffset. */
  private slide(): void {
    const head = this.hashHead!;
    const prev = this.hashPrev!;
    this.window.copyWithin(0, WINDOW, 2 * WINDOW);
    this.index -= WINDOW;
    this.windowEnd -= WINDOW;
    // A block that started in the dropped half can no longer be stored raw.
    this.blockStart = this.blockStart >= WINDOW ? this.blockStart - WINDOW : NO_BLOCK_START;
    this.hashOffset += WINDOW;
    if (this.hashOffset > MAX_HASH_OFFSET) {
      const delta = this.hashOffset - 1;
      this.hashOffset -= delta;
      this.chainHead -= delta;
      for (let i = 0; i < prev.length; i++) prev[i] = prev[i]! > delta ? prev[i]! - delta : 0;
      for (let i = 0; i < head.length; i++) head[i] = head[i]! > delta ? head[i]! - delta : 0;
    }
  }

  /** Level 1: whole 64 KiB - 1 blocks; tiny final blocks are stored or Huffman-only. */
  private stepFast(): void {
    const n = this.windowEnd;
    const fast = this.fast!;
    if (n < MAX_STORE_BLOCK) {
      if (!this.sync) return;
      if (n < 128) {
        if (n === 0) return;
        if (n <= 16) this.out.storedBlock(this.window.subarray(0, n), false);
        else this.out.huffmanBlock(this.window.subarray(0, n), false);
        this.windowEnd = 0;
        fast.reset();
        return;
      }
    }
    const raw = this.window.subarray(0, n);
    const count = fast.encode(this.window, n, this.tokens);
    // Matches removed less than 1/16 of the input: literals-only coding is as good and cheaper.
    if (count > n - (n >> 4)) this.out.huffmanBlock(raw, false);
    else this.out.dynamicBlock(this.tokens, count, false, raw);
    this.windowEnd = 0;
  }

  private emitBlock(count: number, index: number): void {
    if (index <= 0) return;
    const raw = this.blockStart <= index ? this.window.subarray(this.blockStart, index) : null;
    this.blockStart = index;
    this.out.tokenBlock(this.tokens, count, false, raw);
  }

  /**
   * Longest match for `pos` walking the hash chain from `candidate`; returns length (3 = none)
   * and stores the distance (0 = none) in this.matchOffset. Length-4 matches only count within 4096 bytes,
   * where their code is short enough to beat four literals.
   */
  private longestMatch(pos: number, candidate: number, lookahead: number): number {
    const win = this.window;
    const prev = this.hashPrev!;
    const offset = this.hashOffset;
    const t = this.tuning!;
    const maxLen = lookahead < MAX_MATCH ? lookahead : MAX_MATCH;
    const nice = maxLen < t.nice ? maxLen : t.nice;
    const floor = pos - WINDOW;
    let best = MIN_MATCH - 1;
    let bestDist = 0;
    let tail = win[pos + best]!;
    for (let i = candidate, tries = t.chain; tries > 0; tries--) {
      // Cheap reject: a longer match must agree on the byte just past the current best.
      if (win[i + best] === tail) {
        let n = 0;
        while (n < maxLen && win[i + n] === win[pos + n]) n++;
        if (n > best && (n > MIN_MATCH || pos - i <= 4096)) {
          best = n;
          bestDist = pos - i;
          if (n >= nice) break;
          tail = win[pos + n]!;
        }
      }
      // The entry at the oldest position may already be overwritten by a newer one.
      if (i === floor) break;
      i = prev[i & WINDOW_MASK]! - offset;
      if (i < floor || i < 0) break;
    }
    this.matchOffset = bestDist;
    return bestDist !== 0 ? best : MIN_MATCH - 1;
  }

  /** Levels 4-9: defer each match by one position in case the next one starts a longer match. */
  private stepLazy(): void {
    const windowEnd = this.windowEnd;
    if (windowEnd - this.index < LOOKAHEAD && !this.sync) return;
    const win = this.window;
    const head = this.hashHead!;
    const prev = this.hashPrev!;
    const tokens = this.tokens;
    const hashOffset = this.hashOffset;
    const lazy = this.tuning!.lazy;
    const sync = this.sync;
    // The last 3 positions have no 4 bytes to hash (only reachable when flushing).
    const maxInsert = windowEnd - (MIN_MATCH - 1);
    let index = this.index;
    let ntok = this.ntokens;
    let chainHead = this.chainHead;
    let length = this.matchLength;
    let pending = this.pending;

    for (;;) {
      const lookahead = windowEnd - index;
      if (lookahead < LOOKAHEAD) {
        if (!sync) break;
        if (lookahead === 0) {
          if (pending) {
            tokens[ntok++] = win[index - 1]!;
            pending = false;
          }
          if (ntok > 0) {
            this.emitBlock(ntok, index);
            ntok = 0;
          }
          break;
        }
      }
      if (index < maxInsert) {
        const h =
          Math.imul(
            (win[index]! << 24) | (win[index + 1]! << 16) | (win[index + 2]! << 8) | win[index + 3]!,
            HASH_MUL,
          ) >>> HASH_SHIFT;
        // When nothing is inserted (flush tail) the previous position's chain head is reused, as Go does.
        chainHead = head[h]!;
        prev[index & WINDOW_MASK] = chainHead;
        head[h] = index + hashOffset;
      }
      const prevLength = length;
      const prevOffset = this.matchOffset;
      length = MIN_MATCH - 1;
      const minIndex = index > WINDOW ? index - WINDOW : 0;
      if (chainHead - hashOffset >= minIndex && lookahead > prevLength && prevLength < lazy) {
        length = this.longestMatch(index, chainHead - hashOffset, lookahead);
      } else {
        this.matchOffset = 0;
      }
      if (prevLength >= MIN_MATCH && length <= prevLength) {
        // The previous position's match wins: emit it and hash the positions it covers.
        tokens[ntok++] = MATCH_FLAG | ((prevLength - 3) << LENGTH_SHIFT) | (prevOffset - 1);
        const end = index + prevLength - 1;
        for (let i = index + 1; i < end; i++) {
          if (i < maxInsert) {
            const h =
              Math.imul((win[i]! << 24) | (win[i + 1]! << 16) | (win[i + 2]! << 8) | win[i + 3]!, HASH_MUL) >>>
              HASH_SHIFT;
            prev[i & WINDOW_MASK] = head[h]!;
            head[h] = i + hashOffset;
          }
        }
        index = end;
        pending = false;
        length = MIN_MATCH - 1;
        if (ntok === MAX_BLOCK_TOKENS) {
          this.emitBlock(ntok, index);
          ntok = 0;
        }
      } else {
        if (pending) {
          tokens[ntok++] = win[index - 1]!;
          if (ntok === MAX_BLOCK_TOKENS) {
            this.emitBlock(ntok, index);
            ntok = 0;
          }
        }
        index++;
        pending = true;
      }
    }
    this.index = index;
    this.ntokens = ntok;
    this.chainHead = chainHead;
    this.matchLength = length;
    this.pending = pending;
  }

  /** Levels 2-3: take the first match found; only short matches get all their positions hashed. */
  private stepGreedy(): void {
    const windowEnd = this.windowEnd;
    if (windowEnd - this.index < LOOKAHEAD && !this.sync) return;
    const win = this.window;
    const head = this.hashHead!;
    const prev = this.hashPrev!;
    const tokens = this.tokens;
    const hashOffset = this.hashOffset;
    const insertUpTo = this.tuning!.insertUpTo;
    const sync = this.sync;
    const maxInsert = windowEnd - (MIN_MATCH - 1);
    let index = this.index;
    let ntok = this.ntokens;
    let chainHead = this.chainHead;

    for (;;) {
      const lookahead = windowEnd - index;
      if (lookahead < LOOKAHEAD) {
        if (!sync) break;
        if (lookahead === 0) {
          if (ntok > 0) {
            this.emitBlock(ntok, index);
            ntok = 0;
          }
          break;
        }
      }
      if (index < maxInsert) {
        const h =
          Math.imul(
            (win[index]! << 24) | (win[index + 1]! << 16) | (win[index + 2]! << 8) | win[index + 3]!,
            HASH_MUL,
          ) >>> HASH_SHIFT;
        chainHead = head[h]!;
        prev[index & WINDOW_MASK] = chainHead;
        head[h] = index + hashOffset;
      }
      const minIndex = index > WINDOW ? index - WINDOW : 0;
      let length = MIN_MATCH - 1;
      if (chainHead - hashOffset >= minIndex && lookahead > MIN_MATCH - 1) {
        length = this.longestMatch(index, chainHead - hashOffset, lookahead);
      }
      if (length >= MIN_MATCH) {
        tokens[ntok++] = MATCH_FLAG | ((length - 3) << LENGTH_SHIFT) | (this.matchOffset - 1);
        if (length <= insertUpTo) {
          const end = index + length;
          for (let i = index + 1; i < end; i++) {
            if (i < maxInsert) {
              const h =
                Math.imul((win[i]! << 24) | (win[i + 1]! << 16) | (win[i + 2]! << 8) | win[i + 3]!, HASH_MUL) >>>
                HASH_SHIFT;
              prev[i & WINDOW_MASK] = head[h]!;
              head[h] = i + hashOffset;
            }
          }
        }
        index += length;
        if (ntok === MAX_BLOCK_TOKENS) {
          this.emitBlock(ntok, index);
          ntok = 0;
        }
      } else {
        tokens[ntok++] = win[index]!;
        if (ntok === MAX_BLOCK_TOKENS) {
          this.emitBlock(ntok, index + 1);
          ntok = 0;
        }
        index++;
      }
    }
    this.index = index;
    this.ntokens = ntok;
    this.chainHead = chainHead;
  }
}

export function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}
