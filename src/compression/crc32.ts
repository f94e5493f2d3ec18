import * as zlib from "node:zlib";

const CRC_TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

/** CRC-32 (IEEE) in plain TypeScript, for Node versions without zlib.crc32 (added in 20.15/22.2). */
export function crc32Table(data: Uint8Array, crc = 0): number {
  let c = ~crc;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

type Crc32Fn = (data: Uint8Array, value?: number) => number;
const nativeCrc32 = (zlib as { crc32?: Crc32Fn }).crc32;

/** CRC-32 (IEEE), continuing from `crc`. Uses the native zlib implementation when available. */
export function crc32(data: Uint8Array, crc = 0): number {
  return nativeCrc32 !== undefined ? nativeCrc32(data, crc) : crc32Table(data, crc);
}
