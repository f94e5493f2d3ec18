/**
 * Byte-exact TypeScript re-implementation of GNU gzip 1.x's own deflate (deflate.c/trees.c, not zlib),
 * used to regenerate layers compressed with the gzip CLI (`gzip -1` … `gzip -9`).
 * The output is the raw deflate body that gzip writes between its 10-byte header and 8-byte trailer.
 */
import { GnuDeflater } from "./deflate";

export { GnuDeflater } from "./deflate";
import type { RawDeflateEncoder } from "../raw-deflate";

/** Streaming compressor; output is identical for any chunking of the input. */
export function createGnuGzipDeflate(level: number, onData: (out: Uint8Array) => void): RawDeflateEncoder {
  const d = new GnuDeflater(level, onData);
  return { write: (chunk) => d.write(chunk), end: () => d.end() };
}
