import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { Readable } from "node:stream";
import { crc32 } from "./crc32";

/**
 * The .xz file format's index (tukaani.org/xz/xz-file-format.txt): stream header and footer of 12
 * bytes, blocks, then an index of (unpadded size, uncompressed size) per block. Reading it gives
 * where each block's bytes are, so a range of the uncompressed data can be decoded from its blocks.
 */
export interface XzBlock {
  /** Offset of the block header in the file. */
  offset: number;
  /** Header, data and check, without the padding to 4 bytes. */
  unpadded: number;
  /** Offset of its first byte in the uncompressed data. */
  start: number;
  size: number;
}

export interface XzIndex {
  /** The stream header's two flag bytes (the check type), for synthetic streams. */
  flags: Buffer;
  blocks: XzBlock[];
  uncompressedSize: number;
}

const HEADER_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
const FOOTER_MAGIC = Buffer.from("YZ", "latin1");
const MAX_INDEX_BYTES = 64 * 1024 * 1024;

const padded = (n: number): number => Math.ceil(n / 4) * 4;

function readVli(buf: Buffer, pos: number, label: string): [number, number] {
  let value = 0;
  for (let i = 0; i < 9; i++) {
    const byte = buf[pos + i];
    if (byte === undefined) break;
    value += (byte & 0x7f) * 2 ** (7 * i);
    if ((byte & 0x80) === 0) {
      if (!Number.isSafeInteger(value)) break;
      return [value, pos + i + 1];
    }
  }
  throw new Error(`${label}: corrupt xz index (bad number)`);
}

function writeVli(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

/**
 * The block index of a one-stream .xz file (stream padding after it allowed), checked by its CRCs;
 * undefined when the file holds several streams (xz -dc of concatenated files), which serve reads
 * the slow way instead.
 */
export async function readXzIndex(file: string, label: string): Promise<XzIndex | undefined> {
  const fh = await open(file, "r");
  try {
    const fileSize = (await fh.stat()).size;
    const read = async (pos: number, len: number): Promise<Buffer> => {
      const buf = Buffer.alloc(len);
      const { bytesRead } = await fh.read(buf, 0, len, pos);
      if (bytesRead !== len) throw new Error(`${label}: truncated xz file`);
      return buf;
    };
    if (fileSize < 32) throw new Error(`${label}: too short for an xz file`);
    const header = await read(0, 12);
    if (!header.subarray(0, 6).equals(HEADER_MAGIC) || crc32(header.subarray(6, 8)) !== header.readUInt32LE(8))
      throw new Error(`${label}: not an xz file (bad stream header)`);
    // Stream padding: zero bytes, a multiple of 4, after the footer.
    let end = fileSize;
    const tail = await read(Math.max(0, fileSize - 65536), Math.min(65536, fileSize));
    let t = tail.length;
    while (t >= 4 && tail.readUInt32LE(t - 4) === 0) t -= 4;
    end -= tail.length - t;
    const footer = await read(end - 12, 12);
    if (!footer.subarray(10, 12).equals(FOOTER_MAGIC) || crc32(footer.subarray(4, 10)) !== footer.readUInt32LE(0))
      throw new Error(`${label}: corrupt xz stream footer`);
    if (!footer.subarray(8, 10).equals(header.subarray(6, 8))) throw new Error(`${label}: xz header and footer differ`);
    const indexSize = (footer.readUInt32LE(4) + 1) * 4;
    if (indexSize > MAX_INDEX_BYTES || indexSize > end - 24) throw new Error(`${label}: corrupt xz index size`);
    const indexStart = end - 12 - indexSize;
    const index = await read(indexStart, indexSize);
    if (index[0] !== 0 || crc32(index.subarray(0, indexSize - 4)) !== index.readUInt32LE(indexSize - 4))
      throw new Error(`${label}: corrupt xz index`);
    let [count, pos] = readVli(index, 1, label);
    const blocks: XzBlock[] = [];
    let offset = 12;
    let start = 0;
    for (; count > 0; count--) {
      let unpadded: number, size: number;
      [unpadded, pos] = readVli(index, pos, label);
      [size, pos] = readVli(index, pos, label);
      if (unpadded < 5 || pos > indexSize - 4) throw new Error(`${label}: corrupt xz index record`);
      blocks.push({ offset, unpadded, start, size });
      offset += padded(unpadded);
      start += size;
    }
    // Blocks that do not end where the index starts: more streams before this one.
    if (offset !== indexStart) return undefined;
    return { flags: Buffer.from(header.subarray(6, 8)), blocks, uncompressedSize: start };
  } finally {
    await fh.close();
  }
}

/** Blocks first..last (inclusive) of the index that hold uncompressed bytes [start, end). */
export function blocksFor(index: XzIndex, start: number, end: number): [number, number] {
  const find = (at: number): number => {
    let lo = 0;
    let hi = index.blocks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (index.blocks[mid]!.start <= at) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  return [find(start), find(Math.max(start, end - 1))];
}

/**
 * Blocks first..last as a stream of their own (the original header, their bytes as they are in the
 * file, a new index and footer), which any xz decoder takes and checks block by block.
 */
export function syntheticStream(file: string, index: XzIndex, first: number, last: number): Readable {
  const blocks = index.blocks.slice(first, last + 1);
  const header = Buffer.concat([HEADER_MAGIC, index.flags, u32(crc32(index.flags))]);
  const records = [
    0,
    ...writeVli(blocks.length),
    ...blocks.flatMap((b) => [...writeVli(b.unpadded), ...writeVli(b.size)]),
  ];
  const body = Buffer.alloc(padded(records.length));
  Buffer.from(records).copy(body);
  const idx = Buffer.concat([body, u32(crc32(body))]);
  const back = Buffer.concat([u32(idx.length / 4 - 1), index.flags]);
  const footer = Buffer.concat([u32(crc32(back)), back, FOOTER_MAGIC]);
  const from = blocks[0]!.offset;
  const to = blocks[blocks.length - 1]!.offset + padded(blocks[blocks.length - 1]!.unpadded);
  async function* parts(): AsyncGenerator<Buffer> {
    yield header;
    for await (const chunk of createReadStream(file, { start: from, end: to - 1, highWaterMark: 1 << 20 }))
      yield chunk as Buffer;
    yield idx;
    yield footer;
  }
  return Readable.from(parts(), { objectMode: false });
}
