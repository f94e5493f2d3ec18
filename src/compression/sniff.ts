export type StreamFormat = "gzip" | "zstd" | "xz" | "none";

/** Identify a compressed stream from its first bytes. "none" means not compressed (or unknown). */
export function sniffCompression(head: Uint8Array): StreamFormat {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return "zstd";
  if (
    head.length >= 6 &&
    head[0] === 0xfd &&
    head[1] === 0x37 &&
    head[2] === 0x7a &&
    head[3] === 0x58 &&
    head[4] === 0x5a &&
    head[5] === 0x00
  ) {
    return "xz";
  }
  return "none";
}

/** True when the 512-byte block looks like a ustar/gnu/v7 tar header (valid checksum). */
export function looksLikeTar(block: Uint8Array): boolean {
  if (block.length < 512) return false;
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : block[i]!;
  const field = Buffer.from(block.subarray(148, 156)).toString("latin1").replace(/\0.*$/, "").trim();
  return /^[0-7]+$/.test(field) && parseInt(field, 8) === sum;
}
