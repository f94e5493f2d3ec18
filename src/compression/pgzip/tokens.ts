/**
 * A block's worth of LZ77 tokens plus the symbol histograms the block writer needs. Histogram
 * counters are 16-bit like the reference, so they wrap the same way if they ever overflow.
 */
import { DCODE_SHIFT, EOB, LEN_SHIFT, LENGTH_CODE, LENGTH_EXTRA, MATCH_FLAG, distCode } from "./tables";

const DIST_EXTRA_EST = new Uint8Array([
  0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14,
]);

// float32 view for the fast log2 approximation
const f32 = new Float32Array(1);
const i32 = new Int32Array(f32.buffer);
const C0 = Math.fround(-0.34484843);
const C1 = Math.fround(2.02466578);
const C2 = Math.fround(0.67487759);

/** Polynomial log2 approximation evaluated in float32, step by step (no fused multiply-add). */
function fastLog2(v: number): number {
  f32[0] = v;
  let ux = i32[0];
  let log2 = Math.fround(((ux >> 23) & 255) - 128);
  ux &= -0x7f800001;
  ux = (ux + (127 << 23)) | 0;
  i32[0] = ux;
  const u = f32[0];
  const poly = Math.fround(Math.fround(Math.fround(Math.fround(C0 * u) + C1) * u) - C2);
  log2 = Math.fround(log2 + poly);
  return log2;
}

function clampBits(v: number): number {
  if (v < 1) return 1;
  if (v > 15) return 15;
  return v;
}

export class Tokens {
  readonly toks = new Uint32Array(65536 + 8);
  n = 0;
  readonly litHist = new Uint16Array(256);
  readonly extraHist = new Uint16Array(32);
  readonly offHist = new Uint16Array(32);

  reset(): void {
    if (this.n === 0) return;
    this.n = 0;
    this.litHist.fill(0);
    this.extraHist.fill(0);
    this.offHist.fill(0);
  }

  addLiteral(b: number): void {
    this.toks[this.n++] = b;
    this.litHist[b]++;
  }

  /** Literals buf[from..to). */
  addLiterals(buf: Uint8Array, from: number, to: number): void {
    const toks = this.toks;
    const hist = this.litHist;
    let n = this.n;
    for (let i = from; i < to; i++) {
      const b = buf[i];
      toks[n++] = b;
      hist[b]++;
    }
    this.n = n;
  }

  /** One match; xlen = length-3 (0..255), xoff = distance-1. */
  addMatch(xlen: number, xoff: number): void {
    const oc = distCode(xoff);
    this.extraHist[LENGTH_CODE[xlen] + 1]++;
    this.offHist[oc]++;
    this.toks[this.n++] = MATCH_FLAG | (xlen << LEN_SHIFT) | (oc << DCODE_SHIFT) | xoff;
  }

  /** A match of any length (≥ 4), split into pieces of at most 258 that never leave < 3 behind. */
  addLongMatch(len: number, xoff: number): void {
    const oc = distCode(xoff);
    const base = MATCH_FLAG | (oc << DCODE_SHIFT) | xoff;
    while (len > 0) {
      let piece = len;
      if (piece > 258) piece = piece > 261 ? 258 : 255;
      len -= piece;
      const xl = piece - 3;
      this.extraHist[LENGTH_CODE[xl] + 1]++;
      this.offHist[oc]++;
      this.toks[this.n++] = base | (xl << LEN_SHIFT);
    }
  }

  addEOB(): void {
    this.toks[this.n++] = EOB;
    this.extraHist[0]++;
  }

  /** Shannon-style estimate of an optimal encoding of this block, in bits (float32 maths). */
  estimatedBits(): number {
    let shannon = 0;
    let bits = 0;
    let nMatches = 0;
    const total = this.n;
    if (total > 0) {
      const inv = Math.fround(1 / total);
      const lit = this.litHist;
      for (let i = 0; i < 256; i++) {
        const v = lit[i];
        if (v > 0) {
          const n = v;
          shannon = Math.fround(shannon + Math.fround(clampBits(-fastLog2(Math.fround(n * inv))) * n));
        }
      }
      shannon = Math.fround(shannon + 15);
      const ex = this.extraHist;
      for (let i = 0; i < 29; i++) {
        const v = ex[i + 1];
        if (v > 0) {
          const n = v;
          shannon = Math.fround(shannon + Math.fround(clampBits(-fastLog2(Math.fround(n * inv))) * n));
          bits += LENGTH_EXTRA[i] * v;
          nMatches += v;
        }
      }
    }
    if (nMatches > 0) {
      const inv = Math.fround(1 / nMatches);
      const off = this.offHist;
      for (let i = 0; i < 30; i++) {
        const v = off[i];
        if (v > 0) {
          const n = v;
          shannon = Math.fround(shannon + Math.fround(clampBits(-fastLog2(Math.fround(n * inv))) * n));
          bits += DIST_EXTRA_EST[i] * v;
        }
      }
    }
    return Math.trunc(shannon) + bits;
  }
}
