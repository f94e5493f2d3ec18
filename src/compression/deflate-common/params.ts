/**
 * Match-finder parameters that GNU gzip's deflate.c and zlib's deflate.c (windowBits 15, memLevel 8)
 * share. Hot loops should copy these into module-local consts: an imported binding is a property
 * load on the module object in the CommonJS output.
 */

export const WSIZE = 0x8000;
export const WMASK = WSIZE - 1;
/** The window holds two WSIZE halves; the upper one slides down when the lookahead runs low. */
export const WINDOW_SIZE = 2 * WSIZE;
export const HASH_BITS = 15;
export const HASH_SIZE = 1 << HASH_BITS;
export const HASH_MASK = HASH_SIZE - 1;
/** ceil(HASH_BITS / MIN_MATCH): after MIN_MATCH shifts a byte has left the hash. */
export const HASH_SHIFT = 5;
export const MIN_MATCH = 3;
export const MAX_MATCH = 258;
export const MIN_LOOKAHEAD = MAX_MATCH + MIN_MATCH + 1;
export const MAX_DIST = WSIZE - MIN_LOOKAHEAD;
/** A 3-byte match farther back than this is dropped (it would cost more than three literals). */
export const TOO_FAR = 4096;

/** good_length, max_lazy (max_insert_length for levels 1..3), nice_length, max_chain. */
export type LevelConfig = readonly [good: number, lazy: number, nice: number, chain: number];

/** Per-level tuning, indexed by level 1..9 (identical in gzip 1.12 and zlib 1.2.x). */
export const CONFIG: ReadonlyArray<LevelConfig> = [
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
