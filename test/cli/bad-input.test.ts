/**
 * Every kind of bad input gets one clear line on stderr, a non-zero exit, and no output left
 * behind. Bundles are made by the real CLI from the fixtures, then damaged with test-side tools.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, writeFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { FIXTURES, runAirpack, pack } from "../helpers/cli";
import { makeTempDir, removeDir } from "../helpers/peers/temp";
import { fileItem, readTar, writeTar, type TarItem } from "../helpers/tar";

let dir: string;
let good: string;
let items: TarItem[];

function blobName(digestHex: string): string {
  return `blobs/sha256/${digestHex}`;
}

function sha256Hex(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** The single stderr line and exit code, asserting nothing was printed to stdout. */
async function expectFailure(args: string[], pattern: RegExp): Promise<string> {
  const r = await runAirpack(args);
  assert.equal(r.code, 1, `expected exit 1, got ${r.code}: ${r.stderr}`);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `expected one line, got:\n${r.stderr}`);
  assert.match(lines[0]!, pattern);
  return lines[0]!;
}

async function variant(name: string, mutate: (items: TarItem[]) => TarItem[]): Promise<string> {
  const file = join(dir, name);
  await writeTar(file, mutate(items.map((i) => ({ header: { ...i.header }, data: Buffer.from(i.data) }))));
  return file;
}

/** Unpack must fail and leave neither the output nor temp files in the output's directory. */
async function expectNoOutput(bundle: string, pattern: RegExp): Promise<void> {
  const outDir = join(dir, `out-${Math.random().toString(16).slice(2)}`);
  await mkdir(outDir);
  await expectFailure(["unpack", bundle, "-o", join(outDir, "x.tar")], pattern);
  await expectFailure(["unpack", bundle, "--format", "oci", "-o", join(outDir, "layout")], pattern);
  assert.deepEqual(await readdir(outDir), [], "unpack left files behind");
}

function firstLayer(list: TarItem[]): TarItem {
  // The largest blob is a layer in the fixture set.
  return list.filter((i) => i.header.name.startsWith("blobs/")).sort((a, b) => b.data.length - a.data.length)[0]!;
}

describe("bad input", () => {
  before(async () => {
    dir = await makeTempDir("airpack-bad-");
    good = join(dir, "good.tar");
    await pack([`oci:${join(FIXTURES, "oci")}:mixed`], good, join(dir, "cache"));
    items = await readTar(good);
    assert.ok(items.some((i) => i.header.name === "index.json"));
  });
  after(async () => {
    await removeDir(dir);
  });

  it("accepts the undamaged bundle", async () => {
    const r = await runAirpack(["verify", good]);
    assert.equal(r.code, 0, r.stderr);
  });

  it("rejects a truncated plain bundle", async () => {
    const data = await readFile(good);
    const file = join(dir, "truncated.tar");
    await writeFile(file, data.subarray(0, Math.floor(data.length * 0.6)));
    await expectFailure(["verify", file], /truncated|incomplete/);
    await expectNoOutput(file, /truncated|incomplete/);
  });

  it("rejects a truncated and a corrupted xz bundle", async () => {
    const xzFile = join(dir, "good.tar.xz");
    execFileSync("sh", ["-c", `xz -c -6 "${good}" > "${xzFile}"`]);
    const data = await readFile(xzFile);
    const truncated = join(dir, "truncated.tar.xz");
    await writeFile(truncated, data.subarray(0, data.length - 200));
    await expectFailure(["verify", truncated], /xz stream.*(Unexpected end|truncated)/i);
    const corrupt = Buffer.from(data);
    for (let i = 200; i < 240; i++) corrupt[i] = corrupt[i]! ^ 0x5a;
    const corruptFile = join(dir, "corrupt.tar.xz");
    await writeFile(corruptFile, corrupt);
    await expectFailure(["verify", corruptFile], /corrupt xz stream/);
    await expectNoOutput(corruptFile, /corrupt xz stream/);
  });

  it("names a GNU sparse entry as such (GNU tar's own), and escapes control bytes in entry names", async () => {
    const sparseDir = join(dir, "sparse");
    await mkdir(sparseDir);
    const holey = join(sparseDir, "holey");
    await writeFile(holey, "");
    execFileSync("truncate", ["-s", "1M", holey]);
    await writeFile(holey, "x", { flag: "a" });
    const gnu = join(sparseDir, "s.tar");
    execFileSync("tar", ["--format=gnu", "--sparse", "-cf", gnu, "-C", sparseDir, "holey"]);
    const entry = (await readFile(gnu)).subarray(0, 1024); // its header and its one block of data
    assert.equal(String.fromCharCode(entry[156]!), "S", "GNU tar wrote a sparse entry");
    const file = join(dir, "sparse.tar");
    await writeFile(file, Buffer.concat([entry, await readFile(good)]));
    await expectFailure(["verify", file], /entry "holey" is a GNU sparse file.*not supported/);
    // A directory entry with data, named with ESC and CR: the name is quoted, escaped.
    const header = Buffer.from(entry.subarray(0, 512));
    header.fill(0, 0, 100);
    header.write("d\x1b[31m\r/", 0, "latin1");
    header[156] = "5".charCodeAt(0);
    header.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of header) sum += b;
    header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
    const named = join(dir, "named.tar");
    await writeFile(named, Buffer.concat([header, Buffer.alloc(512), await readFile(good)]));
    const line = await expectFailure(["verify", named], /directory entry "d\\x1b\[31m\\r\/" declares/);
    assert.ok(![...line].some((c) => c.charCodeAt(0) < 0x20), "no control bytes in the line");
  });

  it("rejects random bytes and an empty file", async () => {
    const file = join(dir, "random.bin");
    await writeFile(file, createHash("sha512").update("seed").digest().toString("hex").repeat(300));
    await expectFailure(["verify", file], /not a bundle/);
    const empty = join(dir, "empty.tar");
    await writeFile(empty, "");
    await expectFailure(["verify", empty], /empty input/);
  });

  it("names a blob whose bytes do not match its digest", async () => {
    let victim = "";
    const file = await variant("flipped.tar", (list) => {
      const layer = firstLayer(list);
      victim = layer.header.name.slice("blobs/sha256/".length);
      layer.data[100] = layer.data[100]! ^ 0xff;
      return list;
    });
    const line = await expectFailure(["verify", file], /digest mismatch/);
    assert.ok(line.includes(victim.slice(0, 12)), `error should name the blob ${victim}: ${line}`);
    await expectNoOutput(file, /digest mismatch/);
  });

  it("rejects a blob whose size does not match its descriptor", async () => {
    const file = await variant("grown.tar", (list) => {
      const layer = firstLayer(list);
      layer.data = Buffer.concat([layer.data, Buffer.from("extra")]);
      return list;
    });
    await expectFailure(["verify", file], /bytes in the tar but \d+ in its descriptor/);
  });

  it("rejects a manifest that references a missing blob", async () => {
    let missing = "";
    const file = await variant("missing.tar", (list) => {
      const layer = firstLayer(list);
      missing = layer.header.name.slice("blobs/sha256/".length);
      return list.filter((i) => i !== layer);
    });
    const line = await expectFailure(["verify", file], /not in the bundle/);
    assert.ok(line.includes(missing), line);
    await expectNoOutput(file, /not in the bundle/);
  });

  it("rejects a blob that nothing references", async () => {
    const stray = Buffer.from("stray blob");
    const file = await variant("stray.tar", (list) => [...list, fileItem(blobName(sha256Hex(stray)), stray)]);
    await expectFailure(["verify", file], /not referenced/);
  });

  for (const [name, entry] of [
    ["dot-dot path", fileItem("../escape", "x")],
    ["nested dot-dot path", fileItem("blobs/../../escape", "x")],
    ["absolute path", fileItem("/etc/airpack-escape", "x")],
  ] as const) {
    it(`rejects a ${name}`, async () => {
      const file = await variant(`${name.replace(/\W/g, "_")}.tar`, (list) => [list[0]!, entry, ...list.slice(1)]);
      await expectFailure(["verify", file], /escapes the archive root|absolute path/);
      await expectNoOutput(file, /escapes the archive root|absolute path/);
    });
  }

  for (const type of ["symlink", "link"] as const) {
    it(`rejects a ${type} pointing outside the target`, async () => {
      const link: TarItem = {
        header: { name: "blobs/evil", type, linkname: "../../../etc/passwd", mode: 0o777 },
        data: Buffer.alloc(0),
      };
      const file = await variant(`${type}.tar`, (list) => [list[0]!, link, ...list.slice(1)]);
      await expectFailure(["verify", file], new RegExp(`${type === "link" ? "hardlink" : "symlink"}.*regular files`));
      await expectNoOutput(file, /regular files/);
    });
  }

  it("caps oversized JSON documents", async () => {
    const file = await variant("huge-index.tar", (list) => {
      const index = list.find((i) => i.header.name === "index.json")!;
      const doc = JSON.parse(index.data.toString()) as { annotations?: Record<string, string> };
      doc.annotations = { padding: "x".repeat(5 * 1024 * 1024) };
      index.data = Buffer.from(JSON.stringify(doc));
      return list;
    });
    await expectFailure(["verify", file], /limit/);
  });

  it("refuses to replace an output directory that holds a different layout, unless --force", async () => {
    const other = join(dir, "other.tar");
    await pack([`oci:${join(FIXTURES, "oci")}:uncompressed`], other, join(dir, "cache"));
    const target = join(dir, "layout-target");
    let r = await runAirpack(["unpack", other, "--format", "oci", "-o", target]);
    assert.equal(r.code, 0, r.stderr);
    const before = await readFile(join(target, "index.json"));
    await expectFailure(
      ["unpack", good, "--format", "oci", "-o", target],
      /already holds a different OCI layout.*--force/,
    );
    assert.deepEqual(await readFile(join(target, "index.json")), before, "the existing layout was touched");
    r = await runAirpack(["unpack", good, "--format", "oci", "-o", target, "--force"]);
    assert.equal(r.code, 0, r.stderr);
    assert.notDeepEqual(await readFile(join(target, "index.json")), before);
    // Unpacking the same bundle again into its own layout is fine without --force.
    r = await runAirpack(["unpack", good, "--format", "oci", "-o", target]);
    assert.equal(r.code, 0, r.stderr);
  });

  it("catches a store blob changed on disk when packing from the cache, and leaves no bundle", async () => {
    const cache = join(dir, "cache-tampered");
    await pack([`oci:${join(FIXTURES, "oci")}:mixed`], join(dir, "first.tar"), cache);
    const blobsDir = join(cache, "blobs", "sha256");
    const sizes = await Promise.all(
      (await readdir(blobsDir)).map(async (n) => ({ n, size: (await stat(join(blobsDir, n))).size })),
    );
    const biggest = sizes.sort((a, b) => b.size - a.size)[0]!;
    const file = join(blobsDir, biggest.n);
    const bytes = await readFile(file);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff; // same size, other bytes
    await writeFile(file, bytes);
    const outDir = join(dir, "tampered-out");
    await mkdir(outDir);
    for (const out of ["b.tar", "b.tar.zst"]) {
      await expectFailure(
        ["pack", `oci:${join(FIXTURES, "oci")}:mixed`, "--cache", cache, "-o", join(outDir, out)],
        // .tar keeps the layer (full digest named); .tar.zst converts it (--layers auto), naming it short
        new RegExp(`sha256:${biggest.n.slice(0, 12)}\\S*: digest mismatch`),
      );
    }
    assert.deepEqual(await readdir(outDir), [], "pack left files behind");
  });

  it("fails cleanly when the disk fills up, leaving no partial output", async (t) => {
    const mnt = join(dir, "small-fs");
    await mkdir(mnt);
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=160k", "tmpfs", mnt], { stdio: "ignore" });
    } catch {
      if (process.env.CI) throw new Error("cannot mount a tmpfs; CI runs as root and must run this test");
      t.skip("needs root to mount a small tmpfs");
      return;
    }
    try {
      const size = (await stat(good)).size;
      assert.ok(size > 160 * 1024, "bundle must be larger than the small filesystem");
      await expectFailure(["unpack", good, "-o", join(mnt, "out.tar")], /ENOSPC|no space/i);
      await expectFailure(["unpack", good, "--format", "oci", "-o", join(mnt, "layout")], /ENOSPC|no space/i);
      await expectFailure(
        ["pack", `oci:${join(FIXTURES, "oci")}:mixed`, "--cache", join(dir, "cache"), "-o", join(mnt, "b.tar")],
        /ENOSPC|no space/i,
      );
      assert.deepEqual(await readdir(mnt), []);
    } finally {
      execFileSync("umount", ["-l", mnt]);
    }
  });

  it("exits 2 on usage errors", async () => {
    for (const args of [
      ["pack"],
      ["bogus"],
      ["pack", "oci:x", "-o", "out.unknown"],
      ["pack", "oci:x", "--layers", "brotli", "-o", "a.tar"],
    ]) {
      const r = await runAirpack(args);
      assert.equal(r.code, 2, `${args.join(" ")} → ${r.code}: ${r.stderr}`);
    }
  });
});
