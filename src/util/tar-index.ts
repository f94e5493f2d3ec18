import { open, type FileHandle } from "node:fs/promises";

/** One regular-file (or link) entry of a tar file, located for random access. */
export interface TarEntry {
  path: string;
  type: "file" | "directory" | "symlink" | "link" | "other";
  offset: number;
  size: number;
  linkname?: string;
}

export const TAR_BLOCK = 512;
const BLOCK = TAR_BLOCK;
const MAX_META_BYTES = 1024 * 1024;

function cString(buf: Buffer, start: number, length: number): string {
  const slice = buf.subarray(start, start + length);
  const nul = slice.indexOf(0);
  return slice.subarray(0, nul < 0 ? slice.length : nul).toString("utf8");
}

function octal(buf: Buffer, start: number, length: number, errorLabel: string): number {
  const field = buf.subarray(start, start + length);
  if ((field[0]! & 0x80) !== 0) {
    // GNU base-256 encoding for sizes over 8 GiB.
    let value = 0;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i]!;
    return value;
  }
  const text = cString(buf, start, length).trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw new Error(`${errorLabel}: corrupt tar header (bad number field)`);
  return parseInt(text, 8);
}

function checksumOk(header: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : header[i]!;
  try {
    return sum === octal(header, 148, 8, "tar");
  } catch {
    return false; // not even a number where the checksum goes
  }
}

/** Whole-file compressions people put archives in (`docker save | gzip`), by magic bytes, with their tool. */
const COMPRESSED: { name: string; magic: number[]; tool: string }[] = [
  { name: "gzip", magic: [0x1f, 0x8b], tool: "gunzip" },
  { name: "zstd", magic: [0x28, 0xb5, 0x2f, 0xfd], tool: "unzstd" },
  { name: "xz", magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], tool: "unxz" },
  { name: "bzip2", magic: [0x42, 0x5a, 0x68], tool: "bunzip2" },
];

function compressedAs(head: Buffer): (typeof COMPRESSED)[number] | undefined {
  return COMPRESSED.find((c) => c.magic.every((b, i) => head[i] === b));
}

function parsePax(data: Buffer, errorLabel: string): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    if (space < 0) break;
    const len = parseInt(data.subarray(pos, space).toString("ascii"), 10);
    if (!Number.isSafeInteger(len) || len <= 0 || pos + len > data.length) {
      throw new Error(`${errorLabel}: corrupt pax header`);
    }
    const record = data.subarray(space + 1, pos + len - 1).toString("utf8");
    const eq = record.indexOf("=");
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    pos += len;
  }
  return out;
}

/** Normalise a tar path: strip "./", reject absolute paths and "..". */
export function safeTarPath(raw: string, errorLabel: string): string {
  let p = raw.replace(/\\/g, "/");
  while (p.startsWith("./")) p = p.slice(2);
  if (p.startsWith("/")) throw new Error(`${errorLabel}: tar entry "${raw}" has an absolute path`);
  const parts = p.split("/").filter((s) => s !== "" && s !== ".");
  if (parts.includes("..")) throw new Error(`${errorLabel}: tar entry "${raw}" escapes the archive root ("..")`);
  return parts.join("/");
}

async function readExactly(fh: FileHandle, length: number, position: number, errorLabel: string): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await fh.read(buf, 0, length, position);
  if (bytesRead !== length) throw new Error(`${errorLabel}: truncated tar (unexpected end of file)`);
  return buf;
}

/** What one 512-byte header means, given the pax / GNU long-name records before it. */
export type HeaderStep =
  | { kind: "end" }
  | { kind: "meta"; typeflag: string; size: number; dataStart: number; next: number }
  | { kind: "skip"; next: number }
  | { kind: "entry"; entry: TarEntry; next: number };

/**
 * Tar headers read in order, wherever they come from (a file read at offsets, a decoded stream):
 * the pax and GNU long-name records are kept for the header they apply to.
 */
export class TarHeaderState {
  private pax: Record<string, string> = {};
  private longName: string | undefined;
  private longLink: string | undefined;
  private seen = 0;

  constructor(private readonly label: string) {}

  step(header: Buffer, pos: number): HeaderStep {
    const label = this.label;
    if (header.every((b) => b === 0)) return { kind: "end" };
    const compressed = pos === 0 ? compressedAs(header) : undefined;
    if (compressed) {
      throw new Error(`${label}: ${compressed.name}-compressed, not a plain tar: ${compressed.tool} it first`);
    }
    if (!checksumOk(header)) {
      throw new Error(this.seen === 0 ? `${label}: not a tar archive` : `${label}: corrupt tar header at byte ${pos}`);
    }
    this.seen++;
    const typeflag = String.fromCharCode(header[156]!);
    const size = octal(header, 124, 12, label);
    const dataStart = pos + BLOCK;
    const next = dataStart + Math.ceil(size / BLOCK) * BLOCK;
    if (typeflag === "x" || typeflag === "L" || typeflag === "K") {
      if (size > MAX_META_BYTES) throw new Error(`${label}: tar metadata header too large`);
      return { kind: "meta", typeflag, size, dataStart, next };
    }
    if (typeflag === "g") return { kind: "skip", next };
    const magic = header.subarray(257, 263).toString("latin1");
    const prefix = magic.startsWith("ustar") ? cString(header, 345, 155) : "";
    let name =
      this.pax.path ?? this.longName ?? (prefix ? `${prefix}/${cString(header, 0, 100)}` : cString(header, 0, 100));
    const linkname = this.pax.linkpath ?? this.longLink ?? cString(header, 157, 100);
    const realSize = this.pax.size !== undefined ? Number(this.pax.size) : size;
    this.pax = {};
    this.longName = undefined;
    this.longLink = undefined;
    name = safeTarPath(name, label);
    const type: TarEntry["type"] =
      typeflag === "0" || typeflag === "\0" || typeflag === "7"
        ? "file"
        : typeflag === "5"
          ? "directory"
          : typeflag === "2"
            ? "symlink"
            : typeflag === "1"
              ? "link"
              : "other";
    const entry: TarEntry = { path: name, type, offset: dataStart, size: type === "file" ? realSize : 0 };
    if (type === "symlink" || type === "link") entry.linkname = linkname;
    return { kind: "entry", entry, next: type === "file" ? dataStart + Math.ceil(realSize / BLOCK) * BLOCK : next };
  }

  /** The data of a "meta" step's record. */
  meta(typeflag: string, data: Buffer): void {
    if (typeflag === "x") this.pax = parsePax(data, this.label);
    else if (typeflag === "L") this.longName = cString(data, 0, data.length);
    else this.longLink = cString(data, 0, data.length);
  }
}

/** Scan a tar file's headers (skipping data) and return its entries by path. */
export async function indexTarFile(file: string): Promise<Map<string, TarEntry>> {
  const fh = await open(file, "r");
  try {
    const { size: fileSize } = await fh.stat();
    const entries = new Map<string, TarEntry>();
    const headers = new TarHeaderState(file);
    let pos = 0;
    for (;;) {
      if (pos + BLOCK > fileSize) {
        if (entries.size === 0) throw new Error(`${file}: not a tar archive`);
        throw new Error(`${file}: truncated tar (no end-of-archive marker)`);
      }
      const step = headers.step(await readExactly(fh, BLOCK, pos, file), pos);
      if (step.kind === "end") break;
      if (step.kind === "meta") {
        if (step.dataStart + step.size > fileSize) throw new Error(`${file}: truncated tar (entry data cut off)`);
        headers.meta(step.typeflag, await readExactly(fh, step.size, step.dataStart, file));
      } else if (step.kind === "entry") {
        if (step.entry.offset + step.entry.size > fileSize)
          throw new Error(`${file}: truncated tar (entry data cut off)`);
        entries.set(step.entry.path, step.entry);
      }
      pos = step.next;
    }
    return entries;
  } finally {
    await fh.close();
  }
}
