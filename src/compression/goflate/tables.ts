/**
 * DEFLATE constants (RFC 1951 §3.2.5) and the token layout shared by the encoders.
 *
 * A token is a non-negative int32: values 0..256 are literals (256 = end of block); a match has
 * bit 30 set, (length - 3) in bits 22..29 and (distance - 1) in bits 0..21. The layout matches
 * the one Go uses, so "literal < MATCH_FLAG" comparisons behave the same way.
 */

export const MATCH_FLAG = 1 << 30;
export const LENGTH_SHIFT = 22;
export const OFFSET_MASK = (1 << LENGTH_SHIFT) - 1;
export const END_OF_BLOCK = 256;
export const FIRST_LENGTH_CODE = 257;

/** Literal/length alphabet size (0..285) and distance alphabet size. */
export const NUM_LIT_CODES = 286;
export const NUM_DIST_CODES = 30;
/** Code-length alphabet (RFC 1951 §3.2.7). */
export const NUM_CODEGEN_CODES = 19;

export const MAX_STORE_BLOCK = 65535;

/** Base of each length code, expressed as (length - 3). */
export const LENGTH_BASE = Uint16Array.of(
  0,
  1,
  2,
  3,
  4,
  5,
  6,
  7,
  8,
  10,
  12,
  14,
  16,
  20,
  24,
  28,
  32,
  40,
  48,
  56,
  64,
  80,
  96,
  112,
  128,
  160,
  192,
  224,
  255,
);
export const LENGTH_EXTRA = Uint8Array.of(
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  1,
  1,
  1,
  1,
  2,
  2,
  2,
  2,
  3,
  3,
  3,
  3,
  4,
  4,
  4,
  4,
  5,
  5,
  5,
  5,
  0,
);

/** Base of each distance code, expressed as (distance - 1). */
export const DIST_BASE = Uint16Array.of(
  0x0000,
  0x0001,
  0x0002,
  0x0003,
  0x0004,
  0x0006,
  0x0008,
  0x000c,
  0x0010,
  0x0018,
  0x0020,
  0x0030,
  0x0040,
  0x0060,
  0x0080,
  0x00c0,
  0x0100,
  0x0180,
  0x0200,
  0x0300,
  0x0400,
  0x0600,
  0x0800,
  0x0c00,
  0x1000,
  0x1800,
  0x2000,
  0x3000,
  0x4000,
  0x6000,
);
export const DIST_EXTRA = Uint8Array.of(
  0,
  0,
  0,
  0,
  1,
  1,
  2,
  2,
  3,
  3,
  4,
  4,
  5,
  5,
  6,
  6,
  7,
  7,
  8,
  8,
  9,
  9,
  10,
  10,
  11,
  11,
  12,
  12,
  13,
  13,
);

/** Order in which code-length code lengths are transmitted. */
export const CODEGEN_ORDER = Uint8Array.of(16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15);

/** Map a value to the largest code whose base does not exceed it. */
function codeLookup(bases: Uint16Array, size: number): Uint8Array {
  const table = new Uint8Array(size);
  let code = 0;
  for (let v = 0; v < size; v++) {
    while (code + 1 < bases.length && bases[code + 1]! <= v) code++;
    table[v] = code;
  }
  return table;
}

/** (length - 3) → length code index 0..28 (add 257 for the symbol). */
export const LENGTH_CODE = codeLookup(LENGTH_BASE, 256);
/** (distance - 1) → distance code 0..29. */
export const DIST_CODE = codeLookup(DIST_BASE, 1 << 15);
