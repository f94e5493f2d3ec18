/**
 * Split bundles (pack --split): part sizes, NAME.parts.json checked with node:crypto, every reader
 * given NAME.001 and NAME.parts.json, and every kind of bad input — a missing, swapped, truncated,
 * misordered or damaged part, a parts.json that lies or names paths — refused with one line naming
 * the part, exit 1 and no output left. Bundles are made by the real CLI from the fixtures and
 * damaged with test-side tools; expected hashes are taken from the files with node:crypto.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { spawn, execFileSync } from "node:child_process";
import { copyFile, cp, mkdir, readdir, readFile, rename, rm, stat, truncate, writeFile } from "node:fs/promises";
import { basename, join, relative } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { AIRPACK_BIN, FIXTURES, REPO_ROOT, airpackOk, assertOneLineError, pack, runAirpack } from "../helpers/cli";
import { runOk } from "../helpers/peers/process";
import { makeTempDir, removeDir } from "../helpers/peers/temp";

const OCI = join(FIXTURES, "oci");
/** Fixed, so that two packs of the same images make the same bytes (the ENOSPC test resumes one). */
const EPOCH = { SOURCE_DATE_EPOCH: "1700000000" };

let dir: string;
let cache: string;
/** The bundle packed whole, and its bytes. */
let whole: string;
let wholeBytes: Buffer;
/** Bytes per part: the whole bundle in 4 full parts and a shorter fifth. */
let partSize: number;
/** A split pack of the same images: its directory and bundle name. */
let splitDir: string;
const NAME = "site.tar.xz";

interface PartsJson {
  airpackParts: number;
  bundle: string;
  size: number;
  sha256: string;
  partSize: number;
  parts: { name: string; size: number; sha256: string }[];
}

function hex(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

const partFile = (d: string, i: number): string => join(d, `${NAME}.${String(i).padStart(3, "0")}`);

/** The part files of a split bundle in `d`, in order. */
async function partFiles(d: string): Promise<string[]> {
  return (await readdir(d))
    .filter((n) => /\.\d{3}$/.test(n))
    .sort()
    .map((n) => join(d, n));
}

/** A copy of the split bundle in a fresh directory, to damage. */
async function copyOfSplit(): Promise<string> {
  const d = join(dir, `copy-${Math.random().toString(16).slice(2)}`);
  await cp(splitDir, d, { recursive: true });
  return d;
}

async function editPartsJson(d: string, edit: (doc: PartsJson) => void): Promise<void> {
  const file = join(d, `${NAME}.parts.json`);
  const doc = JSON.parse(await readFile(file, "utf8")) as PartsJson;
  edit(doc);
  await writeFile(file, JSON.stringify(doc));
}

/**
 * Every reader refuses the bundle with one line matching `pattern`, exits 1, and leaves nothing:
 * verify and inspect --verify given NAME.001, unpack (a tar and a layout) given NAME.parts.json.
 */
async function expectRefused(d: string, pattern: RegExp): Promise<string> {
  const out = join(dir, `out-${Math.random().toString(16).slice(2)}`);
  await mkdir(out);
  const line = assertOneLineError(await runAirpack(["verify", partFile(d, 1)]), pattern);
  assertOneLineError(await runAirpack(["inspect", "--verify", partFile(d, 1)]), pattern);
  const parts = join(d, `${NAME}.parts.json`);
  assertOneLineError(await runAirpack(["unpack", parts, "-o", join(out, "images.tar")]), pattern);
  assertOneLineError(await runAirpack(["unpack", parts, "--format", "oci", "-o", join(out, "layout")]), pattern);
  assert.deepEqual(await readdir(out), [], "unpack left files behind");
  return line;
}

describe("split bundles", () => {
  before(async () => {
    dir = await makeTempDir("airpack-split-");
    cache = join(dir, "cache");
    whole = join(dir, NAME);
    await pack([`oci:${OCI}`], whole, cache, ["--all-platforms", "-q"], { env: EPOCH });
    wholeBytes = await readFile(whole);
    partSize = Math.floor(wholeBytes.length / 4.5);
    splitDir = join(dir, "split");
    await mkdir(splitDir);
    await pack([`oci:${OCI}`], join(splitDir, NAME), cache, ["--all-platforms", "-q", "--split", String(partSize)], {
      env: EPOCH,
    });
  });
  after(async () => {
    await removeDir(dir);
  });

  it("cuts the bundle into parts of exactly SIZE bytes (the last holds the rest); cat of them is the bundle", async () => {
    const files = await partFiles(splitDir);
    assert.equal(files.length, 5);
    const bytes = await Promise.all(files.map((f) => readFile(f)));
    for (const b of bytes.slice(0, -1)) assert.equal(b.length, partSize);
    assert.equal(bytes.at(-1)!.length, wholeBytes.length - 4 * partSize);
    assert.ok(Buffer.concat(bytes).equals(wholeBytes), "the parts together are the unsplit bundle, byte for byte");
    assert.deepEqual((await readdir(splitDir)).sort(), [...files.map((f) => basename(f)), `${NAME}.parts.json`].sort());
  });

  it("writes NAME.parts.json: the bundle's sha256 and size, each part's name, size and sha256", async () => {
    const doc = JSON.parse(await readFile(join(splitDir, `${NAME}.parts.json`), "utf8")) as PartsJson;
    const files = await partFiles(splitDir);
    assert.equal(doc.airpackParts, 1);
    assert.equal(doc.bundle, NAME);
    assert.equal(doc.size, wholeBytes.length);
    assert.equal(doc.sha256, hex(wholeBytes));
    assert.equal(doc.partSize, partSize);
    assert.deepEqual(
      doc.parts,
      await Promise.all(
        files.map(async (f) => {
          const b = await readFile(f);
          return { name: basename(f), size: b.length, sha256: hex(b) };
        }),
      ),
    );
  });

  it("prints the bundle's sha256 and size last, and in --json with the parts", async () => {
    const out = join(dir, "printed");
    await mkdir(out);
    const args = ["pack", `oci:${OCI}`, "--all-platforms", "--layers", "keep", "--cache", cache];
    const r = await airpackOk([...args, "-o", join(out, NAME), "--split", String(partSize)], { env: EPOCH });
    const last = r.stderr.trim().split("\n").at(-1)!;
    assert.equal(last, `bundle sha256 ${hex(wholeBytes)}  ${wholeBytes.length} bytes`);
    const j = await airpackOk([...args, "-o", join(out, NAME), "--split", String(partSize), "--json"], { env: EPOCH });
    const doc = JSON.parse(j.stdout.toString("utf8")) as {
      sha256: string;
      bytes: number;
      parts: PartsJson["parts"];
    };
    assert.equal(doc.sha256, hex(wholeBytes));
    assert.equal(doc.bytes, wholeBytes.length);
    assert.deepEqual(
      doc.parts.map((p) => p.size),
      [partSize, partSize, partSize, partSize, wholeBytes.length - 4 * partSize],
    );
    // unsplit outputs too: streamed (xz) and a plain .tar written in place
    for (const name of ["whole.tar.xz", "whole.tar"]) {
      const w = await airpackOk([...args, "-o", join(out, name)], { env: EPOCH });
      const file = await readFile(join(out, name));
      assert.equal(w.stderr.trim().split("\n").at(-1), `bundle sha256 ${hex(file)}  ${file.length} bytes`, name);
    }
  });

  it("takes SIZE as bytes, with units, or as a medium", async () => {
    const out = join(dir, "sizes");
    await mkdir(out);
    // named media: FAT32's largest file; the smaller of the -R/+R discs less 16 MiB for the filesystem
    const MiB = 2 ** 20;
    for (const [size, bytes] of [
      ["4095M", 4095 * MiB],
      ["4G", 4 * 2 ** 30],
      ["700MB", 700e6],
      ["fat32", 2 ** 32 - 1],
      ["dvd", 4_700_372_992 - 16 * MiB],
      ["dvd-dl", 8_543_666_176 - 16 * MiB],
      ["bd25", 25_025_314_816 - 16 * MiB],
      ["bd50", 50_050_629_632 - 16 * MiB],
    ] as const) {
      await pack([`oci:${OCI}:mixed`], join(out, NAME), cache, ["-q", "--split", size]);
      const doc = JSON.parse(await readFile(join(out, `${NAME}.parts.json`), "utf8")) as PartsJson;
      assert.equal(doc.partSize, bytes, size);
      assert.equal(doc.parts.length, 1, size);
    }
    for (const bad of ["0", "-5", "1.5.2G", "cdrom", "4Q"]) {
      const r = await runAirpack(["pack", `oci:${OCI}:mixed`, "--cache", cache, "-o", join(out, NAME), "--split", bad]);
      assert.equal(r.code, 2, `--split ${bad}: ${r.stderr}`);
      assert.match(r.stderr, /--split/);
    }
    const r = await runAirpack(["pack", `oci:${OCI}:mixed`, "--cache", cache, "-o", "-", "--split", "1M"]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout.length, 0);
  });

  it("every reader takes NAME.001 and NAME.parts.json (and NAME when only its parts exist)", async () => {
    const first = partFile(splitDir, 1);
    const partsJson = join(splitDir, `${NAME}.parts.json`);
    for (const given of [first, partsJson, join(splitDir, NAME)]) {
      const v = await airpackOk(["verify", given]);
      assert.match(v.stdout.toString("utf8"), /^OK: 4 image\(s\)/, given);
    }
    // inspect: the same images as the whole bundle, and the size of all parts together
    const wholeInspect = JSON.parse((await airpackOk(["inspect", "--json", whole])).stdout.toString("utf8")) as {
      images: unknown[];
      bundleBytes: number;
    };
    for (const given of [first, partsJson]) {
      const s = JSON.parse((await airpackOk(["inspect", "--json", "--verify", given])).stdout.toString("utf8")) as {
        images: unknown[];
        bundleBytes: number;
      };
      assert.deepEqual(s.images, wholeInspect.images, given);
      assert.equal(s.bundleBytes, wholeBytes.length, given);
    }
    // unpack: the same tar as from the whole bundle
    const out = join(dir, "unpacked");
    await mkdir(out);
    await airpackOk(["unpack", whole, "-o", join(out, "whole.tar")]);
    const expected = await readFile(join(out, "whole.tar"));
    for (const [i, given] of [first, partsJson].entries()) {
      await airpackOk(["unpack", given, "-o", join(out, `${i}.tar`)]);
      assert.ok((await readFile(join(out, `${i}.tar`))).equals(expected), given);
    }
    const stdout = await airpackOk(["unpack", first, "-o", "-"]);
    assert.ok(stdout.stdout.equals(expected), "unpack -o -");
    // push's reader (copy is push into a layout): every image, and pack bundle: reads parts as a source
    await airpackOk(["copy", `bundle:${partsJson}`, `oci:${join(out, "layout")}`, "-q"]);
    const index = JSON.parse(await readFile(join(out, "layout", "index.json"), "utf8")) as { manifests: unknown[] };
    assert.equal(index.manifests.length, 4);
    await airpackOk(["pack", `bundle:${first}`, "-o", join(out, "again.tar.zst"), "--cache", join(dir, "c2"), "-q"]);
    await airpackOk(["verify", join(out, "again.tar.zst")]);
    // what a reader without airpack does: cat the parts
    const cat = Buffer.concat(await Promise.all((await partFiles(splitDir)).map((f) => readFile(f))));
    await airpackOk(["verify", "-"], { input: cat });
  });

  it("names a damaged part with its sha256 and the expected one, and leaves no output", async () => {
    const d = await copyOfSplit();
    const file = partFile(d, 3);
    const bytes = await readFile(file);
    const expected = hex(bytes);
    bytes[Math.floor(bytes.length / 2)] ^= 0x55;
    await writeFile(file, bytes);
    const line = await expectRefused(d, /part 003 of 5 is damaged/);
    assert.match(
      line,
      new RegExp(`part 003 of 5 is damaged \\(sha256 ${hex(bytes)}, expected ${expected}\\): resend ${NAME}\\.003$`),
    );
    // unpack -o -: nothing can be taken back, so the tar ends without its end-of-archive marker
    const r = await runAirpack(["unpack", partFile(d, 1), "-o", "-"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /part 003 of 5 is damaged/);
    assert.ok(!r.stdout.subarray(-1024).equals(Buffer.alloc(1024)), "no end-of-archive marker");
  });

  it("names a damaged last part, and one damaged in its first bytes", async () => {
    for (const [i, at] of [
      [5, -10],
      [2, 0],
    ] as const) {
      const d = await copyOfSplit();
      const bytes = await readFile(partFile(d, i));
      bytes[at < 0 ? bytes.length + at : at] ^= 0xff;
      await writeFile(partFile(d, i), bytes);
      await expectRefused(d, new RegExp(`part 00${i} of 5 is damaged .*: resend ${NAME}\\.00${i}$`));
    }
  });

  it("refuses a missing part by name, before reading anything", async () => {
    const d = await copyOfSplit();
    await rm(partFile(d, 4));
    await expectRefused(d, new RegExp(`part 004 of 5 is missing: resend ${NAME}\\.004$`));
    await rm(partFile(d, 2));
    await expectRefused(d, new RegExp(`parts 002 and 004 of 5 are missing: resend ${NAME}\\.002 ${NAME}\\.004$`));
  });

  it("refuses a truncated last part, and a part that grew", async () => {
    let d = await copyOfSplit();
    const lastSize = wholeBytes.length - 4 * partSize;
    await truncate(partFile(d, 5), lastSize - 100);
    await expectRefused(
      d,
      new RegExp(`part 005 of 5 is truncated \\(${lastSize - 100} of ${lastSize} bytes\\): resend ${NAME}\\.005$`),
    );
    d = await copyOfSplit();
    await writeFile(partFile(d, 2), Buffer.concat([await readFile(partFile(d, 2)), Buffer.from("x")]));
    await expectRefused(
      d,
      new RegExp(`part 002 of 5 is ${partSize + 1} bytes, ${partSize} expected: resend ${NAME}\\.002$`),
    );
  });

  it("refuses a part swapped in from another bundle", async () => {
    const other = join(dir, "other");
    await mkdir(other);
    // other images, split at the same size: its part 002 has the right name and size, not the right bytes
    await pack([`oci:${OCI}:mixed`, `oci:${OCI}:v2s2`], join(other, NAME), cache, ["-q", "--split", String(partSize)]);
    const d = await copyOfSplit();
    const foreign = await readFile(partFile(other, 2));
    assert.equal(foreign.length, partSize);
    await copyFile(partFile(other, 2), partFile(d, 2));
    await expectRefused(
      d,
      new RegExp(
        `part 002 of 5 is damaged \\(sha256 ${hex(foreign)}, expected ${hex(await readFile(partFile(splitDir, 2)))}\\): resend ${NAME}\\.002$`,
      ),
    );
  });

  it("refuses parts in the wrong order, saying which is which", async () => {
    const d = await copyOfSplit();
    await rename(partFile(d, 2), join(d, "tmp"));
    await rename(partFile(d, 3), partFile(d, 2));
    await rename(join(d, "tmp"), partFile(d, 3));
    await expectRefused(d, new RegExp(`${NAME}\\.002 holds part 003 of 5 .*out of order; rename it ${NAME}\\.003$`));
  });

  it("refuses a parts.json that lies about sizes or hashes", async () => {
    const cases: [string, (doc: PartsJson) => void, RegExp][] = [
      ["a part's size", (doc) => (doc.parts[1]!.size -= 512), /is inconsistent: part 002 of 5 is listed with/],
      [
        "the last part's size and the total",
        (doc) => {
          doc.parts[4]!.size += 1;
          doc.size += 1;
        },
        /part 005 of 5 is truncated/,
      ],
      [
        "the total size",
        (doc) => (doc.size += 1),
        /is inconsistent: its parts add up to \d+ bytes, not \d+ as it says/,
      ],
      [
        "a part's hash",
        (doc) => (doc.parts[2]!.sha256 = "0".repeat(64)),
        /part 003 of 5 is damaged .*expected 0{64}\)/,
      ],
      [
        "the total's hash",
        (doc) => (doc.sha256 = "f".repeat(64)),
        /is inconsistent: every part matches it, but together they hash to/,
      ],
      ["the part size", (doc) => (doc.partSize += 1), /is inconsistent: part 001 of 5 is listed with/],
    ];
    for (const [what, edit, pattern] of cases) {
      const d = await copyOfSplit();
      await editPartsJson(d, edit);
      const line = await expectRefused(d, pattern);
      assert.match(line, /resend site\.tar\.xz\.(parts\.json|00\d)$/, what);
    }
  });

  it("refuses a parts.json naming paths outside its directory", async () => {
    for (const name of [`../${NAME}.002`, `/etc/${NAME}.002`, `sub/${NAME}.002`, ".."]) {
      const d = await copyOfSplit();
      await editPartsJson(d, (doc) => (doc.parts[1]!.name = name));
      await expectRefused(
        d,
        new RegExp(
          `names part 002 of 5 ${JSON.stringify(name).replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: part names must be plain file names beside it`,
        ),
      );
    }
    const d = await copyOfSplit();
    await editPartsJson(d, (doc) => (doc.bundle = "../escape"));
    await expectRefused(d, /names the bundle "\.\.\/escape"/);
  });

  it("refuses a part beside the listed ones, a lost parts.json, and a part named other than the first", async () => {
    let d = await copyOfSplit();
    await copyFile(partFile(d, 5), partFile(d, 6));
    await expectRefused(d, new RegExp(`${NAME}\\.006 is beside ${NAME}\\.parts\\.json, which lists 5 part\\(s\\)`));
    d = await copyOfSplit();
    await rm(join(d, `${NAME}.parts.json`));
    for (const given of [partFile(d, 1), join(d, NAME)]) {
      assertOneLineError(
        await runAirpack(["verify", given]),
        new RegExp(`${NAME}\\.parts\\.json is missing .*cat ${NAME}\\.0\\* \\| airpack verify -$`),
      );
    }
    assertOneLineError(
      await runAirpack(["verify", partFile(splitDir, 3)]),
      /is part 003 of 5 of a split bundle: name site\.tar\.xz\.001/,
    );
  });

  it("removes the parts of an earlier bundle of the same name (never leaves them behind)", async () => {
    const d = join(dir, "stale");
    await mkdir(d);
    const out = join(d, NAME);
    const args = ["pack", `oci:${OCI}`, "--all-platforms", "--layers", "keep", "--cache", cache, "-o", out];
    await airpackOk([...args, "--split", String(partSize)]);
    assert.equal((await partFiles(d)).length, 5);
    // fewer, bigger parts: the old 004 and 005 must not stay beside the new ones
    let r = await airpackOk([...args, "--split", String(partSize * 2)]);
    assert.deepEqual((await readdir(d)).sort(), [`${NAME}.001`, `${NAME}.002`, `${NAME}.003`, `${NAME}.parts.json`]);
    assert.match(r.stderr, /removed .*an earlier bundle of that name/);
    await airpackOk(["verify", partFile(d, 1)]);
    // unsplit over split: the parts go
    r = await airpackOk(args);
    assert.deepEqual(await readdir(d), [NAME]);
    assert.match(r.stderr, /removed .*site\.tar\.xz\.parts\.json/);
    // split over unsplit: the whole file goes
    await airpackOk([...args, "--split", String(partSize)]);
    assert.ok(!(await readdir(d)).includes(NAME));
    await airpackOk(["verify", join(d, NAME)]);
  });

  it("writes the parts into the directory -o names, from anywhere", async () => {
    const media = join(dir, "media", "usb");
    await mkdir(media, { recursive: true });
    const cwd = join(dir, "elsewhere");
    await mkdir(cwd);
    await airpackOk(
      [
        "pack",
        `oci:${OCI}`,
        "--all-platforms",
        "--layers",
        "keep",
        "--cache",
        cache,
        "-q",
        "--split",
        String(partSize),
        "-o",
        relative(cwd, join(media, NAME)),
      ],
      { cwd },
    );
    assert.deepEqual(await readdir(cwd), []);
    assert.equal((await partFiles(media)).length, 5);
    await airpackOk(["verify", `usb/${NAME}.001`], { cwd: join(dir, "media") });
    // -o naming the directory itself is a usage error
    const r = await runAirpack([
      "pack",
      `oci:${OCI}:mixed`,
      "--cache",
      cache,
      "--split",
      "1M",
      "--compress",
      "xz",
      "-o",
      media,
    ]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /is a directory; name the bundle in it/);
  });

  it("a full disk keeps the complete parts, says how to resume, and --resume finishes the bundle", async (t) => {
    const mnt = join(dir, "small-fs");
    await mkdir(mnt);
    // room for three parts and the start of the fourth
    const pages = 3 * Math.ceil(partSize / 4096) + 1;
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", `size=${pages * 4096}`, "tmpfs", mnt], { stdio: "ignore" });
    } catch {
      if (process.env.CI) throw new Error("cannot mount a tmpfs; CI runs as root and must run this test");
      t.skip("needs root to mount a small tmpfs");
      return;
    }
    try {
      const resumeCache = join(dir, "resume-cache");
      const args = [
        "pack",
        `oci:${OCI}`,
        "--all-platforms",
        "--layers",
        "keep",
        "--cache",
        resumeCache,
        "-o",
        join(mnt, NAME),
        "--split",
        String(partSize),
      ];
      const r = await runAirpack(args, { env: EPOCH });
      assertOneLineError(
        r,
        new RegExp(
          `${NAME}\\.004: cannot write it \\(no space left on device\\); parts 001–003 are complete and kept: .*run the same command with --resume to write part 004 on$`,
        ),
      );
      // parts 1…3 are valid: the same bytes as the split pack made with room to spare; no temp files
      assert.deepEqual(
        (await readdir(mnt)).sort(),
        [1, 2, 3].map((i) => basename(partFile(mnt, i))),
      );
      for (const i of [1, 2, 3]) {
        assert.ok((await readFile(partFile(mnt, i))).equals(await readFile(partFile(splitDir, i))), `part ${i}`);
      }
      // carried off to another disk; the same command with --resume writes the rest
      const carried = join(dir, "carried");
      await mkdir(carried);
      for (const i of [1, 2, 3]) {
        await copyFile(partFile(mnt, i), partFile(carried, i));
        await rm(partFile(mnt, i));
      }
      const differs = await runAirpack([...args.slice(0, -1), String(partSize * 2), "--resume"], { env: EPOCH });
      assert.equal(differs.code, 2, differs.stderr);
      assert.match(differs.stderr, /--resume: the first run had --split/);
      // without SOURCE_DATE_EPOCH too: the resumed run takes the first run's time
      const resumed = await airpackOk([...args, "--resume"]);
      assert.equal(
        resumed.stderr.trim().split("\n").at(-1),
        `bundle sha256 ${hex(wholeBytes)}  ${wholeBytes.length} bytes`,
      );
      assert.deepEqual((await readdir(mnt)).sort(), [`${NAME}.004`, `${NAME}.005`, `${NAME}.parts.json`]);
      for (const f of await readdir(mnt)) await copyFile(join(mnt, f), join(carried, f));
      await airpackOk(["verify", partFile(carried, 1)]);
      const cat = Buffer.concat(await Promise.all((await partFiles(carried)).map((f) => readFile(f))));
      assert.ok(cat.equals(wholeBytes));
      // nothing left to resume
      const again = await runAirpack([...args, "--resume"]);
      assert.equal(again.code, 2, again.stderr);
      assert.match(again.stderr, /no stopped split pack/);
    } finally {
      execFileSync("umount", ["-l", mnt]);
    }
  });

  it("a disk too small for the first part keeps nothing", async (t) => {
    const mnt = join(dir, "tiny-fs");
    await mkdir(mnt);
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=8k", "tmpfs", mnt], { stdio: "ignore" });
    } catch {
      if (process.env.CI) throw new Error("cannot mount a tmpfs; CI runs as root and must run this test");
      t.skip("needs root to mount a small tmpfs");
      return;
    }
    try {
      const r = await runAirpack([
        "pack",
        `oci:${OCI}`,
        "--all-platforms",
        "--cache",
        cache,
        "-o",
        join(mnt, NAME),
        "--split",
        String(partSize),
      ]);
      assertOneLineError(r, new RegExp(`${NAME}\\.001: cannot write it \\(no space left on device\\)$`));
      assert.deepEqual(await readdir(mnt), []);
    } finally {
      execFileSync("umount", ["-l", mnt]);
    }
  });

  /** A 24 MiB image of real files (fixtures/make-big.sh), made once. */
  let bigLayout: Promise<string> | undefined;
  const big = (): Promise<string> =>
    (bigLayout ??= (async () => {
      const layout = join(dir, "big");
      await runOk("bash", [join(REPO_ROOT, "fixtures", "make-big.sh"), layout, "24", "1"]);
      return layout;
    })());

  it("reads and checks the parts of a bigger bundle (hashed on the hash thread) the same way", async () => {
    const d = join(dir, "bigger");
    await mkdir(d);
    const layout = await big();
    await pack([`oci:${layout}`], join(d, "big.tar"), cache, ["-q", "--split", "3M"]);
    const files = (await readdir(d)).filter((n) => /\.\d{3}$/.test(n)).sort();
    assert.ok(files.length >= 8, files.join(" "));
    const bytes = await Promise.all(files.map((f) => readFile(join(d, f))));
    const doc = JSON.parse(await readFile(join(d, "big.tar.parts.json"), "utf8")) as PartsJson;
    assert.equal(doc.sha256, hex(Buffer.concat(bytes)));
    assert.deepEqual(
      doc.parts.map((p) => p.sha256),
      bytes.map((b) => hex(b)),
    );
    await airpackOk(["verify", join(d, "big.tar.001")]);
    // a plain tar: a flipped byte in a layer is what the reader sees first, the part is what it names
    const victim = join(d, files[4]!);
    const damaged = Buffer.from(bytes[4]!);
    damaged[1000] ^= 0x01;
    await writeFile(victim, damaged);
    const out = join(dir, "bigger-out");
    await mkdir(out);
    for (const args of [
      ["verify", join(d, "big.tar.001")],
      ["unpack", join(d, "big.tar.parts.json"), "-o", join(out, "x.tar")],
    ]) {
      assertOneLineError(
        await runAirpack(args),
        new RegExp(
          `part 005 of ${files.length} is damaged \\(sha256 ${hex(damaged)}, expected ${hex(bytes[4]!)}\\): resend big\\.tar\\.005$`,
        ),
      );
    }
    assert.deepEqual(await readdir(out), []);
  });

  it("Ctrl-C leaves no part behind", async () => {
    const layout = await big();
    const out = join(dir, "int-out");
    await mkdir(out);
    const child = spawn(
      process.execPath,
      [
        AIRPACK_BIN,
        "pack",
        `oci:${layout}`,
        "--cache",
        join(dir, "c-int"),
        "--compress",
        "xz",
        "--level",
        "9",
        "-T",
        "1",
        "--split",
        "64K",
        "-o",
        join(out, NAME),
      ],
      { cwd: REPO_ROOT, stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && !(await readdir(out)).includes(`${NAME}.002`)) await sleep(50);
    assert.ok((await readdir(out)).includes(`${NAME}.002`), "parts were being written");
    child.kill("SIGINT");
    assert.equal(await exited, 130, stderr);
    assert.deepEqual(await readdir(out), [], "no parts and no temp files");
    assert.equal((await stat(out)).isDirectory(), true);
  });
});
