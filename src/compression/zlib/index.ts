/**
 * Byte-exact TypeScript re-implementation of zlib 1.2.x raw deflate (deflateInit2 with windowBits -15,
 * memLevel 8, default strategy, levels 1..9), used to regenerate layers written through zlib (Python,
 * Java, pigz's zlib-compatible mode, …) much faster than pako.
 */
import { ZlibDeflater } from "./deflate";

export { ZlibDeflater } from "./deflate";
import type { RawDeflateEncoder } from "../raw-deflate";

/**
 * Streaming raw deflate; the output equals zlib's deflate() fed the whole input at once and finished
 * with Z_FINISH, whatever the chunking. `onData` receives fresh buffers in order; `peek`, if given,
 * sees the bytes held back for the next one after every deflate block (identification stops early).
 */
export function createZlibDeflate(
  level: number,
  onData: (out: Uint8Array) => void,
  peek?: (partial: Uint8Array) => void,
): RawDeflateEncoder {
  const d = new ZlibDeflater(level, onData, peek);
  return { write: (chunk) => d.write(chunk), end: () => d.end() };
}
