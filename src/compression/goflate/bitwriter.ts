/**
 * DEFLATE block writer mirroring Go's huffmanBitWriter decisions: which block type is chosen,
 * how the dynamic header's code lengths are run-length coded, and where padding goes.
 *
 * Go buffers bits in a 64-bit word and bytes in a 248-byte array; both only affect when bytes
 * reach the io.Writer, never which bytes, so here a 32-bit accumulator that spills two bytes
 * at a time (it never holds more than 15 bits between calls) writes into 64 KiB output chunks.
 */
import { HuffmanCode } from "./huffman";
import {
  CODEGEN_ORDER,
  DIST_BASE,
  DIST_CODE,
  DIST_EXTRA,
  END_OF_BLOCK,
  FIRST_LENGTH_CODE,
  LENGTH_BASE,
  LENGTH_CODE,
  LENGTH_EXTRA,
  LENGTH_SHIFT,
  MATCH_FLAG,
  MAX_STORE_BLOCK,
  NUM_CODEGEN_CODES,
  NUM_DIST_CODES,
  NUM_LIT_CODES,
  OFFSET_MASK,
} from "./tables";

const CHUNK_SIZE = 1 << 16;
/** Worst-case bytes for a dynamic block header (3+14 bits, 19*3 bits, 316 codes of 7+7 bits). */
const HEADER_ROOM = 640;
const CODEGEN_END = 255;

function fixedLiteralCode(): HuffmanCode {
  // RFC 1951 §3.2.6. The code is defined over 288 symbols; 286 and 287 never occur but they
  // shift the 9-bit codes, so they take part in the canonical assignment.
  const lens = new Uint8Array(288);
  lens.fill(8, 0, 144);
  lens.fill(9, 144, 256);
  lens.fill(7, 256, 280);
  lens.fill(8, 280, 288);
  return HuffmanCode.fromLengths(lens);
}

const FIXED_LIT = fixedLiteralCode();
const FIXED_DIST = HuffmanCode.fromLengths(new Uint8Array(NUM_DIST_CODES).fill(5));

/** Distance code used by Huffman-only blocks: just code 0, which is never emitted. */
const HUFF_ONLY_DIST = (() => {
  const h = new HuffmanCode(NUM_DIST_CODES);
  const f = new Int32Array(NUM_DIST_CODES);
  f[0] = 1;
  h.build(f, 15);
  return h;
})();

export class BlockWriter {
  private buf = new Uint8Array(CHUNK_SIZE);
  private pos = 0;
  private readonly done: Uint8Array[] = [];
  private acc = 0;
  private nacc = 0;

  private readonly litFreq = new Int32Array(NUM_LIT_CODES);
  private readonly distFreq = new Int32Array(NUM_DIST_CODES);
  private readonly cgFreq = new Int32Array(NUM_CODEGEN_CODES);
  /** Run-length coded code lengths; a symbol 16/17/18 is followed by its repeat argument. */
  private readonly codegen = new Uint8Array(NUM_LIT_CODES + NUM_DIST_CODES + 1);
  private readonly lit = new HuffmanCode(NUM_LIT_CODES);
  private readonly dist = new HuffmanCode(NUM_DIST_CODES);
  private readonly cg = new HuffmanCode(NUM_CODEGEN_CODES);

  /** Completed output chunks; ownership passes to the caller. */
  takeChunks(): Uint8Array[] {
    return this.done.splice(0, this.done.length);
  }

  /** Everything written so far, including the partly filled chunk (bits still pending stay). */
  takeAll(): Uint8Array[] {
    if (this.pos > 0) {
      // Frequent flushes produce small pieces: copy those and keep the buffer.
      if (this.pos < this.buf.length >> 2) {
        this.done.push(this.buf.slice(0, this.pos));
      } else {
        this.done.push(this.buf.subarray(0, this.pos));
        this.buf = new Uint8Array(CHUNK_SIZE);
      }
      this.pos = 0;
    }
    return this.takeChunks();
  }

  /** Make room for n more bytes in the current chunk. */
  private reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    if (this.pos > 0) this.done.push(this.buf.subarray(0, this.pos));
    this.buf = new Uint8Array(Math.max(CHUNK_SIZE, n));
    this.pos = 0;
  }

  /** Append up to 16 bits. The caller must have reserved 2 bytes. */
  private bits(value: number, count: number): void {
    this.acc |= value << this.nacc;
    this.nacc += count;
    if (this.nacc >= 16) {
      this.buf[this.pos++] = this.acc;
      this.buf[this.pos++] = this.acc >>> 8;
      this.acc >>>= 16;
      this.nacc -= 16;
    }
  }

  /** Pad to a byte boundary with zero bits. */
  alignToByte(): void {
    this.reserve(2);
    while (this.nacc > 0) {
      this.buf[this.pos++] = this.acc;
      this.acc >>>= 8;
      this.nacc = this.nacc > 8 ? this.nacc - 8 : 0;
    }
    this.acc = 0;
  }

  /** BTYPE=00 header: 3 bits, pad, LEN, NLEN. */
  storedHeader(length: number, final: boolean): void {
    this.reserve(8);
    this.bits(final ? 1 : 0, 3);
    this.alignToByte();
    this.bits(length, 16);
    this.bits(~length & 0xffff, 16);
  }

  /** Raw bytes after a stored header (the bit buffer is empty at that point). */
  rawBytes(data: Uint8Array): void {
    this.reserve(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
  }

  storedBlock(data: Uint8Array, final: boolean): void {
    this.storedHeader(data.length, final);
    this.rawBytes(data);
  }

  /**
   * Cheapest of fixed, dynamic and (when `raw` is given and small enough) stored encoding.
   * Used by levels 2-9.
   */
  tokenBlock(tokens: Int32Array, count: number, final: boolean, raw: Uint8Array | null): void {
    const [numLit, numDist] = this.countTokens(tokens, count);
    const storable = raw !== null && raw.length <= MAX_STORE_BLOCK;
    // Extra bits cost the same under fixed and dynamic codes, so Go only counts them when the
    // stored encoding is in the running.
    let extra = 0;
    if (storable) {
      for (let c = FIRST_LENGTH_CODE + 8; c < numLit; c++)
        extra += this.litFreq[c]! * LENGTH_EXTRA[c - FIRST_LENGTH_CODE]!;
      for (let c = 4; c < numDist; c++) extra += this.distFreq[c]! * DIST_EXTRA[c]!;
    }
    const fixedSize = 3 + FIXED_LIT.cost(this.litFreq) + FIXED_DIST.cost(this.distFreq) + extra;
    const numCg = this.prepareCodegen(numLit, numDist, this.dist);
    const dynSize = this.dynamicHeaderBits(numCg) + this.lit.cost(this.litFreq) + this.dist.cost(this.distFreq) + extra;
    const useDynamic = dynSize < fixedSize;
    const best = useDynamic ? dynSize : fixedSize;
    if (storable && (raw.length + 5) * 8 < best) {
      this.storedBlock(raw, final);
      return;
    }
    this.reserve(HEADER_ROOM);
    if (useDynamic) {
      this.dynamicHeader(numLit, numDist, numCg, final);
      this.emitTokens(tokens, count, this.lit, this.dist);
    } else {
      this.bits(final ? 3 : 2, 3);
      this.emitTokens(tokens, count, FIXED_LIT, FIXED_DIST);
    }
  }

  /** Always dynamic unless storing saves more than 1/16 (Go's writeBlockDynamic; level 1). */
  dynamicBlock(tokens: Int32Array, count: number, final: boolean, raw: Uint8Array): void {
    const [numLit, numDist] = this.countTokens(tokens, count);
    const numCg = this.prepareCodegen(numLit, numDist, this.dist);
    const size = this.dynamicHeaderBits(numCg) + this.lit.cost(this.litFreq) + this.dist.cost(this.distFreq);
    if (raw.length <= MAX_STORE_BLOCK && (raw.length + 5) * 8 < size + (size >> 4)) {
      this.storedBlock(raw, final);
      return;
    }
    this.reserve(HEADER_ROOM);
    this.dynamicHeader(numLit, numDist, numCg, final);
    this.emitTokens(tokens, count, this.lit, this.dist);
  }

  /** Literals only, dynamic code, or stored if that saves more than 1/16 (Go's writeBlockHuff). */
  huffmanBlock(data: Uint8Array, final: boolean): void {
    const freq = this.litFreq;
    freq.fill(0);
    for (let i = 0; i < data.length; i++) freq[data[i]!]++;
    freq[END_OF_BLOCK] = 1;
    // Go sets distFreq[0] = 1 and leaves the rest as the previous block left them; under the
    // Huffman-only distance code those entries have length 0, so only this 1 bit counts.
    this.distFreq[0] = 1;
    this.lit.build(freq, 15);
    const numLit = END_OF_BLOCK + 1;
    const numCg = this.prepareCodegen(numLit, 1, HUFF_ONLY_DIST);
    const size = this.dynamicHeaderBits(numCg) + this.lit.cost(freq) + HUFF_ONLY_DIST.cost(this.distFreq);
    if (data.length <= MAX_STORE_BLOCK && (data.length + 5) * 8 < size + (size >> 4)) {
      this.storedBlock(data, final);
      return;
    }
    this.reserve(HEADER_ROOM + 2 * data.length + 2);
    this.dynamicHeader(numLit, 1, numCg, final);
    const codes = this.lit.codes;
    const lens = this.lit.lens;
    const buf = this.buf;
    let pos = this.pos;
    let acc = this.acc;
    let nacc = this.nacc;
    for (let i = 0; i < data.length; i++) {
      const sym = data[i]!;
      acc |= codes[sym]! << nacc;
      nacc += lens[sym]!;
      if (nacc >= 16) {
        buf[pos++] = acc;
        buf[pos++] = acc >>> 8;
        acc >>>= 16;
        nacc -= 16;
      }
    }
    this.pos = pos;
    this.acc = acc;
    this.nacc = nacc;
    this.bits(codes[END_OF_BLOCK]!, lens[END_OF_BLOCK]!);
  }

  /** Histogram the tokens (plus end-of-block), build both codes, return the used alphabet sizes. */
  private countTokens(tokens: Int32Array, count: number): [number, number] {
    const lf = this.litFreq;
    const df = this.distFreq;
    const lengthCode = LENGTH_CODE;
    const distCode = DIST_CODE;
    lf.fill(0);
    df.fill(0);
    for (let i = 0; i < count; i++) {
      const t = tokens[i]!;
      if (t < MATCH_FLAG) {
        lf[t]++;
      } else {
        lf[FIRST_LENGTH_CODE + lengthCode[(t >>> LENGTH_SHIFT) & 0xff]!]++;
        df[distCode[t & OFFSET_MASK]!]++;
      }
    }
    lf[END_OF_BLOCK]++;
    let numLit = NUM_LIT_CODES;
    while (lf[numLit - 1] === 0) numLit--;
    let numDist = NUM_DIST_CODES;
    while (numDist > 0 && df[numDist - 1] === 0) numDist--;
    if (numDist === 0) {
      // A dynamic header needs at least one distance code.
      df[0] = 1;
      numDist = 1;
    }
    this.lit.build(lf, 15);
    this.dist.build(df, 15);
    return [numLit, numDist];
  }

  /**
   * Run-length code the literal and distance code lengths as one sequence (runs may cross the
   * boundary), count the code-length symbols, build their 7-bit-limited code, and return how
   * many code-length code lengths the header must carry.
   */
  private prepareCodegen(numLit: number, numDist: number, dist: HuffmanCode): number {
    const cg = this.codegen;
    const freq = this.cgFreq;
    freq.fill(0);
    // The input lengths are staged in the same array; the output never overtakes the input.
    cg.set(this.lit.lens.subarray(0, numLit), 0);
    cg.set(dist.lens.subarray(0, numDist), numLit);
    cg[numLit + numDist] = CODEGEN_END;

    let out = 0;
    let value = cg[0]!;
    let run = 1;
    for (let i = 1; value !== CODEGEN_END; i++) {
      const next = cg[i]!;
      if (next === value) {
        run++;
        continue;
      }
      if (value !== 0) {
        // One explicit length, then "repeat previous" 3..6 times while possible.
        cg[out++] = value;
        freq[value]++;
        run--;
        while (run >= 3) {
          const n = run < 6 ? run : 6;
          cg[out++] = 16;
          cg[out++] = n - 3;
          freq[16]++;
          run -= n;
        }
      } else {
        while (run >= 11) {
          const n = run < 138 ? run : 138;
          cg[out++] = 18;
          cg[out++] = n - 11;
          freq[18]++;
          run -= n;
        }
        if (run >= 3) {
          cg[out++] = 17;
          cg[out++] = run - 3;
          freq[17]++;
          run = 0;
        }
      }
      for (; run > 0; run--) {
        cg[out++] = value;
        freq[value]++;
      }
      value = next;
      run = 1;
    }
    cg[out] = CODEGEN_END;
    this.cg.build(freq, 7);
    let numCg = NUM_CODEGEN_CODES;
    while (numCg > 4 && freq[CODEGEN_ORDER[numCg - 1]!] === 0) numCg--;
    return numCg;
  }

  private dynamicHeaderBits(numCg: number): number {
    const f = this.cgFreq;
    return 3 + 5 + 5 + 4 + 3 * numCg + this.cg.cost(f) + f[16]! * 2 + f[17]! * 3 + f[18]! * 7;
  }

  private dynamicHeader(numLit: number, numDist: number, numCg: number, final: boolean): void {
    this.bits(final ? 5 : 4, 3);
    this.bits(numLit - 257, 5);
    this.bits(numDist - 1, 5);
    this.bits(numCg - 4, 4);
    const cgLens = this.cg.lens;
    const cgCodes = this.cg.codes;
    for (let i = 0; i < numCg; i++) this.bits(cgLens[CODEGEN_ORDER[i]!]!, 3);
    const cg = this.codegen;
    for (let i = 0; ;) {
      const sym = cg[i++]!;
      if (sym === CODEGEN_END) break;
      this.bits(cgCodes[sym]!, cgLens[sym]!);
      if (sym === 16) this.bits(cg[i++]!, 2);
      else if (sym === 17) this.bits(cg[i++]!, 3);
      else if (sym === 18) this.bits(cg[i++]!, 7);
    }
  }

  /** Tokens then end-of-block. Reserves the worst case (6 bytes per token) up front. */
  private emitTokens(tokens: Int32Array, count: number, lit: HuffmanCode, dist: HuffmanCode): void {
    this.reserve(count * 6 + 4);
    const lc = lit.codes;
    const ll = lit.lens;
    const dc = dist.codes;
    const dl = dist.lens;
    const lengthCode = LENGTH_CODE;
    const lengthExtra = LENGTH_EXTRA;
    const lengthBase = LENGTH_BASE;
    const distCode = DIST_CODE;
    const distExtra = DIST_EXTRA;
    const distBase = DIST_BASE;
    const buf = this.buf;
    let pos = this.pos;
    let acc = this.acc;
    let nacc = this.nacc;
    for (let i = 0; i < count; i++) {
      const t = tokens[i]!;
      if (t < MATCH_FLAG) {
        acc |= lc[t]! << nacc;
        nacc += ll[t]!;
        if (nacc >= 16) {
          buf[pos++] = acc;
          buf[pos++] = acc >>> 8;
          acc >>>= 16;
          nacc -= 16;
        }
        continue;
      }
      const xlen = (t >>> LENGTH_SHIFT) & 0xff;
      const lcode = lengthCode[xlen]!;
      const sym = FIRST_LENGTH_CODE + lcode;
      acc |= lc[sym]! << nacc;
      nacc += ll[sym]!;
      if (nacc >= 16) {
        buf[pos++] = acc;
        buf[pos++] = acc >>> 8;
        acc >>>= 16;
        nacc -= 16;
      }
      const lextra = lengthExtra[lcode]!;
      if (lextra > 0) {
        acc |= (xlen - lengthBase[lcode]!) << nacc;
        nacc += lextra;
        if (nacc >= 16) {
          buf[pos++] = acc;
          buf[pos++] = acc >>> 8;
          acc >>>= 16;
          nacc -= 16;
        }
      }
      const xoff = t & OFFSET_MASK;
      const dcode = distCode[xoff]!;
      acc |= dc[dcode]! << nacc;
      nacc += dl[dcode]!;
      if (nacc >= 16) {
        buf[pos++] = acc;
        buf[pos++] = acc >>> 8;
        acc >>>= 16;
        nacc -= 16;
      }
      const dextra = distExtra[dcode]!;
      if (dextra > 0) {
        acc |= (xoff - distBase[dcode]!) << nacc;
        nacc += dextra;
        if (nacc >= 16) {
          buf[pos++] = acc;
          buf[pos++] = acc >>> 8;
          acc >>>= 16;
          nacc -= 16;
        }
      }
    }
    this.pos = pos;
    this.acc = acc;
    this.nacc = nacc;
    this.bits(lc[END_OF_BLOCK]!, ll[END_OF_BLOCK]!);
  }
}
