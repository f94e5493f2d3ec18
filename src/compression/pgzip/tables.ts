/**
 * DEFLATE symbol tables (RFC 1951 §3.2.5) in the shapes the klauspost encoder consults them,
 * derived from the RFC base/extra-bit lists rather than spelled out.
 */

/** Tokens: literals are 0..255, the end-of-block marker is 256, matches carry MATCH_FLAG. */
export const EOB = 256;
export const MATCH_FLAG = 1 << 30;
/** Match token layout: bits 0-14 distance-1, 15-19 distance code, 20-27 length-3. */
export const LEN_SHIFT = 20;
export const DCODE_SHIFT = 15;

export const MAX_STORE = 65535;
export const MAX_MATCH_OFFSET = 1 << 15;
export const MAX_MATCH_LEN = 258;
export const NUM_LIT = 286;
export const NUM_DIST = 30;
export const NUM_CODEGEN = 19;
/** Size of the writer's literal frequency array: 257 + 32 (room for unused length codes). */
export const LIT_FREQ_SIZE = 289;

/** Length-code base (as length-3) and extra bits, codes 257..285 → index 0..28. */
export const LENGTH_BASE = new Uint8Array([
  0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 255,
]);
export const LENGTH_EXTRA = new Uint8Array(32);
/** Distance-code base (as distance-1) and extra bits. */
export const DIST_BASE = new Uint16Array(32);
export const DIST_EXTRA = new Uint8Array(32);

/** (length-3) → length code index 0..28. */
export const LENGTH_CODE = new Uint8Array(256);
/** distance-1 < 256 → distance code. */
const DIST_CODE_LOW = new Uint8Array(256);

for (let c = 0; c < 28; c++) {
  const e = c < 8 ? 0 : (c - 4) >> 2;
  LENGTH_EXTRA[c] = e;
  for (let x = LENGTH_BASE[c]; x < LENGTH_BASE[c] + (1 << e) && x < 256; x++) LENGTH_CODE[x] = c;
}
LENGTH_EXTRA[28] = 0;
LENGTH_CODE[255] = 28;

{
  let base = 0;
  for (let c = 0; c < 30; c++) {
    const e = c < 4 ? 0 : (c >> 1) - 1;
    DIST_EXTRA[c] = e;
    DIST_BASE[c] = base;
    for (let x = base; x < base + (1 << e) && x < 256; x++) DIST_CODE_LOW[x] = c;
    base += 1 << e;
  }
}

/** Distance code of `off` (distance-1). Mirrors the table lookup incl. its wrap for off ≥ 32768. */
export function distCode(off: number): number {
  return off < 256 ? DIST_CODE_LOW[off] : DIST_CODE_LOW[(off >> 7) & 255] + 14;
}

/** Order in which code-length code lengths are sent. */
export const CODEGEN_ORDER = new Uint8Array([16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]);
