import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { compressStream, XZ_BLOCK_BYTES } from "../../src/compression/codecs";
import { blocksFor, readXzIndex, syntheticStream } from "../../src/compression/xz-index";
import { scanTar } from "../../src/serve/xz-tree";

/** 20 MiB that compress (text with numbers in it), so three blocks of 8 MiB. */
const data = Buffer.from(
  Array.from({ length: 700_000 }, (_, i) => `line ${i} ${createHash("md5").update(String(i)).digest("hex")}\n`).join(
    "",
  ),
).subarray(0, 20 * 1024 * 1024);

async function compress(threads: number, native: boolean): Promise<Buffer> {
  const before = process.env.AIRPACK_XZ;
  if (native) process.env.AIRPACK_XZ = "native";
  try {
    return await buffer(Readable.from([data]).pipe(compressStream("xz", { level: 0, threads })));
  } finally {
    if (before === undefined) delete process.env.AIRPACK_XZ;
    else process.env.AIRPACK_XZ = before;
  }
}

/** Blocks as the real xz lists them: [compressed offset, uncompressed offset, uncompressed size]. */
function xzListed(file: string): number[][] {
  return execFileSync("xz", ["--robot", "-lvv", file], { encoding: "utf8" })
    .split("\n")
    .filter((l) => l.startsWith("block\t"))
    .map((l) => l.split("\t").map(Number))
    .map((f) => [f[4]!, f[5]!, f[7]!]);
}

describe("seekable xz", () => {
  const dir = mkdtempSync(join(tmpdir(), "airpack-xz-index-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const native of [false, true]) {
    const which = native ? "lzma-native" : "system xz";
    it(`pack's ${which} encoder writes ${XZ_BLOCK_BYTES} B blocks, the same bytes on 1 and 2 threads`, async () => {
      const one = await compress(1, native);
      const two = await compress(2, native);
      assert.ok(one.equals(two), "the bytes depend on the thread count");
      const file = join(dir, `${native ? "native" : "system"}.xz`);
      writeFileSync(file, one);
      const listed = xzListed(file);
      assert.deepEqual(
        listed.map((b) => b[2]),
        [XZ_BLOCK_BYTES, XZ_BLOCK_BYTES, data.length - 2 * XZ_BLOCK_BYTES],
      );
      const index = await readXzIndex(file, file);
      assert.deepEqual(
        index?.blocks.map((b) => [b.offset, b.start, b.size]),
        listed,
      );
    });
  }

  it("a block wrapped as a stream of its own decodes (real xz -dc) to its slice of the data", async () => {
    const file = join(dir, "system.xz");
    const index = (await readXzIndex(file, file))!;
    const [first, last] = blocksFor(index, XZ_BLOCK_BYTES + 5, XZ_BLOCK_BYTES + 10);
    assert.deepEqual([first, last], [1, 1]);
    const wrapped = await buffer(syntheticStream(file, index, 1, 2));
    const decoded = execFileSync("xz", ["-dc"], { input: wrapped, maxBuffer: 64 << 20 });
    assert.ok(decoded.equals(data.subarray(XZ_BLOCK_BYTES)));
  });

  it("a multi-stream file (xz of two files, concatenated) has no single index: undefined", async () => {
    const file = join(dir, "two.xz");
    writeFileSync(
      file,
      Buffer.concat([execFileSync("xz", ["-c"], { input: "a" }), execFileSync("xz", ["-c"], { input: "b" })]),
    );
    assert.equal(await readXzIndex(file, file), undefined);
  });

  it("scanning a GNU tar finds its entries' offsets; a hole marks the blob it falls in bad", async () => {
    const src = join(dir, "tree");
    const blob = Buffer.alloc(5000, 7);
    const hex = createHash("sha256").update(blob).digest("hex");
    execFileSync("mkdir", ["-p", join(src, "blobs", "sha256")]);
    writeFileSync(join(src, "blobs", "sha256", hex), blob);
    writeFileSync(join(src, "index.json"), "{}");
    const tar = execFileSync("tar", ["-cf", "-", "-C", src, "index.json", `blobs/sha256/${hex}`]);
    const good = await scanTar(Readable.from([tar]), "t");
    const [offset, size] = good.entries.get(`blobs/sha256/${hex}`)!;
    assert.ok(tar.subarray(offset, offset + size).equals(blob));
    assert.equal(good.bad.size, 0);
    assert.equal(good.kept.get("index.json")?.toString(), "{}");
    const holed = await scanTar(
      Readable.from([tar.subarray(0, offset + 100), 200, tar.subarray(offset + 300)], { objectMode: true }),
      "t",
    );
    assert.deepEqual([...holed.bad], [`sha256:${hex}`]);
    await assert.rejects(
      scanTar(Readable.from([tar.subarray(0, 512), 1024, tar.subarray(1536)], { objectMode: true }), "t"),
      /damaged xz block holds tar headers/,
    );
  });
});
