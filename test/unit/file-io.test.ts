/**
 * The file I/O under pack: block writers (direct where the filesystem allows it, with a page-cache
 * fallback), the hash thread, direct read-ahead, and tar headers. Expected bytes and digests come
 * from an independent computation (node:crypto over the same bytes, plain fs reads, tar-stream's
 * own header encoder, GNU tar's listing).
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import { constants } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import * as tarStream from "tar-stream";
import { BlockWriteStream, FileTarget, FileWriteStream } from "../../src/util/file-writer";
import { WRITE_BLOCK } from "../../src/util/block-pool";
import { HashThread } from "../../src/util/hash-thread";
import { ReadAheadStream } from "../../src/util/read-ahead";
import { tarHeader } from "../../src/bundle/tar-header";

const sha256hex = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

/** A stream of `data` in pieces of odd sizes, so block edges fall inside chunks. */
function chunked(data: Buffer): Readable {
  const pieces: Buffer[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const n = [1, 4095, 65536, 333_333, 1 << 20][i % 5]!;
    pieces.push(data.subarray(at, at + n));
    at += n;
  }
  return Readable.from(pieces);
}

const SIZES = [
  0,
  1,
  511,
  512,
  4095,
  4096,
  4097,
  WRITE_BLOCK - 1,
  WRITE_BLOCK,
  WRITE_BLOCK + 1,
  3 * WRITE_BLOCK + 12345,
];

describe("FileWriteStream", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "airpack-fileio-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const direct of [true, false]) {
    it(`writes exact bytes and sizes (${direct ? "direct" : "page cache"})`, async () => {
      for (const size of SIZES) {
        const data = randomBytes(size);
        const path = join(dir, `f-${direct}-${size}`);
        await pipeline(chunked(data), new FileWriteStream(path, { flags: "wx", direct }));
        const back = await readFile(path);
        assert.equal(back.length, size, `size ${size}`);
        assert.ok(back.equals(data), `bytes of size ${size}`);
      }
    });
  }

  it("refuses to overwrite with flags wx, and replaces with w", async () => {
    const path = join(dir, "exists");
    await writeFile(path, "old content that is longer");
    await assert.rejects(pipeline(Readable.from([Buffer.from("x")]), new FileWriteStream(path, { flags: "wx" })), {
      code: "EEXIST",
    });
    await pipeline(Readable.from([Buffer.from("new")]), new FileWriteStream(path, { flags: "w" }));
    assert.equal(await readFile(path, "utf8"), "new");
  });

  it("goes on through the page cache when a direct write is refused", async () => {
    // An unaligned write is what O_DIRECT refuses (EINVAL) on ext4 and most filesystems; some
    // filesystems refuse aligned ones too. Either way the bytes must land.
    const path = join(dir, "fallback");
    const target = await FileTarget.open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644, true);
    const wasDirect = target.direct;
    const data = randomBytes(1000);
    await target.write(data, data.length, 100);
    await target.write(data, 10, 5000);
    await target.close();
    const back = await readFile(path);
    assert.ok(back.subarray(100, 1100).equals(data));
    assert.ok(back.subarray(5000, 5010).equals(data.subarray(0, 10)));
    const fsType = spawnSync("stat", ["-f", "-c", "%T", dir], { encoding: "utf8" }).stdout.trim();
    if (wasDirect && fsType !== "tmpfs") assert.equal(target.direct, false, `${fsType} took an unaligned direct write`);
  });

  it("hashes on the hash thread: the digest of the bytes, and a mismatch or a size error fails it", async () => {
    const thread = new HashThread();
    try {
      for (const size of [0, 5, WRITE_BLOCK, 2 * WRITE_BLOCK + 99]) {
        const data = randomBytes(size);
        const file = new FileWriteStream(join(dir, `h-${size}`), {
          flags: "wx",
          hashThread: thread,
          expect: { size, digest: `sha256:${sha256hex(data)}` },
          errorLabel: "blob",
        });
        await pipeline(chunked(data), file);
        assert.equal(file.sha256, `sha256:${sha256hex(data)}`);
      }
      const data = randomBytes(100_000);
      const wrong = `sha256:${sha256hex(Buffer.from("other"))}`;
      await assert.rejects(
        pipeline(
          chunked(data),
          new FileWriteStream(join(dir, "bad-digest"), {
            flags: "wx",
            hashThread: thread,
            expect: { size: data.length, digest: wrong },
            errorLabel: "layer X",
          }),
        ),
        /layer X: digest mismatch/,
      );
      await assert.rejects(
        pipeline(
          chunked(data),
          new FileWriteStream(join(dir, "too-long"), { flags: "wx", expect: { size: 1000 }, errorLabel: "layer Y" }),
        ),
        /layer Y: size mismatch \(expected 1000 bytes/,
      );
      await assert.rejects(
        pipeline(
          chunked(data),
          new FileWriteStream(join(dir, "too-short"), {
            flags: "wx",
            expect: { size: 200_000 },
            errorLabel: "layer Z",
          }),
        ),
        /layer Z: size mismatch \(expected 200000 bytes, got 100000\)/,
      );
    } finally {
      await thread.close();
    }
  });

  it("writes spots of a shared file side by side, each ending like tar data (zero padding to 512)", async () => {
    const path = join(dir, "spots");
    const target = await FileTarget.open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644, true);
    const pieces = [randomBytes(WRITE_BLOCK + 3), randomBytes(700), randomBytes(5 * 512)];
    const starts = [0, WRITE_BLOCK + 512, WRITE_BLOCK + 512 + 1024];
    const total = starts[2]! + pieces[2]!.length;
    await target.truncate(total);
    await Promise.all(
      pieces.map((data, i) =>
        pipeline(
          chunked(data),
          new BlockWriteStream(target, { start: starts[i]!, end: "tar", expect: { size: data.length } }),
        ),
      ),
    );
    await target.close();
    const back = await readFile(path);
    assert.equal(back.length, total);
    pieces.forEach((data, i) => {
      assert.ok(back.subarray(starts[i]!, starts[i]! + data.length).equals(data), `spot ${i}`);
    });
    assert.ok(
      back.subarray(WRITE_BLOCK + 3, WRITE_BLOCK + 512).every((b) => b === 0),
      "padding after spot 0",
    );
  });

  it("mirrors every block to a second spot (a download into the store and the bundle at once)", async () => {
    const bundlePath = join(dir, "mirror-bundle");
    const target = await FileTarget.open(bundlePath, constants.O_WRONLY | constants.O_CREAT, 0o644, true);
    await target.truncate(1024 + 3 * WRITE_BLOCK);
    const data = randomBytes(2 * WRITE_BLOCK + 4321);
    const storePath = join(dir, "mirror-store");
    await pipeline(chunked(data), new FileWriteStream(storePath, { flags: "wx", mirror: { target, start: 1024 } }));
    await target.close();
    assert.ok((await readFile(storePath)).equals(data));
    const bundle = await readFile(bundlePath);
    assert.ok(bundle.subarray(1024, 1024 + data.length).equals(data));
  });
});

describe("ReadAheadStream (direct)", () => {
  it("reads the same bytes as a plain read, for unaligned ranges too", async () => {
    const dir = await mkdtemp(join(tmpdir(), "airpack-readahead-"));
    try {
      const data = randomBytes(3 * (1 << 20) + 1234);
      const path = join(dir, "f");
      await writeFile(path, data);
      const ranges: [number, number][] = [
        [0, data.length],
        [1, data.length - 1],
        [4095, 4097],
        [5000, 5000 + (1 << 20) + 3],
        [data.length - 10, data.length + 500],
        [data.length + 4096, data.length + 8192],
      ];
      for (const [start, end] of ranges) {
        const got: Buffer[] = [];
        for await (const chunk of new ReadAheadStream(path, start, end, { direct: true })) got.push(chunk as Buffer);
        assert.ok(Buffer.concat(got).equals(data.subarray(start, end)), `range ${start}-${end}`);
      }
      const whole: Buffer[] = [];
      for await (const chunk of new ReadAheadStream(path, 0, undefined, { direct: true })) whole.push(chunk as Buffer);
      assert.ok(Buffer.concat(whole).equals(data));
      assert.equal((await stat(path)).size, data.length);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("tarHeader", () => {
  const mtime = new Date(1_700_000_000_000);
  const cases = [
    { name: "oci-layout", type: "file" as const, size: 30, mode: 0o644 },
    { name: "blobs/", type: "directory" as const, size: 0, mode: 0o755 },
    { name: "blobs/sha256/", type: "directory" as const, size: 0, mode: 0o755 },
    { name: `blobs/sha256/${"ab".repeat(32)}`, type: "file" as const, size: 123_456_789, mode: 0o644 },
    { name: "big", type: "file" as const, size: 9 * 1024 ** 3, mode: 0o644 },
  ];

  it("writes what tar-stream's pack writes for the same entry", async () => {
    for (const c of cases) {
      const pack = tarStream.pack();
      const chunks: Buffer[] = [];
      pack.on("data", (d: unknown) => chunks.push(d as Buffer));
      pack.entry({ name: c.name, type: c.type, size: c.size, mode: c.mode, mtime });
      // The header is pushed first; the entry's data is never written here, so stop after it.
      await new Promise((resolve) => setImmediate(resolve));
      const theirs = Buffer.concat(chunks).subarray(0, 512);
      assert.ok(tarHeader({ ...c, mtime }).equals(theirs), `header of ${c.name}`);
      pack.destroy();
    }
  });

  it("is read back by GNU tar", async (t) => {
    if (spawnSync("tar", ["--version"]).status !== 0) return t.skip("GNU tar not found");
    const parts: Buffer[] = [];
    for (const c of cases.slice(0, 4)) {
      const size = c.type === "file" ? 5 : 0;
      parts.push(tarHeader({ ...c, size, mtime }));
      if (size) parts.push(Buffer.concat([Buffer.from("hello"), Buffer.alloc(507)]));
    }
    parts.push(Buffer.alloc(1024));
    const out = spawnSync("tar", ["-tvf", "-"], { input: Buffer.concat(parts), encoding: "utf8" });
    assert.equal(out.status, 0, out.stderr);
    const lines = out.stdout.trim().split("\n");
    assert.equal(lines.length, 4);
    assert.match(lines[0]!, /^-rw-r--r-- 0\/0\s+5 2023-11-14 \d\d:13 oci-layout$/);
    assert.match(lines[1]!, /^drwxr-xr-x 0\/0\s+0 .* blobs\/$/);
    assert.match(lines[3]!, new RegExp(`blobs/sha256/${"ab".repeat(32)}$`));
  });
});
