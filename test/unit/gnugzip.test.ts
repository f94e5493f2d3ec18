/**
 * gnugzip must reproduce GNU gzip's own deflate byte for byte. Every expected stream comes from the
 * real `gzip -n -c -N` CLI run on a regular file (header and trailer stripped), never from gnugzip.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { createGnuGzipDeflate } from "../../src/compression/gnugzip";
import * as inputs from "../helpers/deflate-inputs";

function haveGzip(): boolean {
  try {
    return execFileSync("gzip", ["--version"], { encoding: "utf8" }).startsWith("gzip 1.");
  } catch {
    return false;
  }
}
const skip = haveGzip() ? false : "gzip CLI not installed";

let dir = "";
let seq = 0;

/** Raw deflate body written by the gzip CLI for `data` (read from a regular file, like real use). */
function gzipBody(data: Uint8Array, level: number): Uint8Array {
  const file = join(dir, `in${seq++}`);
  writeFileSync(file, data);
  const gz = execFileSync("gzip", ["-n", "-c", `-${level}`, file], { maxBuffer: 1 << 30 });
  rmSync(file);
  assert.ok(gz.length >= 18 && gz[0] === 0x1f && gz[1] === 0x8b && gz[3] === 0, "unexpected gzip header");
  return gz.subarray(10, gz.length - 8);
}

function compress(data: Uint8Array, level: number, chunk = 0): Uint8Array {
  return inputs.deflateChunked((cb) => createGnuGzipDeflate(level, cb), data, chunk);
}

function assertSame(actual: Uint8Array, expected: Uint8Array, what: string): void {
  inputs.assertSameBytes(actual, expected, what, "gzip");
}

function check(name: string, data: Uint8Array, level: number, chunks: number[] = [0]): void {
  const expected = gzipBody(data, level);
  for (const c of chunks) {
    assertSame(compress(data, level, c), expected, `${name} -${level}${c ? ` chunk ${c}` : ""}`);
  }
}

const small: inputs.NamedInput[] = [];
const medium: inputs.NamedInput[] = [];
let data3m: Uint8Array = new Uint8Array(0);
let data20m: Uint8Array = new Uint8Array(0);

before(() => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), "gnugzip-"));
  small.push(...inputs.smallInputs());
  medium.push(...inputs.binaryInputs());
  for (const p of ["/usr/share/doc/gzip/changelog.gz", "/usr/share/doc/bash/CHANGES.gz"]) {
    if (existsSync(p)) medium.push([`${p} (incompressible)`, readFileSync(p)]);
  }
  if (existsSync("/usr/share/doc/bash")) {
    const tar = execFileSync("tar", ["--format=gnu", "-cf", "-", "-C", "/usr/share/doc", "bash"], {
      maxBuffer: 1 << 28,
    });
    medium.push(["GNU tar of /usr/share/doc/bash", tar]);
  }
  // Synthetic edge cases: long runs (258-byte matches), window-boundary sizes, random data.
  const lic = Buffer.concat(small.slice(3).map(([, b]) => b));
  medium.push(["zeros 300k", Buffer.alloc(300000)], ["random 70000", inputs.lcgBytes(inputs.lcg(0x12345678), 70000)]);
  medium.push(...inputs.windowBoundaryCuts(lic));
  data3m = inputs.realData("/usr/lib/x86_64-linux-gnu", 3_000_000);
  data20m = inputs.realData("/usr/lib/x86_64-linux-gnu", 20_000_000);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

for (const level of [6, 9, 1]) {
  describe(`gnugzip -${level}`, { skip }, () => {
    it("small inputs and licenses", () => {
      for (const [name, data] of small) check(name, data, level, [0, 1, 7]);
    });
    it("binaries, .gz, tar and edge cases", () => {
      for (const [name, data] of medium) check(name, data, level, [0, 4093]);
    });
    it("~3 MB real data with odd chunk sizes", () => {
      check("3 MB", data3m, level, [0, 65537, 100003]);
    });
    if (level !== 9) {
      it("~20 MB real data (window sliding)", () => {
        check("20 MB", data20m, level);
      });
    }
  });
}

describe("gnugzip -2 … -8", { skip }, () => {
  for (const level of [2, 3, 4, 5, 7, 8]) {
    it(`level ${level}`, () => {
      for (const [name, data] of small) check(name, data, level);
      for (const [name, data] of medium) check(name, data, level);
      check("3 MB", data3m, level, [0, 30011]);
    });
  }
});

// The encoders share one set of window/hash arrays per thread and park each other's copy (deflate.ts):
// several of them fed in turn, as identification does, must each still match gzip.
describe("gnugzip encoders used side by side", { skip }, () => {
  it("levels 1, 6 and 9 interleaved with odd chunk sizes, one feeding another from its output callback", () => {
    const levels = [1, 6, 9];
    const parts = levels.map(() => [] as Uint8Array[]);
    const echoed: Uint8Array[] = [];
    const echo = createGnuGzipDeflate(6, (b) => echoed.push(b));
    const encoders = levels.map((level, i) =>
      createGnuGzipDeflate(level, (b) => {
        parts[i]!.push(b);
        if (i === 0) echo.write(b); // an output callback that drives another encoder
      }),
    );
    const sizes = [4093, 1, 65536, 777, 30011];
    const offsets = levels.map(() => 0);
    for (let k = 0; offsets.some((o) => o < data3m.length); k++) {
      encoders.forEach((e, i) => {
        const n = sizes[(k + i) % sizes.length]!;
        e.write(data3m.subarray(offsets[i]!, Math.min(offsets[i]! + n, data3m.length)));
        offsets[i] = Math.min(offsets[i]! + n, data3m.length);
      });
    }
    encoders.forEach((e) => e.end());
    echo.end();
    levels.forEach((level, i) =>
      assertSame(Buffer.concat(parts[i]!), gzipBody(data3m, level), `interleaved -${level}`),
    );
    assertSame(Buffer.concat(echoed), gzipBody(Buffer.concat(parts[0]!), 6), "fed from a callback");
  });
});

describe("gnugzip API", () => {
  it("rejects levels outside 1..9", () => {
    assert.throws(() => createGnuGzipDeflate(0, () => undefined), RangeError);
    assert.throws(() => createGnuGzipDeflate(10, () => undefined), RangeError);
  });
});
