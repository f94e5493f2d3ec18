/**
 * The zlib encoder must reproduce vanilla zlib 1.2.x raw deflate byte for byte. Every expected stream
 * comes from Python's zlib module (compressobj(level, DEFLATED, -15, 8), whole input in one
 * compress() call, then flush()), never from our encoder or pako.
 */
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, lstatSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

import { createZlibDeflate } from "../../src/compression/zlib";

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
  const parts: Uint8Array[] = [];
  const d = createZlibDeflate(level, (b) => parts.push(b));
  if (chunk <= 0) d.write(data);
  else for (let o = 0; o < data.length; o += chunk) d.write(data.subarray(o, Math.min(o + chunk, data.length)));
  d.end();
  return Buffer.concat(parts);
}

function assertSame(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const n = Math.min(actual.length, expected.length);
  let i = 0;
  while (i < n && actual[i] === expected[i]) i++;
  if (i === n && actual.length === expected.length) return;
  assert.fail(`${what}: differs from zlib at byte ${i} (ours ${actual.length} bytes, zlib ${expected.length} bytes)`);
}

function check(name: string, data: Uint8Array, levels: number[], chunks: number[] = [0]): void {
  const expected = zlibBodies(data, levels);
  for (const level of levels) {
    for (const c of chunks) {
      assertSame(compress(data, level, c), expected.get(level) as Buffer, `${name} -${level}${c ? ` chunk ${c}` : ""}`);
    }
  }
}

/** Concatenation of real files below `root` (sorted walk) up to `size` bytes. */
function realData(root: string, size: number, filter: (name: string) => boolean = () => true): Uint8Array {
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

const small: Array<[string, Uint8Array]> = [];
const medium: Array<[string, Uint8Array]> = [];
let data3m: Uint8Array = new Uint8Array(0);
let big: Uint8Array = new Uint8Array(0);

before(() => {
  if (skip) return;
  const text = Buffer.from("The quick brown fox jumps over the lazy dog.\n".repeat(40) + "fin\n");
  small.push(["empty", new Uint8Array(0)], ["1 byte", Buffer.from("x")], ["small text", text]);
  const licenses = "/usr/share/common-licenses";
  if (existsSync(licenses)) {
    for (const n of readdirSync(licenses).sort()) {
      const p = join(licenses, n);
      if (lstatSync(p).isFile()) small.push([p, readFileSync(p)]);
    }
  }
  for (const p of ["/usr/bin/bash", "/usr/bin/ls"]) if (existsSync(p)) medium.push([p, readFileSync(p)]);
  const gz = realData("/usr/share/doc", 1_500_000, (n) => n.endsWith(".gz"));
  if (gz.length > 0) medium.push([".gz files from /usr/share/doc (incompressible)", gz]);
  const docs = realData("/usr/share/doc", 2_000_000, (n) => !n.endsWith(".gz"));
  if (docs.length > 0) medium.push(["text from /usr/share/doc", docs]);
  // Synthetic edge cases: long runs (258-byte matches, max chain), short periods, random, window boundaries.
  let rnd = 0x12345678;
  const random = Buffer.alloc(70000);
  for (let i = 0; i < random.length; i++) {
    rnd = (Math.imul(rnd, 1103515245) + 12345) >>> 0;
    random[i] = rnd >>> 24;
  }
  const lowAlphabet = Buffer.alloc(200000);
  for (let i = 0; i < lowAlphabet.length; i++) {
    rnd = (Math.imul(rnd, 1103515245) + 12345) >>> 0;
    lowAlphabet[i] = 97 + (rnd >>> 29);
  }
  medium.push(
    ["zeros 300k", Buffer.alloc(300000)],
    ["pattern abcab", Buffer.from("abcab".repeat(60000) + "xyz".repeat(1000))],
    ["random 70000", random],
    ["8-letter random text 200k", lowAlphabet],
  );
  const lic = Buffer.concat(small.slice(3).map(([, b]) => b));
  if (lic.length > 65537) {
    for (const n of [262, 32769, 65274, 65534, 65535, 65536, 65537]) medium.push([`text ${n}`, lic.subarray(0, n)]);
  }
  data3m = realData("/usr/lib/x86_64-linux-gnu", 3_000_000);
  big = existsSync("/tmp/s50.tar") ? readFileSync("/tmp/s50.tar") : realData("/usr/lib/x86_64-linux-gnu", 24_000_000);
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
    let r = 7;
    const d = Buffer.alloc(65274 + 400);
    for (let i = 0; i < d.length; i++) {
      r = (Math.imul(r, 1103515245) + 12345) >>> 0;
      d[i] = 97 + (r >>> 28);
    }
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
    let r = 1;
    const noise = Buffer.alloc(100_000);
    for (let i = 0; i < 40; i++) {
      for (let j = 0; j < noise.length; j++) noise[j] = (r = (Math.imul(r, 1103515245) + 12345) >>> 0) >>> 24;
      d.write(noise);
    }
    d.end();
    assert.ok(parts.length > 1);
    const buffers = new Set(parts.map((p) => p.buffer));
    assert.equal(buffers.size, parts.length);
  });
});
