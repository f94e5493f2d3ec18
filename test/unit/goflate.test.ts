/**
 * goflate must reproduce Go's compress/gzip byte for byte. Every expected stream comes from a
 * real Go program (test/helpers/gogzip.ts builds fixtures/gogzip/main.go), never from goflate.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import * as zlib from "node:zlib";

import { GoDeflater, GoGzipWriter, createGoGzip } from "../../src/compression/goflate";
import { crc32, crc32Table } from "../../src/compression/crc32";
import { goGzip, goGzipChunked, haveGo } from "../helpers/gogzip";

const LEVELS = [-2, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
const skip = haveGo() ? false : "Go toolchain not installed";

const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

/** Byte-exact comparison with a useful message: sizes, digests and the first differing offset. */
function assertSame(actual: Uint8Array, expected: Uint8Array, what: string): void {
  if (sha(actual) === sha(expected)) return;
  let i = 0;
  const n = Math.min(actual.length, expected.length);
  while (i < n && actual[i] === expected[i]) i++;
  assert.fail(
    `${what}: output differs from Go at byte ${i} (goflate ${actual.length} bytes sha256 ${sha(actual).slice(0, 16)}, ` +
      `Go ${expected.length} bytes sha256 ${sha(expected).slice(0, 16)})`,
  );
}

/** goflate gzip of `data`, written in pieces of `chunk` bytes (0 = one write). */
function tsGzip(data: Uint8Array, level: number, chunk = 0): Buffer {
  const w = new GoGzipWriter(level);
  const out: Uint8Array[] = [];
  const step = chunk > 0 ? chunk : Math.max(1, data.length);
  for (let o = 0; o < data.length; o += step) out.push(...w.write(data.subarray(o, o + step)));
  out.push(...w.close());
  return Buffer.concat(out);
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
  return parts.length > 0 ? Buffer.concat(parts) : Buffer.from(readFileSync(__filename));
}

function firstExisting(paths: string[]): Buffer {
  for (const p of paths) {
    const b = readIf(p);
    if (b !== null && b.length > 0) return b;
  }
  return readFileSync(process.execPath).subarray(0, 1 << 20);
}

/** A .gz from /usr/share/doc (already-compressed data), the largest under 1 MiB. */
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

function dirSize(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += dirSize(p);
    else if (e.isFile()) total += statSync(p).size;
  }
  return total;
}

/** GNU tar of one /usr/share/doc package directory of a few hundred KiB. */
function docTar(): Buffer {
  const root = "/usr/share/doc";
  for (const pkg of existsSync(root) ? readdirSync(root).sort() : []) {
    const dir = join(root, pkg);
    try {
      if (!statSync(dir).isDirectory()) continue;
      const size = dirSize(dir);
      if (size < 300_000 || size > 2_000_000) continue;
      return execFileSync("tar", ["cf", "-", "-C", root, pkg], { maxBuffer: 1 << 26 });
    } catch {
      // unreadable: try the next one
    }
  }
  return execFileSync("tar", ["cf", "-", "-C", LICENSES, "."], { maxBuffer: 1 << 26 });
}

/** Long runs and short periods: exercises maximal matches, distance 1 and the lazy/greedy skips. */
function repetitive(): Buffer {
  const text = licenseText().subarray(0, 4096);
  return Buffer.concat([
    Buffer.alloc(300_000, 0x61),
    Buffer.from("ab".repeat(100_000)),
    Buffer.alloc(70_000, 0),
    Buffer.concat(Array.from({ length: 40 }, () => text)),
    Buffer.from(Array.from({ length: 256 * 200 }, (_, i) => i & 0xff)),
  ]);
}

/** More than 8 MiB of real files: licenses and /usr/bin binaries, concatenated. */
function large(): Buffer {
  const parts: Buffer[] = [licenseText()];
  let total = parts[0]!.length;
  const bin = "/usr/bin";
  for (const name of existsSync(bin) ? readdirSync(bin).sort() : []) {
    const b = readIf(join(bin, name));
    if (b === null || b.length > 4 << 20) continue;
    parts.push(b);
    total += b.length;
    if (total > 8.5 * (1 << 20)) break;
  }
  while (total <= 8 << 20) {
    parts.push(parts[0]!);
    total += parts[0]!.length;
  }
  return Buffer.concat(parts);
}

const text = licenseText();
const inputs: Array<[string, () => Buffer]> = [
  ["empty", () => Buffer.alloc(0)],
  ["1 byte", () => text.subarray(0, 1)],
  ["GPL-3 text", () => readIf(join(LICENSES, "GPL-3")) ?? text],
  ["all license texts", () => text],
  ["/usr/bin/ls", () => firstExisting(["/usr/bin/ls", "/bin/ls"])],
  ["/usr/bin/bash", () => firstExisting(["/usr/bin/bash", "/bin/bash", "/usr/bin/tar"])],
  ["gzip-compressed doc", compressedFile],
  ["GNU tar of a doc directory", docTar],
  ["repetitive", repetitive],
];

describe("goflate: byte-identical to Go compress/gzip", { skip }, () => {
  for (const [name, get] of inputs) {
    it(name, () => {
      const data = get();
      for (const level of LEVELS) assertSame(tsGzip(data, level), goGzip(data, level), `${name}, level ${level}`);
    });
  }

  it("prefix lengths around the encoders' thresholds", () => {
    // 16/17 and 127/128: level 1's stored / Huffman-only / matched tail; 262: the lazy lookahead;
    // 65535/65536: store blocks and level 1 blocks; 98304 (3 * 32 KiB): a window slide.
    const src = Buffer.concat([text, firstExisting(["/usr/bin/ls", "/bin/ls"])]);
    const lengths = [2, 3, 4, 5, 16, 17, 18, 127, 128, 129, 261, 262, 263, 65535, 65536, 65537, 98304, 131071];
    for (const n of lengths) {
      const data = src.subarray(0, n);
      for (const level of LEVELS) assertSame(tsGzip(data, level), goGzip(data, level), `${n} bytes, level ${level}`);
    }
  });

  it("an input larger than 8 MiB", () => {
    const data = large();
    assert.ok(data.length > 8 << 20);
    for (const level of LEVELS) assertSame(tsGzip(data, level), goGzip(data, level), `large, level ${level}`);
  });

  it("more than 16 MiB: hash chain positions are renormalised", () => {
    // Levels 2-9 store chain positions offset by a counter that is reset after 16 MiB of input.
    const once = large();
    const data = Buffer.concat([once, once.subarray(0, 9 << 20)]);
    for (const level of [2, 6]) assertSame(tsGzip(data, level), goGzip(data, level), `> 16 MiB, level ${level}`);
  });
});

describe("goflate: how the input is split does not matter", { skip }, () => {
  const data = Buffer.concat([docTar().subarray(0, 150_000), repetitive().subarray(250_000, 400_000)]);
  const big = Buffer.concat([data, firstExisting(["/usr/bin/bash", "/bin/bash"]).subarray(0, 600_000)]);

  it("1-byte writes", () => {
    for (const level of LEVELS)
      assertSame(tsGzip(data, level, 1), goGzip(data, level), `1-byte writes, level ${level}`);
  });

  for (const chunk of [7, 65537]) {
    it(`${chunk}-byte writes`, () => {
      for (const level of LEVELS) {
        assertSame(tsGzip(big, level, chunk), goGzip(big, level), `${chunk}-byte writes, level ${level}`);
      }
    });
  }

  it("Go itself gives the same bytes for 1-, 7- and 65537-byte writes", () => {
    for (const level of LEVELS) {
      const whole = goGzip(data, level);
      for (const chunk of [1, 7, 65537]) {
        assertSame(
          goGzipChunked(data, { level, chunk, flush: false }),
          whole,
          `Go, ${chunk}-byte writes, level ${level}`,
        );
      }
    }
  });
});

describe("goflate: Flush, header fields, streams", { skip }, () => {
  const sample = Buffer.concat([
    text.subarray(0, 60_000),
    firstExisting(["/usr/bin/ls", "/bin/ls"]).subarray(0, 60_000),
  ]);
  const data = sample;

  // 10 and 100: level 1's stored and Huffman-only tails (which also reset its match history).
  for (const chunk of [10, 100, 1000, 70_000]) {
    it(`Flush after every ${chunk}-byte write matches Go's Flush`, () => {
      const data = chunk < 1000 ? sample.subarray(0, 30_000) : sample;
      for (const level of LEVELS) {
        const w = new GoGzipWriter(level);
        const out: Uint8Array[] = [];
        for (let o = 0; o < data.length; o += chunk) {
          out.push(...w.write(data.subarray(o, o + chunk)));
          out.push(...w.flush());
        }
        out.push(...w.close());
        const expected = goGzipChunked(data, { level, chunk, flush: true });
        assertSame(Buffer.concat(out), expected, `flush every ${chunk}, level ${level}`);
      }
    });
  }

  it("flush() output is complete: everything written so far decodes", () => {
    const w = new GoGzipWriter(6);
    const out = [...w.write(data.subarray(0, 5000)), ...w.flush()];
    const partial = zlib.gunzipSync(Buffer.concat(out), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    assert.deepEqual(partial, data.subarray(0, 5000));
  });

  it("name, comment, extra and mtime are written like Go", () => {
    const extra = Uint8Array.of(0x41, 0x50, 4, 0, 1, 2, 3, 4);
    for (const level of [1, 6, 9]) {
      const header = { mtime: 1_700_000_000, name: "layer.tar", comment: "café", extra };
      const w = new GoGzipWriter(level, header);
      const got = Buffer.concat([...w.write(data), ...w.close()]);
      assertSame(
        got,
        goGzipChunked(data, { level, chunk: 1 << 20, flush: false, ...header }),
        `header, level ${level}`,
      );
    }
    const empty = new GoGzipWriter(6, { extra: new Uint8Array(0) });
    const got = Buffer.concat([...empty.write(data), ...empty.close()]);
    assertSame(
      got,
      goGzipChunked(data, { level: 6, chunk: 1 << 20, flush: false, extra: new Uint8Array(0) }),
      "empty extra",
    );
  });

  it("createGoGzip() as a stream", async () => {
    const out: Buffer[] = [];
    const source = Readable.from(
      (function* () {
        for (let o = 0; o < data.length; o += 3333) yield data.subarray(o, o + 3333);
      })(),
    );
    await pipeline(source, createGoGzip(6), async (s: AsyncIterable<Buffer>) => {
      for await (const c of s) out.push(c);
    });
    assertSame(Buffer.concat(out), goGzip(data, 6), "stream, level 6");
  });
});

describe("goflate: API", () => {
  it("rejects levels outside [-2, 9]", () => {
    assert.throws(() => new GoDeflater(10), RangeError);
    assert.throws(() => new GoDeflater(-3), RangeError);
    assert.throws(() => new GoGzipWriter(1.5), RangeError);
  });

  it("the table CRC-32 agrees with zlib's", () => {
    const sample = Buffer.concat([text.subarray(0, 10_000), Buffer.from([0, 255, 128])]);
    // zlib's own gzip trailer carries the CRC-32.
    const expected = zlib.gzipSync(sample).readUInt32LE(zlib.gzipSync(sample).length - 8);
    assert.equal(crc32Table(sample), expected);
    assert.equal(crc32(sample), expected);
    assert.equal(crc32Table(sample.subarray(5000), crc32Table(sample.subarray(0, 5000))), expected);
  });

  it("GoDeflater output inflates to the input at every level", () => {
    for (const level of LEVELS) {
      const d = new GoDeflater(level);
      const out = [...d.write(text), d.close()];
      assert.deepEqual(zlib.inflateRawSync(Buffer.concat(out)), text, `level ${level}`);
    }
  });
});
