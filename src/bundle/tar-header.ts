/**
 * ustar headers for the bundle writers, byte for byte what tar-stream's pack writes for the same
 * entry (uid/gid 0, no user or group names), so the streamed and the positional writer make the
 * same bundle. Only the names a bundle uses are supported: ASCII, at most 100 bytes.
 */
export const TAR_BLOCK = 512;
/** Two zero blocks end an archive. */
export const END_OF_ARCHIVE = 2 * TAR_BLOCK;

export interface TarHeaderFields {
  name: string;
  type: "file" | "directory";
  size: number;
  mode: number;
  mtime: Date;
}

/** Octal digits, zero-padded to `width`, then a space (as tar-stream and GNU tar write them). */
function octal(value: number, width: number): string {
  return value.toString(8).padStart(width, "0") + " ";
}

export function tarHeader(fields: TarHeaderFields): Buffer {
  const name = fields.type === "directory" && !fields.name.endsWith("/") ? `${fields.name}/` : fields.name;
  if (!/^[\x20-\x7e]{1,100}$/.test(name)) throw new Error(`tar entry name ${JSON.stringify(name)} is not short ASCII`);
  const size = fields.type === "directory" ? 0 : fields.size;
  const block = Buffer.alloc(TAR_BLOCK);
  block.write(name, 0, "ascii");
  block.write(octal(fields.mode & 0o7777, 6), 100, "ascii");
  block.write(octal(0, 6), 108, "ascii"); // uid
  block.write(octal(0, 6), 116, "ascii"); // gid
  if (size.toString(8).length > 11) {
    // Over 8 GiB: base-256, marked by the high bit (the GNU/star extension tar-stream writes too).
    block[124] = 0x80;
    let n = size;
    for (let i = 11; i > 0; i--) {
      block[124 + i] = n % 256;
      n = Math.floor(n / 256);
    }
  } else {
    block.write(octal(size, 11), 124, "ascii");
  }
  block.write(octal(Math.floor(fields.mtime.getTime() / 1000), 11), 136, "ascii");
  block[156] = fields.type === "directory" ? 0x35 : 0x30;
  block.write("ustar\x00", 257, "ascii");
  block.write("00", 263, "ascii");
  block.write(octal(0, 6), 329, "ascii"); // devmajor
  block.write(octal(0, 6), 337, "ascii"); // devminor
  let sum = 8 * 0x20; // the checksum field counts as spaces
  for (let i = 0; i < TAR_BLOCK; i++) if (i < 148 || i >= 156) sum += block[i]!;
  block.write(octal(sum, 6), 148, "ascii");
  return block;
}

/** Bytes an entry takes in the archive: its header and its data padded to whole blocks. */
export function tarEntrySpan(size: number): number {
  return TAR_BLOCK + Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
}
