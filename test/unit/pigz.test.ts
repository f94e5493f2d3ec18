/**
 * src/compression/pigz must reproduce the deflate body of pigz 2.6 byte for byte. Every
 * expected stream comes from the real `pigz -n -L` CLI (header and trailer stripped), never
 * from the code under test.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { inflateRawSync } from "node:zlib";

import { PIGZ_BLOCK_SIZE, createPigzDeflate } from "../../src/compression/pigz";

const B = PIGZ_BLOCK_SIZE;

function havePigz(): boolean {
  try {
    execFileSync("pigz", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
const skip = havePigz() ? false : "pigz not installed";

const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex").slice(0, 16);

/** The raw deflate body pigz writes for `data` (`-n`, level, extra args such as `-p 2`). */
function pigzBody(data: Uint8Array, level: number, args: string[]): Buffer {
  const gz = execFileSync("pigz", ["-n", `-${level}`, ...args, "-c"], { input: data, maxBuffer: 1 << 28 });
  assert.ok(gz.length >= 18 && gz[0] === 0x1f && gz[1] === 0x8b && gz[3] === 0, "pigz wrote an unexpected header");
  return gz.subarray(10, gz.length - 8);
}

function ourBody(data: Uint8Array, level: number, threads: number, chunk = 0): Buffer {
  const parts: Uint8Array[] = [];
  const enc = createPigzDeflate(level, (o) => parts.push(o), { threads });
  const step = chunk > 0 ? chunk : Math.max(1, data.length);
  for (let o = 0; o < data.length; o += step) enc.write(data.subarray(o, o + step));
  enc.end();
  return Buffer.concat(parts);
}

function assertSame(actual: Uint8Array, expected: Uint8Array, what: string): void {
  if (Buffer.compare(actual, expected) === 0) return;
  let i = 0;
  const n = Math.min(actual.length, expected.length);
  while (i < n && actual[i] === expected[i]) i++;
  assert.fail(
    `${what}: body differs from pigz at byte ${i} (ours ${actual.length} bytes sha256 ${sha(actual)}, ` +
      `pigz ${expected.length} bytes sha256 ${sha(expected)})`,
  );
}

// ------------------------------------------------------------------ inputs (real files)

function readIf(path: string): Buffer | null {
  try {
    return statSync(path).isFile() ? readFileSync(path) : null;
  } catch {
    return null;
  }
}

const LICENSES = "/usr/share/common-licenses";

function licenses(): Buffer[] {
  const names = existsSync(LICENSES) ? readdirSync(LICENSES).sort() : [];
  return names.map((n) => readIf(join(LICENSES, n))).filter((b): b is Buffer => b !== null);
}

/** Regular files in /usr/bin between `min` and `max` bytes, sorted by name. */
function binaries(min: number, max: number): Buffer[] {
  const out: Buffer[] = [];
  for (const n of readdirSync("/usr/bin").sort()) {
    try {
      const st = statSync(join("/usr/bin", n));
      if (st.isFile() && st.size >= min && st.size <= max) out.push(readFileSync(join("/usr/bin", n)));
    } catch {
      // unreadable or dangling: skip
    }
  }
  return out;
}

function bashDocTar(): Buffer {
  return execFileSync("tar", ["--format=gnu", "-cf", "-", "-C", "/usr/share/doc", "bash"], { maxBuffer: 1 << 26 });
}

/** About 3 MB of real, mixed data: /usr/bin files concatenated. */
function threeMegabytes(): Buffer {
  const parts: Buffer[] = [];
  let n = 0;
  for (const b of binaries(20000, 1 << 20)) {
    if (n >= 3_000_000) break;
    parts.push(b);
    n += b.length;
  }
  return Buffer.concat(parts).subarray(0, 3_000_000);
}

interface Input {
  name: string;
  data: Buffer;
}

const inputs: Input[] = (() => {
  const list: Input[] = [
    { name: "empty", data: Buffer.alloc(0) },
    { name: "small text", data: Buffer.from("Hello, pigz! Hello, pigz! Hello, airpack.\n") },
  ];
  const lic = licenses();
  if (lic.length > 0) {
    list.push({ name: "one license", data: lic[lic.length - 1] });
    list.push({ name: "all licenses", data: Buffer.concat(lic) });
  }
  const bins = binaries(B + 1, 1 << 20).slice(0, 2);
  bins.forEach((b, i) => list.push({ name: `/usr/bin binary #${i} (${b.length} bytes)`, data: b }));
  list.push({ name: "GNU tar of /usr/share/doc/bash", data: bashDocTar() });
  const big = threeMegabytes();
  list.push({ name: "~3 MB of /usr/bin", data: big });
  // block-boundary edge cases
  list.push({ name: "exactly 2 blocks", data: big.subarray(0, 2 * B) });
  list.push({ name: "2 blocks + 1 byte", data: big.subarray(0, 2 * B + 1) });
  list.push({ name: "zeros, 3 blocks", data: Buffer.alloc(3 * B + 100) });
  return list;
})();

const bigOnes = (l: Input[]): Input[] => l.filter((i) => i.data.length > 400_000);

// ------------------------------------------------------------------ tests

describe("pigz deflate body", { skip }, () => {
  for (const level of [6, 1, 9]) {
    describe(`level ${level}`, () => {
      for (const input of inputs) {
        it(`${input.name}: default threads and -p 2`, () => {
          const ours = ourBody(input.data, level, 2);
          assertSame(ours, pigzBody(input.data, level, []), `${input.name} L${level} default`);
          assertSame(ours, pigzBody(input.data, level, ["-p", "2"]), `${input.name} L${level} -p 2`);
          assert.equal(Buffer.compare(inflateRawSync(ours), input.data), 0, "round trip");
        });
      }
      it("odd chunk sizes give identical output", () => {
        for (const input of inputs.filter(
          (i) => i.name === "GNU tar of /usr/share/doc/bash" || i.name === "2 blocks + 1 byte",
        )) {
          const expected = pigzBody(input.data, level, ["-p", "2"]);
          for (const chunk of [1, 4093, B - 1, B + 1]) {
            if (chunk === 1 && input.data.length > 300_000) continue;
            assertSame(ourBody(input.data, level, 2, chunk), expected, `${input.name} L${level} chunk ${chunk}`);
          }
        }
      });
      it("single-threaded path (-p 1)", () => {
        for (const input of [...inputs.slice(0, 3), ...bigOnes(inputs).slice(0, 2)]) {
          const ours = ourBody(input.data, level, 1, 7777);
          assertSame(ours, pigzBody(input.data, level, ["-p", "1"]), `${input.name} L${level} -p 1`);
        }
      });
    });
  }

  describe("levels 2-5, 7, 8", () => {
    const some = inputs.filter((i) => i.name.startsWith("GNU tar") || i.name.startsWith("~3 MB"));
    for (const level of [2, 3, 4, 5, 7, 8]) {
      it(`level ${level}`, () => {
        for (const input of some) {
          assertSame(
            ourBody(input.data, level, 2),
            pigzBody(input.data, level, ["-p", "2"]),
            `${input.name} L${level}`,
          );
          assertSame(
            ourBody(input.data, level, 1),
            pigzBody(input.data, level, ["-p", "1"]),
            `${input.name} L${level} -p 1`,
          );
        }
      });
    }
  });

  // Why identification tries pigz-p1 candidates only at levels 1-3 (src/recipes/encoders.ts).
  it("real pigz -p 1 writes the threaded bytes at levels 4-9, not always at 1-3", () => {
    const some = [...inputs.filter((i) => i.name.startsWith("GNU tar")), ...bigOnes(inputs).slice(0, 1)];
    let differs = 0;
    for (const input of some) {
      for (let level = 1; level <= 9; level++) {
        const same = Buffer.compare(pigzBody(input.data, level, ["-p", "1"]), pigzBody(input.data, level, ["-p", "2"]));
        if (level >= 4) assert.equal(same, 0, `${input.name} L${level}: -p 1 differs from -p 2`);
        else if (same !== 0) differs++;
      }
    }
    assert.ok(differs > 0, "-p 1 matched -p 2 at levels 1-3 on every input: the extra candidates may be redundant");
  });

  it("rejects a block size below 32 KiB and unsupported levels", () => {
    assert.throws(() => createPigzDeflate(6, () => undefined, { blockSize: 16384 }), RangeError);
    assert.throws(() => createPigzDeflate(0, () => undefined), RangeError);
    assert.throws(() => createPigzDeflate(11, () => undefined), RangeError);
  });

  it("honours -b (block size)", () => {
    const data = inputs.find((i) => i.name.startsWith("GNU tar"))?.data ?? Buffer.alloc(0);
    for (const kib of [32, 64]) {
      const parts: Uint8Array[] = [];
      const enc = createPigzDeflate(6, (o) => parts.push(o), { blockSize: kib * 1024 });
      enc.write(data);
      enc.end();
      assertSame(Buffer.concat(parts), pigzBody(data, 6, ["-p", "2", "-b", String(kib)]), `-b ${kib}`);
    }
  });
});
