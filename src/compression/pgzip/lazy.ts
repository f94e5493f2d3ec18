/**
 * Levels 7-9 of klauspost/compress: hash-chain match search with lazy evaluation over a
 * 64 KiB sliding window. Level 9 weighs candidates by an estimated bit gain using a literal
 * Huffman table built from the bytes still to be processed.
 *
 * The window bookkeeping (when it slides, where the current block starts) follows the
 * reference exactly, because it decides which bytes a stored block would contain and how far
 * a match may look ahead.
 */
import { BitWriter } from "./bitwriter";
import { HuffEncoder } from "./huffman";
import { Tokens } from "./tokens";
import { LENGTH_CODE, LENGTH_EXTRA, distCode } from "./tables";

const WINDOW = 1 << 15;
const WINDOW_MASK = WINDOW - 1;
const MIN_MATCH = 4;
const MAX_MATCH = 258;
const HASH_BITS = 17;
const HASH_SIZE = 1 << HASH_BITS;
const MAX_HASH_OFFSET = 1 << 28;
const MAX_BLOCK_TOKENS = 1 << 15;
const NO_BLOCK = 0x7fffffff;
const PRIME4 = 2654435761;

const DIST_EXTRA_Q = new Uint8Array([
  0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14,
]);

interface LevelParams {
  good: number;
  lazy: number;
  nice: number;
  chain: number;
}

const PARAMS: Record<number, LevelParams> = {
  7: { good: 8, lazy: 12, nice: 16, chain: 24 },
  8: { good: 16, lazy: 30, nice: 40, chain: 64 },
  9: { good: 32, lazy: 258, nice: 258, chain: 1024 },
};

function hash4(b: Uint8Array, i: number): number {
  return Math.imul(b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24), PRIME4) >>> (32 - HASH_BITS);
}

/** Common prefix length of w[a..] and w[b..], at most max. */
function common(v: DataView, w: Uint8Array, a: number, b: number, max: number): number {
  let n = 0;
  while (n + 4 <= max && v.getInt32(a + n, true) === v.getInt32(b + n, true)) n += 4;
  while (n < max && w[a + n] === w[b + n]) n++;
  return n;
}

export class LazyCompressor {
  private readonly p: LevelParams;
  private readonly window = new Uint8Array(2 * WINDOW);
  private windowEnd = 0;
  private blockStart = 0;
  private index = 0;
  private hashOffset = 1;
  private chainHead = -1;
  private length = MIN_MATCH - 1;
  private offset = 0;
  private maxInsertIndex = 0;
  /** Run length of unmatched literals (16-bit, wraps). */
  private ii = 0;
  private byteAvailable = false;
  private sync = false;
  private readonly hashHead = new Int32Array(HASH_SIZE);
  private readonly hashPrev = new Int32Array(WINDOW);
  private readonly tokens = new Tokens();
  private readonly litEst = new HuffEncoder(256);
  private readonly histo = new Uint16Array(256);
  /** Level 9: running sum of estimated literal bits, cost[i] = bits of window[index0..i). */
  private readonly cost = new Int32Array(2 * WINDOW + 1);
  private readonly view = new DataView(this.window.buffer);

  constructor(
    level: number,
    private readonly w: BitWriter,
  ) {
    this.p = PARAMS[level];
  }

  /** Fresh state, then preload `dict` (≤ 32 KiB used) as history. */
  resetDict(dict: Uint8Array | null): void {
    this.sync = false;
    this.chainHead = -1;
    this.hashHead.fill(0);
    this.hashPrev.fill(0);
    this.hashOffset = 1;
    this.index = 0;
    this.windowEnd = 0;
    this.blockStart = 0;
    this.byteAvailable = false;
    this.tokens.reset();
    this.length = MIN_MATCH - 1;
    this.offset = 0;
    this.ii = 0;
    this.maxInsertIndex = 0;
    if (dict === null) return;
    let d = dict;
    if (d.length > WINDOW) d = d.subarray(d.length - WINDOW);
    this.window.set(d, 0);
    const n = d.length;
    for (let di = 0; di + MIN_MATCH <= n; di++) {
      const h = hash4(this.window, di);
      this.hashPrev[di & WINDOW_MASK] = this.hashHead[h];
      this.hashHead[h] = di + this.hashOffset;
    }
    this.windowEnd += n;
    this.index = n;
    // blockStart stays 0: the first block's "input" then also spans the dictionary
  }

  write(b: Uint8Array): void {
    let off = 0;
    while (off < b.length) {
      if (this.windowEnd === this.window.length || this.sync) this.step();
      off += this.fill(b, off);
    }
  }

  flush(): void {
    this.sync = true;
    this.step();
    this.w.writeStoredHeader(0, false);
    this.w.flush();
    this.sync = false;
  }

  close(): void {
    this.sync = true;
    this.step();
    this.w.writeStoredHeader(0, true);
    this.w.flush();
  }

  private fill(b: Uint8Array, off: number): number {
    if (this.index >= 2 * WINDOW - (MIN_MATCH + MAX_MATCH)) {
      this.window.copyWithin(0, WINDOW, 2 * WINDOW);
      this.index -= WINDOW;
      this.windowEnd -= WINDOW;
      this.blockStart = this.blockStart >= WINDOW ? this.blockStart - WINDOW : NO_BLOCK;
      this.hashOffset += WINDOW;
      if (this.hashOffset > MAX_HASH_OFFSET) {
        const delta = this.hashOffset - 1;
        this.hashOffset -= delta;
        this.chainHead -= delta;
        const rebase = (a: Int32Array): void => {
          for (let i = 0; i < a.length; i++) a[i] = a[i] > delta ? a[i] - delta : 0;
        };
        rebase(this.hashPrev);
        rebase(this.hashHead);
      }
    }
    const n = Math.min(this.window.length - this.windowEnd, b.length - off);
    this.window.set(b.subarray(off, off + n), this.windowEnd);
    this.windowEnd += n;
    return n;
  }

  private writeBlock(index: number): void {
    if (index > 0) {
      const start = this.blockStart;
      this.blockStart = index;
      if (start <= index) this.w.writeBlockDynamic(this.tokens, false, this.window, start, index, this.sync);
      else this.w.writeBlockDynamic(this.tokens, false, null, 0, 0, this.sync);
    }
  }

  private insertHash(i: number): void {
    const h = hash4(this.window, i);
    const ch = this.hashHead[h];
    this.chainHead = ch;
    this.hashPrev[i & WINDOW_MASK] = ch;
    this.hashHead[h] = i + this.hashOffset;
  }

  private emitLiteralAt(i: number): void {
    const tk = this.tokens;
    tk.addLiteral(this.window[i]);
    if (tk.n === MAX_BLOCK_TOKENS) {
      this.writeBlock(this.index);
      tk.reset();
    }
  }

  private step(): void {
    const win = this.window;
    const p = this.p;
    const tk = this.tokens;
    if (this.windowEnd - this.index < MIN_MATCH + MAX_MATCH && !this.sync) return;
    if (this.windowEnd !== this.index && p.chain > 100) {
      // literal cost model for the gain estimate: histogram of the unprocessed bytes
      const hist = this.histo;
      hist.fill(0);
      for (let i = this.index; i < this.windowEnd; i++) hist[win[i]]++;
      this.litEst.generate(hist, 256, 15);
      // prefix sums so a candidate's literal cost is one subtraction
      const codes = this.litEst.codes;
      const cost = this.cost;
      let acc = 0;
      cost[this.index] = 0;
      for (let i = this.index; i < this.windowEnd; i++) {
        acc += codes[win[i]] & 31;
        cost[i + 1] = acc;
      }
    }
    this.maxInsertIndex = this.windowEnd - (MIN_MATCH - 1);

    for (;;) {
      const lookahead = this.windowEnd - this.index;
      if (lookahead < MIN_MATCH + MAX_MATCH) {
        if (!this.sync) return;
        if (lookahead === 0) {
          if (this.byteAvailable) {
            tk.addLiteral(win[this.index - 1]);
            this.byteAvailable = false;
          }
          if (tk.n > 0) {
            this.writeBlock(this.index);
            tk.reset();
          }
          return;
        }
      }
      if (this.index < this.maxInsertIndex) this.insertHash(this.index);

      let prevLength = this.length;
      let prevOffset = this.offset;
      this.length = MIN_MATCH - 1;
      this.offset = 0;
      const minIndex = Math.max(this.index - WINDOW, 0);

      if (this.chainHead - this.hashOffset >= minIndex && lookahead > prevLength && prevLength < p.lazy) {
        this.findMatch(this.index, this.chainHead - this.hashOffset, lookahead);
      }

      if (prevLength >= MIN_MATCH && this.length <= prevLength) {
        // the previous position's match wins; first see if it can be extended from its end
        const prevIndex = this.index - 1;
        if (prevIndex + prevLength + 2 < this.maxInsertIndex) {
          const end = prevIndex + Math.min(lookahead, MAX_MATCH);
          const h = hash4(win, prevIndex + prevLength - 2);
          const ch2 = this.hashHead[h] - this.hashOffset - prevLength + 2;
          if (ch2 > minIndex) {
            const n = common(this.view, win, prevIndex, ch2, end - prevIndex);
            if (n > prevLength) {
              prevLength = n;
              prevOffset = prevIndex - ch2;
            }
          }
        }
        tk.addMatch(prevLength - 3, prevOffset - 1);

        const newIndex = this.index + prevLength - 1;
        const end = Math.min(newIndex, this.maxInsertIndex) + MIN_MATCH - 1;
        const from = Math.min(this.index + 1, this.maxInsertIndex);
        for (let di = from; di + MIN_MATCH <= end; di++) {
          const h = hash4(win, di);
          this.hashPrev[di & WINDOW_MASK] = this.hashHead[h];
          this.hashHead[h] = di + this.hashOffset;
        }
        this.index = newIndex;
        this.byteAvailable = false;
        this.length = MIN_MATCH - 1;
        if (tk.n === MAX_BLOCK_TOKENS) {
          this.writeBlock(this.index);
          tk.reset();
        }
        this.ii = 0;
      } else {
        if (this.length >= MIN_MATCH) this.ii = 0;
        if (this.byteAvailable) {
          this.ii = (this.ii + 1) & 0xffff;
          this.emitLiteralAt(this.index - 1);
          this.index++;
          let n = this.ii - p.chain;
          if (n > 0) {
            // long literal run: skip ahead, hashing as we go
            n = 1 + (n >> 6);
            for (let j = 0; j < n; j++) {
              if (this.index >= this.windowEnd - 1) break;
              this.emitLiteralAt(this.index - 1);
              if (this.index < this.maxInsertIndex) this.insertHash(this.index);
              this.index++;
            }
            tk.addLiteral(win[this.index - 1]);
            this.byteAvailable = false;
            if (tk.n === MAX_BLOCK_TOKENS) {
              this.writeBlock(this.index);
              tk.reset();
            }
          }
        } else {
          this.index++;
          this.byteAvailable = true;
        }
      }
    }
  }

  /** Walk the hash chain from prevHead; sets this.length/this.offset when something better is found. */
  private findMatch(pos: number, prevHead: number, lookahead: number): void {
    const win = this.window;
    const p = this.p;
    const look = Math.min(MAX_MATCH, lookahead);
    const nice = Math.min(look, p.nice);
    let tries = p.chain;
    let length = MIN_MATCH - 1;
    let wEnd = win[pos + length];
    const minIndex = Math.max(pos - WINDOW, 0);
    const hashPrev = this.hashPrev;
    const hashOffset = this.hashOffset;
    const view = this.view;
    let found = false;
    let bestOff = 0;

    if (p.chain < 100) {
      for (let i = prevHead; tries > 0; tries--) {
        if (wEnd === win[i + length]) {
          const n = common(view, win, i, pos, look);
          if (n > length) {
            length = n;
            bestOff = pos - i;
            found = true;
            if (n >= nice) break;
            wEnd = win[pos + n];
          }
        }
        if (i <= minIndex) break;
        i = hashPrev[i & WINDOW_MASK] - hashOffset;
        if (i < minIndex) break;
      }
    } else {
      const cost = this.cost;
      const base = cost[pos];
      let gain = 0;
      for (let i = prevHead; tries > 0; tries--) {
        if (wEnd === win[i + length]) {
          const n = common(view, win, i, pos, look);
          if (n > length) {
            // bits saved vs literals, minus extra bits and a fixed cost (distance code of pos-i, as the reference)
            const g =
              cost[pos + n] - base - DIST_EXTRA_Q[distCode(pos - i)] - 6 - LENGTH_EXTRA[LENGTH_CODE[(n - 3) & 255]];
            if (g > gain) {
              length = n;
              bestOff = pos - i;
              gain = g;
              found = true;
              if (n >= nice) break;
              wEnd = win[pos + n];
            }
          }
        }
        if (i <= minIndex) break;
        i = hashPrev[i & WINDOW_MASK] - hashOffset;
        if (i < minIndex) break;
      }
    }
    if (found) {
      this.length = length;
      this.offset = bestOff;
    }
  }
}
