/**
 * DEFLATE block writer that makes the same block-type and table-reuse decisions as
 * klauspost/compress's huffmanBitWriter (v1.15.x): dynamic tables may stay open across
 * non-final blocks and be reused when an estimate says a new table would not pay off.
 *
 * The reference buffers 48-64 bits in a uint64; only the resulting bit stream matters, so this
 * keeps < 16 bits in a 32-bit accumulator and spills two bytes at a time.
 */
import { FIXED_DIST, FIXED_LIT, HuffEncoder } from "./huffman";
import { Tokens } from "./tokens";
import {
  CODEGEN_ORDER,
  DCODE_SHIFT,
  DIST_BASE,
  DIST_EXTRA,
  EOB,
  LEN_SHIFT,
  LENGTH_BASE,
  LENGTH_CODE,
  LENGTH_EXTRA,
  LIT_FREQ_SIZE,
  MAX_STORE,
  NUM_CODEGEN,
  NUM_DIST,
  NUM_LIT,
} from "./tables";

const BAD_CODE = 255;
const MAX_PREDEFINED_TOKENS = 250;
const INF = 0x7fffffff;
/** Assumed dynamic header size when estimating a fresh literal-only table. */
const GUESS_HEADER_BITS = 70 * 8;

/** Distance table used by literal-only blocks: a single (unused) code. */
const HUFF_ONLY_DIST = (() => {
  const h = new HuffEncoder(NUM_DIST);
  const f = new Uint16Array(NUM_DIST);
  f[0] = 1;
  h.generate(f, NUM_DIST, 15);
  return h;
})();

export class BitWriter {
  out = new Uint8Array(1 << 16);
  /** Called after most blocks: out[0, pos) is final by then (identification compares early). */
  onBlock: (() => void) | undefined = undefined;
  pos = 0;
  private acc = 0;
  private nbits = 0;

  /** > 0 while a dynamic table is open (its header size in bits); an EOB is then owed. */
  private lastHeader = 0;
  /** The open table is a literal-only one. */
  private lastHuffMan = false;
  logNewTablePenalty = 7;

  private litEnc = new HuffEncoder(NUM_LIT);
  private tmpLitEnc = new HuffEncoder(NUM_LIT);
  private readonly offEnc = new HuffEncoder(NUM_DIST);
  private readonly cgEnc = new HuffEncoder(NUM_CODEGEN);
  private readonly litFreq = new Uint16Array(LIT_FREQ_SIZE);
  private readonly offFreq = new Uint16Array(32);
  private readonly cgFreq = new Uint16Array(NUM_CODEGEN);
  private readonly codegen = new Uint8Array(NUM_LIT + NUM_DIST + 1);

  /** Start a fresh stream; the output buffer is rewound (callers take what they need first). */
  reset(): void {
    this.pos = 0;
    this.acc = 0;
    this.nbits = 0;
    this.lastHeader = 0;
    this.lastHuffMan = false;
  }

  private ensure(extra: number): void {
    const need = this.pos + extra + 16;
    if (need <= this.out.length) return;
    let size = this.out.length * 2;
    while (size < need) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.out.subarray(0, this.pos));
    this.out = grown;
  }

  private bits(value: number, n: number): void {
    let acc = this.acc | (value << this.nbits);
    let nb = this.nbits + n;
    if (nb >= 16) {
      const out = this.out;
      out[this.pos++] = acc;
      out[this.pos++] = acc >>> 8;
      acc >>>= 16;
      nb -= 16;
    }
    this.acc = acc;
    this.nbits = nb;
  }

  private code(c: number): void {
    this.bits(c >>> 5, c & 31);
  }

  /** Pay the owed end-of-block, then pad to a byte boundary. */
  flush(): void {
    this.ensure(8);
    if (this.lastHeader > 0) {
      this.code(this.litEnc.codes[EOB]);
      this.lastHeader = 0;
    }
    while (this.nbits > 0) {
      this.out[this.pos++] = this.acc;
      this.acc >>>= 8;
      this.nbits = this.nbits > 8 ? this.nbits - 8 : 0;
    }
    this.acc = 0;
  }

  private writeBytes(src: Uint8Array, from: number, to: number): void {
    // always byte aligned here (a stored header was just flushed)
    this.ensure(to - from);
    this.out.set(src.subarray(from, to), this.pos);
    this.pos += to - from;
  }

  writeStoredHeader(length: number, eof: boolean): void {
    this.ensure(16);
    if (this.lastHeader > 0) {
      this.code(this.litEnc.codes[EOB]);
      this.lastHeader = 0;
    }
    if (length === 0 && eof) {
      // an empty final block is cheaper as a fixed-code block: header + EOB
      this.writeFixedHeader(true);
      this.bits(0, 7);
      this.flush();
      return;
    }
    this.bits(eof ? 1 : 0, 3);
    this.flush();
    this.bits(length, 16);
    this.bits(~length & 0xffff, 16);
  }

  writeStored(src: Uint8Array, from: number, to: number, eof: boolean): void {
    this.writeStoredHeader(to - from, eof);
    this.writeBytes(src, from, to);
    this.onBlock?.();
  }

  private writeFixedHeader(eof: boolean): void {
    if (this.lastHeader > 0) {
      this.code(this.litEnc.codes[EOB]);
      this.lastHeader = 0;
    }
    this.bits(eof ? 3 : 2, 3);
  }

  // ------------------------------------------------------------------ size estimates

  private storedSize(len: number): number {
    return len <= MAX_STORE ? (len + 5) * 8 : -1;
  }

  private extraBitSize(): number {
    const lf = this.litFreq;
    const of = this.offFreq;
    let total = 0;
    for (let i = 0; i < NUM_LIT - 257; i++) total += lf[257 + i] * LENGTH_EXTRA[i];
    for (let i = 0; i < NUM_DIST; i++) total += of[i] * DIST_EXTRA[i];
    return total;
  }

  private fixedSize(extraBits: number): number {
    return 3 + FIXED_LIT.bitLength(this.litFreq, NUM_LIT) + FIXED_DIST.bitLength(this.offFreq, NUM_DIST) + extraBits;
  }

  private numCodegens(): number {
    let n = NUM_CODEGEN;
    while (n > 4 && this.cgFreq[CODEGEN_ORDER[n - 1]] === 0) n--;
    return n;
  }

  private headerSize(): number {
    const f = this.cgFreq;
    return (
      3 + 5 + 5 + 4 + 3 * this.numCodegens() + this.cgEnc.bitLength(f, NUM_CODEGEN) + f[16] * 2 + f[17] * 3 + f[18] * 7
    );
  }

  // ------------------------------------------------------------------ tables

  /** Copy the token histograms into the writer; returns [numLiterals, numOffsets]. */
  private indexTokens(t: Tokens, full: boolean): [number, number] {
    const lf = this.litFreq;
    lf.set(t.litHist, 0);
    lf.set(t.extraHist, 256);
    this.offFreq.set(t.offHist);
    if (t.n === 0) return [0, 0];
    if (full) return [NUM_LIT, NUM_DIST];
    let numLit = LIT_FREQ_SIZE;
    while (lf[numLit - 1] === 0) numLit--;
    let numOff = 32;
    while (numOff > 0 && this.offFreq[numOff - 1] === 0) numOff--;
    if (numOff === 0) {
      // a dynamic header needs at least one distance code
      this.offFreq[0] = 1;
      numOff = 1;
    }
    return [numLit, numOff];
  }

  private canReuse(t: Tokens): boolean {
    const oc = this.offEnc.codes;
    for (let i = 0; i < NUM_DIST; i++) if (t.offHist[i] !== 0 && oc[i] === 0) return false;
    const lc = this.litEnc.codes;
    for (let i = 0; i < NUM_LIT - 256; i++) if (t.extraHist[i] !== 0 && lc[256 + i] === 0) return false;
    for (let i = 0; i < 256; i++) if (t.litHist[i] !== 0 && lc[i] === 0) return false;
    return true;
  }

  /** Run-length code the literal+distance code lengths (RFC 1951 §3.2.7) into this.codegen. */
  private generateCodegen(numLit: number, numOff: number, lit: HuffEncoder, off: HuffEncoder): void {
    const freq = this.cgFreq;
    freq.fill(0);
    const cg = this.codegen;
    for (let i = 0; i < numLit; i++) cg[i] = lit.codes[i] & 31;
    for (let i = 0; i < numOff; i++) cg[numLit + i] = off.codes[i] & 31;
    cg[numLit + numOff] = BAD_CODE;

    let size = cg[0];
    let count = 1;
    let out = 0;
    for (let inIdx = 1; size !== BAD_CODE; inIdx++) {
      const next = cg[inIdx];
      if (next === size) {
        count++;
        continue;
      }
      if (size !== 0) {
        cg[out++] = size;
        freq[size]++;
        count--;
        while (count >= 3) {
          const n = count < 6 ? count : 6;
          cg[out++] = 16;
          cg[out++] = n - 3;
          freq[16]++;
          count -= n;
        }
      } else {
        while (count >= 11) {
          const n = count < 138 ? count : 138;
          cg[out++] = 18;
          cg[out++] = n - 11;
          freq[18]++;
          count -= n;
        }
        if (count >= 3) {
          cg[out++] = 17;
          cg[out++] = count - 3;
          freq[17]++;
          count = 0;
        }
      }
      for (count--; count >= 0; count--) {
        cg[out++] = size;
        freq[size]++;
      }
      size = next;
      count = 1;
    }
    cg[out] = BAD_CODE;
  }

  private writeDynamicHeader(numLit: number, numOff: number, numCg: number, eof: boolean): void {
    this.ensure(400);
    this.bits(eof ? 5 : 4, 3);
    this.bits(numLit - 257, 5);
    this.bits(numOff - 1, 5);
    this.bits(numCg - 4, 4);
    const cgc = this.cgEnc.codes;
    for (let i = 0; i < numCg; i++) this.bits(cgc[CODEGEN_ORDER[i]] & 31, 3);
    const cg = this.codegen;
    let i = 0;
    for (;;) {
      const w = cg[i++];
      if (w === BAD_CODE) break;
      this.code(cgc[w]);
      if (w === 16) this.bits(cg[i++], 2);
      else if (w === 17) this.bits(cg[i++], 3);
      else if (w === 18) this.bits(cg[i++], 7);
    }
  }

  // ------------------------------------------------------------------ blocks

  /**
   * Tokens as a dynamic (or fixed, or stored) block. `input` (the raw bytes the tokens cover, or
   * null) enables the stored fallback. Without sync/eof the table may stay open for reuse.
   */
  writeBlockDynamic(
    tokens: Tokens,
    eof: boolean,
    input: Uint8Array | null,
    inFrom: number,
    inTo: number,
    syncIn: boolean,
  ): void {
    this.ensure(32);
    const sync = syncIn || eof;
    if (sync) tokens.addEOB();

    // a literal-only table cannot be reused for matches; an EOF block always starts fresh
    if ((this.lastHuffMan || eof) && this.lastHeader > 0) {
      this.ensure(4);
      this.code(this.litEnc.codes[EOB]);
      this.lastHeader = 0;
      this.lastHuffMan = false;
    }
    if (this.lastHeader > 0 && !this.canReuse(tokens)) {
      this.ensure(4);
      this.code(this.litEnc.codes[EOB]);
      this.lastHeader = 0;
    }

    const [numLit, numOff] = this.indexTokens(tokens, !sync);
    let extraBits = 0;
    const inLen = inTo - inFrom;
    const ssize = input === null ? -1 : this.storedSize(inLen);
    const storable = ssize >= 0;
    if (storable || this.lastHeader > 0) extraBits = this.extraBitSize();

    let size: number;
    if (this.lastHeader > 0) {
      let newSize = this.lastHeader + tokens.estimatedBits();
      newSize += (this.litEnc.codes[EOB] & 31) + (newSize >> this.logNewTablePenalty);
      const reuseSize =
        this.litEnc.bitLength(this.litFreq, LIT_FREQ_SIZE) + this.offEnc.bitLength(this.offFreq, 32) + extraBits;
      if (newSize < reuseSize) {
        this.ensure(4);
        this.code(this.litEnc.codes[EOB]);
        size = newSize;
        this.lastHeader = 0;
      } else {
        size = reuseSize;
      }
      if (tokens.n < MAX_PREDEFINED_TOKENS) {
        const preSize = this.fixedSize(extraBits) + 7;
        if (preSize < size) {
          if (storable && ssize <= size) {
            this.writeStored(input as Uint8Array, inFrom, inTo, eof);
            return;
          }
          this.writeFixedHeader(eof);
          if (!sync) tokens.addEOB();
          this.writeTokens(tokens, FIXED_LIT.codes, FIXED_DIST.codes);
          return;
        }
      }
      if (storable && ssize <= size) {
        this.writeStored(input as Uint8Array, inFrom, inTo, eof);
        return;
      }
    }

    if (this.lastHeader === 0) {
      this.litFreq[EOB] = 1;
      this.litEnc.generate(this.litFreq, NUM_LIT, 15);
      this.offEnc.generate(this.offFreq, NUM_DIST, 15);
      this.generateCodegen(numLit, numOff, this.litEnc, this.offEnc);
      this.cgEnc.generate(this.cgFreq, NUM_CODEGEN, 7);
      const numCg = this.numCodegens();
      size =
        this.headerSize() +
        this.litEnc.bitLength(this.litFreq, LIT_FREQ_SIZE) +
        this.offEnc.bitLength(this.offFreq, 32) +
        extraBits;

      if (tokens.n < MAX_PREDEFINED_TOKENS) {
        const preSize = this.fixedSize(extraBits);
        if (preSize <= size) {
          if (storable && ssize <= preSize) {
            this.writeStored(input as Uint8Array, inFrom, inTo, eof);
            return;
          }
          this.writeFixedHeader(eof);
          if (!sync) tokens.addEOB();
          this.writeTokens(tokens, FIXED_LIT.codes, FIXED_DIST.codes);
          return;
        }
      }
      if (storable && ssize <= size) {
        this.writeStored(input as Uint8Array, inFrom, inTo, eof);
        return;
      }
      this.writeDynamicHeader(numLit, numOff, numCg, eof);
      if (!sync) this.lastHeader = this.headerSize();
      this.lastHuffMan = false;
    }
    if (sync) this.lastHeader = 0;
    this.writeTokens(tokens, this.litEnc.codes, this.offEnc.codes);
    this.onBlock?.();
  }

  /** Emit tokens; a trailing EOB token is written with the literal table. */
  private writeTokens(tokens: Tokens, lit: Uint32Array, off: Uint32Array): void {
    let n = tokens.n;
    if (n === 0) return;
    const toks = tokens.toks;
    let eob = false;
    if (toks[n - 1] === EOB) {
      n--;
      eob = true;
    }
    this.ensure(n * 6 + 8);
    const out = this.out;
    let pos = this.pos;
    let acc = this.acc;
    let nb = this.nbits;
    for (let k = 0; k < n; k++) {
      const t = toks[k];
      if (t < 256) {
        const c = lit[t];
        acc |= (c >>> 5) << nb;
        nb += c & 31;
        if (nb >= 16) {
          out[pos++] = acc;
          out[pos++] = acc >>> 8;
          acc >>>= 16;
          nb -= 16;
        }
        continue;
      }
      const xl = (t >>> LEN_SHIFT) & 255;
      const lc = LENGTH_CODE[xl];
      let c = lit[257 + lc];
      acc |= (c >>> 5) << nb;
      nb += c & 31;
      if (nb >= 16) {
        out[pos++] = acc;
        out[pos++] = acc >>> 8;
        acc >>>= 16;
        nb -= 16;
      }
      const le = LENGTH_EXTRA[lc];
      if (le > 0) {
        acc |= (xl - LENGTH_BASE[lc]) << nb;
        nb += le;
        if (nb >= 16) {
          out[pos++] = acc;
          out[pos++] = acc >>> 8;
          acc >>>= 16;
          nb -= 16;
        }
      }
      const dc = (t >>> DCODE_SHIFT) & 31;
      c = off[dc];
      acc |= (c >>> 5) << nb;
      nb += c & 31;
      if (nb >= 16) {
        out[pos++] = acc;
        out[pos++] = acc >>> 8;
        acc >>>= 16;
        nb -= 16;
      }
      const de = DIST_EXTRA[dc];
      if (de > 0) {
        acc |= ((t & 0x7fff) - DIST_BASE[dc]) << nb;
        nb += de;
        if (nb >= 16) {
          out[pos++] = acc;
          out[pos++] = acc >>> 8;
          acc >>>= 16;
          nb -= 16;
        }
      }
    }
    this.pos = pos;
    this.acc = acc;
    this.nbits = nb;
    if (eob) this.code(lit[EOB]);
  }

  /**
   * Bytes as literals only, with a literal-only table (or stored when that does not pay).
   * Such a table may also stay open across non-final blocks.
   */
  writeBlockHuff(eof: boolean, input: Uint8Array, from: number, to: number, sync: boolean): void {
    this.ensure(32);
    const lf = this.litFreq;
    lf.fill(0);
    if (!this.lastHuffMan) this.offFreq.fill(0);
    const len = to - from;
    for (let i = from; i < to; i++) lf[input[i]]++;
    const ssize = this.storedSize(len);
    const storable = ssize >= 0;
    if (storable && len > 1024) {
      // near-uniform byte histogram: hopeless, store
      let abs = 0;
      const avg = len / 256;
      const max = len * 2;
      for (let i = 0; i < 256; i++) {
        const diff = lf[i] - avg;
        abs += diff * diff;
        if (abs > max) break;
      }
      if (abs < max) {
        this.writeStored(input, from, to, eof);
        return;
      }
    }
    lf[EOB] = 1;
    this.tmpLitEnc.generate(lf, 257, 15);
    let estBits = this.tmpLitEnc.canReuseBits(lf, 257);
    if (estBits < INF) {
      estBits += this.lastHeader;
      if (this.lastHeader === 0) estBits += GUESS_HEADER_BITS;
      estBits += estBits >> this.logNewTablePenalty;
    }
    if (storable && ssize <= estBits) {
      this.writeStored(input, from, to, eof);
      return;
    }
    if (this.lastHeader > 0) {
      const reuseSize = this.litEnc.canReuseBits(lf, 256);
      if (estBits < reuseSize) {
        this.ensure(4);
        this.code(this.litEnc.codes[EOB]);
        this.lastHeader = 0;
      }
    }
    if (this.lastHeader === 0) {
      const t = this.litEnc;
      this.litEnc = this.tmpLitEnc;
      this.tmpLitEnc = t;
      this.generateCodegen(257, 1, this.litEnc, HUFF_ONLY_DIST);
      this.cgEnc.generate(this.cgFreq, NUM_CODEGEN, 7);
      const numCg = this.numCodegens();
      this.writeDynamicHeader(257, 1, numCg, eof);
      this.lastHuffMan = true;
      this.lastHeader = this.headerSize();
    }
    this.ensure(len * 2 + 8);
    const codes = this.litEnc.codes;
    const out = this.out;
    let pos = this.pos;
    let acc = this.acc;
    let nb = this.nbits;
    for (let i = from; i < to; i++) {
      const c = codes[input[i]];
      acc |= (c >>> 5) << nb;
      nb += c & 31;
      if (nb >= 16) {
        out[pos++] = acc;
        out[pos++] = acc >>> 8;
        acc >>>= 16;
        nb -= 16;
      }
    }
    this.pos = pos;
    this.acc = acc;
    this.nbits = nb;
    if (eof || sync) {
      this.code(codes[EOB]);
      this.lastHeader = 0;
      this.lastHuffMan = false;
    }
    this.onBlock?.();
  }
}
