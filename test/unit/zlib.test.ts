/**
 * The zlib encoder must reproduce vanilla zlib 1.2.x raw deflate byte for byte. Every expected stream
 * comes from Python's zlib module (compressobj(level, DEFLATED, -15, 8), whole input in one
 * compress() call, then flush()), never from our encoder or pako.
 */
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";

import { createZlibDeflate } from "../../src/compression/zlib";
import * as inputs from "../helpers/deflate-inputs";

const PY = `
import sys, zlib
data = sys.stdin.buffer.read()
for lv in sys.argv[1].split(","):
    c = zlib.compressobj(int(lv), zlib.DEFLATED, -15, 8)
    if len(sys.argv) > 2:
        n = int(sys.argv[2])
        out = b"".join(c.compress(data[i:i + n]) for i in range(0, len(data), n)) + c.flush()
    else:
        out = c.compress(data) + c.flush()
    sys.stdout.buffer.write(len(out).to_bytes(4, "big") + out)
`;

function havePython(): boolean {
  try {
    return execFileSync("python3", ["-c", "import zlib; print(zlib.ZLIB_RUNTIME_VERSION)"], { encoding: "utf8" })
      .trim()
      .startsWith("1.2.");
  } catch {
    return false;
  }
}
const skip = havePython() ? false : "python3 with zlib 1.2.x not available";

const ALL_LEVELS = [1, 2, 3, 4, 5, 6, 7, 8, 9];

/** Raw deflate streams from Python's zlib for each level; `pyChunk` feeds compress() in pieces. */
function zlibBodies(data: Uint8Array, levels: number[], pyChunk = 0): Map<number, Buffer> {
  const args = ["-c", PY, levels.join(",")];
  if (pyChunk > 0) args.push(String(pyChunk));
  const out = execFileSync("python3", args, { input: data, maxBuffer: 1 << 30 });
  const res = new Map<number, Buffer>();
  let p = 0;
  for (const level of levels) {
    const n = out.readUInt32BE(p);
    res.set(level, out.subarray(p + 4, p + 4 + n));
    p += 4 + n;
  }
  assert.equal(p, out.length, "unexpected python output");
  return res;
}

function compress(data: Uint8Array, level: number, chunk = 0): Buffer {
  return inputs.deflateChunked((cb) => createZlibDeflate(level, cb), data, chunk);
}

function assertSame(actual: Uint8Array, expected: Uint8Array, what: string): void {
  inputs.assertSameBytes(actual, expected, what, "zlib");
}

function check(name: string, data: Uint8Array, levels: number[], chunks: number[] = [0]): void {
  const expected = zlibBodies(data, levels);
  for (const level of levels) {
    for (const c of chunks) {
      assertSame(compress(data, level, c), expected.get(level) as Buffer, `${name} -${level}${c ? ` chunk ${c}` : ""}`);
    }
  }
}

const small: inputs.NamedInput[] = [];
const medium: inputs.NamedInput[] = [];
let data3m: Uint8Array = new Uint8Array(0);
let big: Uint8Array = new Uint8Array(0);

before(() => {
  if (skip) return;
  small.push(...inputs.smallInputs());
  medium.push(...inputs.binaryInputs());
  const gz = inputs.realData("/usr/share/doc", 1_500_000, (n) => n.endsWith(".gz"));
  if (gz.length > 0) medium.push([".gz files from /usr/share/doc (incompressible)", gz]);
  const docs = inputs.realData("/usr/share/doc", 2_000_000, (n) => !n.endsWith(".gz"));
  if (docs.length > 0) medium.push(["text from /usr/share/doc", docs]);
  // Synthetic edge cases: long runs (258-byte matches, max chain), short periods, random, window boundaries.
  const next = inputs.lcg(0x12345678);
  medium.push(
    ["zeros 300k", Buffer.alloc(300000)],
    ["pattern abcab", Buffer.from("abcab".repeat(60000) + "xyz".repeat(1000))],
    ["random 70000", inputs.lcgBytes(next, 70000)],
    ["8-letter random text 200k", inputs.lcgBytes(next, 200000, (r) => 97 + (r >>> 29))],
  );
  medium.push(...inputs.windowBoundaryCuts(Buffer.concat(small.slice(3).map(([, b]) => b))));
  data3m = inputs.realData("/usr/lib/x86_64-linux-gnu", 3_000_000);
  big = existsSync("/tmp/s50.tar")
    ? readFileSync("/tmp/s50.tar")
    : inputs.realData("/usr/lib/x86_64-linux-gnu", 24_000_000);
});

describe("zlib raw deflate vs Python zlib", { skip }, () => {
  it("small inputs and licenses, levels 1-9, 1/7-byte writes", () => {
    for (const [name, data] of small) check(name, data, ALL_LEVELS, [0, 1, 7]);
  });
  it("binaries, .gz, text, synthetic edge cases, levels 1-9", () => {
    for (const [name, data] of medium) check(name, data, ALL_LEVELS, [0, 65536]);
  });
  it("7-byte writes across window slides", () => {
    const lic = Buffer.concat(small.slice(3).map(([, b]) => b));
    check("licenses", lic, [1, 4, 6, 9], [7]);
    check("3 MB prefix", data3m.subarray(0, 400_000), [3, 6, 8], [7]);
  });
  it("~3 MB real data with odd chunk sizes, levels 1-9", () => {
    check("3 MB", data3m, ALL_LEVELS, [0, 65536, 100003]);
  });
  it("> 20 MB real data at level 6 (many window slides and blocks)", () => {
    assert.ok(big.length > 20_000_000, "need more than 20 MB of input");
    check(`${big.length} bytes`, big, [6], [1 << 20]);
  });
  it("chain head at window offset 0: same output for any chunking", () => {
    // zlib itself can differ here when fed one byte per call (a window slide turns the head into NIL);
    // we always produce what a single deflate() call over the whole input produces.
    const d = inputs.lcgBytes(inputs.lcg(7), 65274 + 400, (r) => 97 + (r >>> 28));
    d.write("QWERTYUIOPASDFGHJKLZ", 32768, "latin1");
    d.write("QWERTYUIOPASDFGHJKLZ", 65274, "latin1");
    check("slide corner", d, [4, 6, 9], [0, 1, 7, 4096]);
    const pyBytewise = zlibBodies(d, [6], 1).get(6) as Buffer;
    assert.notDeepEqual(pyBytewise, zlibBodies(d, [6]).get(6), "zlib 1-byte feeding differs from one-shot here");
  });
});

describe("zlib API", () => {
  it("rejects levels outside 1..9 and writes after end", () => {
    assert.throws(() => createZlibDeflate(0, () => undefined), RangeError);
    assert.throws(() => createZlibDeflate(10, () => undefined), RangeError);
    const d = createZlibDeflate(6, () => undefined);
    d.end();
    assert.throws(() => d.write(Buffer.from("x")));
  });
  it("hands out fresh buffers", () => {
    const parts: Uint8Array[] = [];
    const d = createZlibDeflate(1, (b) => parts.push(b));
    const next = inputs.lcg(1);
    for (let i = 0; i < 40; i++) d.write(inputs.lcgBytes(next, 100_000));
    d.end();
    assert.ok(parts.length > 1);
    const buffers = new Set(parts.map((p) => p.buffer));
    assert.equal(buffers.size, parts.length);
  });
});
