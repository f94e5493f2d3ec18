/** The gzip member header (RFC 1952), kept verbatim so a regenerated blob starts byte-identical. */

export interface GzipHeaderInfo {
  /** Header length in bytes (everything before the deflate data). */
  length: number;
  mtime: number;
  xfl: number;
  os: number;
  name?: string;
}

const FTEXT = 1;
const FHCRC = 2;
const FEXTRA = 4;
const FNAME = 8;
const FCOMMENT = 16;

/** Parse a gzip header from the first bytes of a blob; undefined if incomplete or not gzip. */
export function parseGzipHeader(buf: Uint8Array): GzipHeaderInfo | undefined {
  if (buf.length < 10 || buf[0] !== 0x1f || buf[1] !== 0x8b || buf[2] !== 8) return undefined;
  const flags = buf[3]!;
  if (flags & 0xe0) return undefined;
  let pos = 10;
  if (flags & FEXTRA) {
    if (pos + 2 > buf.length) return undefined;
    pos += 2 + (buf[pos]! | (buf[pos + 1]! << 8));
  }
  let name: string | undefined;
  for (const flag of [FNAME, FCOMMENT]) {
    if (!(flags & flag)) continue;
    const end = buf.indexOf(0, pos);
    if (end < 0) return undefined;
    if (flag === FNAME) name = Buffer.from(buf.subarray(pos, end)).toString("latin1");
    pos = end + 1;
  }
  if (flags & FHCRC) pos += 2;
  if (pos > buf.length) return undefined;
  void FTEXT;
  const mtime = (buf[4]! | (buf[5]! << 8) | (buf[6]! << 16) | (buf[7]! << 24)) >>> 0;
  const info: GzipHeaderInfo = { length: pos, mtime, xfl: buf[8]!, os: buf[9]! };
  if (name !== undefined) info.name = name;
  return info;
}

/** gzip trailer: CRC-32 and input size mod 2^32, little endian. */
export function gzipTrailer(crc: number, size: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeUInt32LE(crc >>> 0, 0);
  out.writeUInt32LE(size % 0x100000000, 4);
  return out;
}
