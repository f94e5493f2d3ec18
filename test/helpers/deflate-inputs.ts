/**
 * Inputs and checks shared by the byte-exact deflate encoder tests (gnugzip, zlib): the same files
 * and synthetic edge cases exercise both, and a mismatch is reported by its first differing byte.
 */
import assert from "node:assert/strict";
import { existsSync, lstatSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

export type NamedInput = [name: string, data: Uint8Array];

export interface StreamingDeflate {
  write(chunk: Uint8Array): void;
  end(): void;
}

/** Runs `data` through a fresh encoder, whole (`chunk` <= 0) or in `chunk`-byte writes. */
export function deflateChunked(
  create: (onData: (out: Uint8Array) => void) => StreamingDeflate,
  data: Uint8Array,
  chunk = 0,
): Buffer {
  const parts: Uint8Array[] = [];
  const d = create((b) => parts.push(b));
  if (chunk <= 0) d.write(data);
  else for (let o = 0; o < data.length; o += chunk) d.write(data.subarray(o, Math.min(o + chunk, data.length)));
  d.end();
  return Buffer.concat(parts);
}

/** Byte equality that names the first difference instead of dumping megabytes. */
export function assertSameBytes(actual: Uint8Array, expected: Uint8Array, what: string, reference: string): void {
  const n = Math.min(actual.length, expected.length);
  let i = 0;
  while (i < n && actual[i] === expected[i]) i++;
  if (i === n && actual.length === expected.length) return;
  assert.fail(
    `${what}: differs from ${reference} at byte ${i} (ours ${actual.length} bytes, ${reference} ${expected.length} bytes)`,
  );
}

/** Concatenation of real files below `root` (sorted walk) up to `size` bytes. */
export function realData(root: string, size: number, filter: (name: string) => boolean = () => true): Uint8Array {
  const out = Buffer.alloc(size);
  let len = 0;
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      if (len >= size) return;
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && st.size > 0 && filter(name)) {
        const b = readFileSync(p);
        len += b.copy(out, len, 0, Math.min(b.length, size - len));
      }
    }
  };
  if (existsSync(root)) walk(root);
  return out.subarray(0, len);
}

/** The classic rand() LCG; returns the next 32-bit state on each call. */
export function lcg(seed: number): () => number {
  let r = seed >>> 0;
  return () => (r = (Math.imul(r, 1103515245) + 12345) >>> 0);
}

/** `n` bytes, each `byte(next())` (by default the top 8 bits of the state). */
export function lcgBytes(next: () => number, n: number, byte: (r: number) => number = (r) => r >>> 24): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = byte(next());
  return out;
}

/**
 * Tiny inputs followed by the system's license texts (a fixed set of mid-sized text files);
 * the first three entries are the synthetic ones.
 */
export function smallInputs(): NamedInput[] {
  const text = Buffer.from("The quick brown fox jumps over the lazy dog.\n".repeat(40) + "fin\n");
  const small: NamedInput[] = [
    ["empty", new Uint8Array(0)],
    ["1 byte", Buffer.from("x")],
    ["small text", text],
  ];
  const licenses = "/usr/share/common-licenses";
  if (existsSync(licenses)) {
    for (const n of readdirSync(licenses).sort()) {
      const p = join(licenses, n);
      if (lstatSync(p).isFile()) small.push([p, readFileSync(p)]);
    }
  }
  return small;
}

/** Two ELF binaries: mixed code and tables. */
export function binaryInputs(): NamedInput[] {
  const out: NamedInput[] = [];
  for (const p of ["/usr/bin/bash", "/usr/bin/ls"]) if (existsSync(p)) out.push([p, readFileSync(p)]);
  return out;
}

/** Prefixes of `text` whose lengths sit on the window and lookahead boundaries (if it is long enough). */
export function windowBoundaryCuts(text: Uint8Array): NamedInput[] {
  if (text.length <= 65537) return [];
  return [262, 32769, 65274, 65534, 65535, 65536, 65537].map((n) => [`text ${n}`, text.subarray(0, n)]);
}
