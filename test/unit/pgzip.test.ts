/**
 * src/compression/pgzip must reproduce the deflate body of klauspost/pgzip's gzip writer byte
 * for byte. Every expected stream comes from the real Go library (test/helpers/gopgzip.ts builds
 * test/helpers/gopgzip/main.go against Debian's pgzip 1.2.5 / klauspost/compress 1.15.12),
 * never from the code under test.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import * as zlib from "node:zlib";

import { PGZIP_BLOCK_SIZE, createPgzipDeflate } from "../../src/compression/pgzip";
import { goPgzip, goPgzipBody, haveGoPgzip } from "../helpers/gopgzip";

const skip = haveGoPgzip() ? false : "Go or Debian's klauspost/pgzip sources not installed";
/** podman's default (5) and crane's (1) first, then the rest. */
const LEVELS = [1, 5, 9, 2, 3, 4, 6, 7, 8];
const B = PGZIP_BLOCK_SIZE;

const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex").slice(0, 16);

function assertSame(actual: Uint8Array, expected: Uint8Array, what: string): void {
  if (Buffer.compare(actual, expected) === 0) return;
  let i = 0;
  const n = Math.min(actual.length, expected.length);
  while (i < n && actual[i] === expected[i]) i++;
  assert.fail(
    `${what}: body differs from Go pgzip at byte ${i} (ours ${actual.length} bytes sha256 ${sha(actual)}, ` +
      `Go ${expected.length} bytes sha256 ${sha(expected)})`,
  );
}

/** Our deflate body for `data`, written in pieces of `chunk` bytes (0 = one write). */
function tsBody(data: Uint8Array, level: number, chunk = 0, blockSize?: number): Buffer {
  const parts: Uint8Array[] = [];
  const enc = createPgzipDeflate(level, blockSize === undefined ? undefined : { blockSize }, (o) => parts.push(o));
  const step = chunk > 0 ? chunk : Math.max(1, data.length);
  for (let o = 0; o < data.length; o += step) enc.write(data.subarray(o, o + step));
  enc.end();
  return Buffer.concat(parts);
}

// ------------------------------------------------------------------ inputs (real files)

const LICENSES = "/usr/share/common-licenses";

function readIf(path: string): Buffer | null {
  try {
    return statSync(path).isFile() ? readFileSync(path) : null;
  } catch {
    return null;
  }
}

function licenseText(): Buffer {
  const names = existsSync(LICENSES) ? readdirSync(LICENSES).sort() : [];
  const parts = names.map((n) => readIf(join(LICENSES, n))).filter((b): b is Buffer => b !== null);
  return parts.length > 0 ? Buffer.concat(parts) : readFileSync(__filename);
}

function firstExisting(paths: string[]): Buffer {
  for (const p of paths) {
    const b = readIf(p);
    if (b !== null && b.length > 0) return b;
  }
  return readFileSync(process.execPath).subarray(0, 1 << 20);
}

/** Already-compressed data: the largest .gz under 1 MiB among a few /usr/share/doc packages. */
function compressedFile(): Buffer {
  let best: string | null = null;
  let bestSize = 0;
  for (const pkg of existsSync("/usr/share/doc") ? readdirSync("/usr/share/doc") : []) {
    for (const name of ["changelog.gz", "changelog.Debian.gz", "NEWS.gz"]) {
      const p = join("/usr/share/doc", pkg, name);
      try {
        const size = statSync(p).size;
        if (size > bestSize && size < 1 << 20) {
          best = p;
          bestSize = size;
        }
      } catch {
        // not there
      }
    }
  }
  return best !== null ? readFileSync(best) : zlib.gzipSync(licenseText());
}

/** A GNU tar of a directory (the license texts), like a small image layer. */
function gnuTar(): Buffer {
  return execFileSync("tar", ["--format=gnu", "-cf", "-", "-C", "/usr/share", "common-licenses"], {
    maxBuffer: 1 << 28,
  });
}

/** ≈ 5.3 MB of real files (license texts, /usr/bin binaries): several 1 MiB pgzip blocks. */
function multiBlock(): Buffer {
  const parts: Buffer[] = [licenseText()];
  let total = parts[0].length;
  const bin = "/usr/bin";
  for (const name of existsSync(bin) ? readdirSync(bin).sort() : []) {
    const b = readIf(join(bin, name));
    if (b === null || b.length > 2 << 20) continue;
    parts.push(b);
    total += b.length;
    if (total > 5.3e6) break;
  }
  while (total <= 5.3e6) {
    parts.push(parts[0]);
    total += parts[0].length;
  }
  return Buffer.concat(parts).subarray(0, 5_300_000);
}

/** Long runs and short periods: maximal matches, distance 1, literal-run skipping. */
function repetitive(): Buffer {
  const text = licenseText().subarray(0, 4096);
  return Buffer.concat([
    Buffer.alloc(150_000, 0x61),
    Buffer.from("ab".repeat(60_000)),
    Buffer.alloc(70_000, 0),
    Buffer.concat(Array.from({ length: 20 }, () => text)),
    Buffer.from(Array.from({ length: 256 * 200 }, (_, i) => i & 0xff)),
  ]);
}

let cachedBig: Buffer | undefined;
const big = (): Buffer => (cachedBig ??= multiBlock());

// ------------------------------------------------------------------ tests

describe("pgzip: deflate body byte-identical to Go klauspost/pgzip", { skip }, () => {
  const text = licenseText();
  const inputs: Array<[string, () => Buffer]> = [
    ["empty", () => Buffer.alloc(0)],
    ["1 byte", () => text.subarray(0, 1)],
    ["small text (40 bytes)", () => Buffer.from("hello hello hello hello, pgzip world!!\n")],
    ["200 bytes of text", () => text.subarray(0, 200)],
    ["all license texts", () => text],
    ["/usr/bin/ls", () => firstExisting(["/usr/bin/ls", "/bin/ls"])],
    ["/usr/bin/bash (> 1 MiB)", () => firstExisting(["/usr/bin/bash", "/bin/bash", "/usr/bin/tar"])],
    ["gzip-compressed file", compressedFile],
    ["GNU tar of a directory", gnuTar],
    ["repetitive", repetitive],
  ];
  for (const [name, get] of inputs) {
    it(name, () => {
      const data = get();
      for (const level of LEVELS) assertSame(tsBody(data, level), goPgzipBody(data, level), `${name}, level ${level}`);
    });
  }

  it("≈ 5 MB spanning several 1 MiB blocks", () => {
    const data = big();
    assert.ok(data.length > 5 * B);
    for (const level of LEVELS) assertSame(tsBody(data, level), goPgzipBody(data, level), `5 MB, level ${level}`);
  });

  it("random (incompressible) data over two blocks", () => {
    const data = createHash("sha512").update("seed").digest();
    const rnd = Buffer.alloc(B + 300_000);
    for (let o = 0; o < rnd.length; o += 64) {
      createHash("sha512").update(data).update(String(o)).digest().copy(rnd, o);
    }
    for (const level of LEVELS) assertSame(tsBody(rnd, level), goPgzipBody(rnd, level), `random, level ${level}`);
  });

  it("input lengths around the block size", () => {
    // B: the last block is empty; B+1..B+16384: a short last block still gets the 16 KiB tail
    const src = big();
    for (const n of [B - 1, B, B + 1, B + 16_383, B + 16_384, B + 70_000, 2 * B]) {
      const data = src.subarray(src.length - n);
      for (const level of [1, 5, 9]) assertSame(tsBody(data, level), goPgzipBody(data, level), `${n} bytes, L${level}`);
    }
  });

  it("levels 0 (stored), -1 (default = 5) and -2 (Huffman only)", () => {
    const data = Buffer.concat([licenseText(), firstExisting(["/usr/bin/ls", "/bin/ls"])]);
    const more = big().subarray(0, 2 * B + 12_345);
    for (const level of [0, -1, -2]) {
      assertSame(tsBody(data, level), goPgzipBody(data, level), `license+ls, level ${level}`);
      assertSame(tsBody(more, level), goPgzipBody(more, level), `2 MiB+, level ${level}`);
      assertSame(tsBody(Buffer.alloc(0), level), goPgzipBody(Buffer.alloc(0), level), `empty, level ${level}`);
    }
  });

  it("a non-default block size (SetConcurrency)", () => {
    const data = big().subarray(0, 400_000);
    for (const blockSize of [16_385, 100_000]) {
      for (const level of [1, 5, 7, 9]) {
        assertSame(
          tsBody(data, level, 0, blockSize),
          goPgzipBody(data, level, { blockSize }),
          `block size ${blockSize}, level ${level}`,
        );
      }
    }
    assert.throws(() => createPgzipDeflate(5, { blockSize: 16_384 }, () => undefined), RangeError);
  });

  it("the complete stream: Go's header, our body, CRC-32/size trailer, and it inflates", () => {
    const data = big().subarray(0, B + 5000);
    const go = goPgzip(data, 5);
    // ModTime zero (time.Time{}.Unix() as uint32), XFL 0, OS 255
    assert.deepEqual([...go.subarray(0, 10)], [0x1f, 0x8b, 8, 0, 0x00, 0x09, 0x6e, 0x88, 0, 0xff]);
    const body = tsBody(data, 5);
    const trailer = Buffer.alloc(8);
    trailer.writeUInt32LE(zlib.crc32(data), 0);
    trailer.writeUInt32LE(data.length >>> 0, 4);
    const ours = Buffer.concat([go.subarray(0, 10), body, trailer]);
    assertSame(ours, go, "full gzip stream");
    assert.equal(Buffer.compare(zlib.gunzipSync(ours), data), 0);
  });
});

describe("pgzip: write sizes do not move block boundaries", { skip }, () => {
  const data = big().subarray(0, 2 * B + 300_000);

  it("Go: the same stream whatever the Write call size", () => {
    const ref = goPgzip(data, 5);
    for (const chunk of [1000, 4097, B + 3]) assertSame(goPgzip(data, 5, { chunk }), ref, `Go, ${chunk}-byte writes`);
  });

  it("ours: odd chunk sizes give the same body as one write (and as Go)", () => {
    for (const level of [1, 5, 9]) {
      const ref = goPgzipBody(data, level);
      assertSame(tsBody(data, level), ref, `one write, level ${level}`);
      for (const chunk of [7, 1000, 32_768, 65_537, B + 1]) {
        assertSame(tsBody(data, level, chunk), ref, `${chunk}-byte writes, level ${level}`);
      }
    }
    const head = data.subarray(0, 120_000);
    assertSame(tsBody(head, 5, 1), goPgzipBody(head, 5), "1-byte writes, level 5");
  });
});
