/**
 * Minimal typings for pako's low-level zlib port (pako/lib/zlib/*), which pigz's model drives
 * directly: it needs Z_BLOCK flushes, a reusable stream (deflateReset) and the deflate state's
 * bit buffer (the equivalent of zlib's deflatePending/deflatePrime, which pako does not export).
 */
declare module "pako/lib/zlib/zstream.js" {
  class ZStream {
    input: Uint8Array | null;
    next_in: number;
    avail_in: number;
    total_in: number;
    output: Uint8Array | null;
    next_out: number;
    avail_out: number;
    total_out: number;
    msg: string;
    state: PakoDeflateState | null;
  }
  /** The fields of pako's DeflateState this module touches. */
  interface PakoDeflateState {
    /** Bit buffer (low `bi_valid` bits are pending output, LSB first). */
    bi_buf: number;
    bi_valid: number;
    /** Bytes waiting in pending_buf (0 after a deflate call that had output room). */
    pending: number;
  }
  export = ZStream;
}

declare module "pako/lib/zlib/deflate.js" {
  import type ZStream from "pako/lib/zlib/zstream.js";
  export function deflateInit2(
    strm: ZStream,
    level: number,
    method: number,
    windowBits: number,
    memLevel: number,
    strategy: number,
    /** true: zlib's classic rolling hash (canonical zlib output); false: Chromium's 4-byte hash. */
    legacyHash?: boolean,
  ): number;
  export function deflateReset(strm: ZStream): number;
  export function deflateSetDictionary(strm: ZStream, dictionary: Uint8Array): number;
  export function deflate(strm: ZStream, flush: number): number;
  export function deflateEnd(strm: ZStream): number;
}
