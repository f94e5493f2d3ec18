/**
 * Shapes other tools write, and mistakes users make, from a trial with real-world inputs: each
 * case failed (hung, changed a digest, was refused, or gave a raw error) before it was fixed. The
 * layouts are built by fixtures/make-odd-layouts.py from real files; expected digests are read
 * from those layouts with node:crypto, never from airpack.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cp, mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import {
  REPO_ROOT,
  airpackOk,
  asIndex,
  assertOneLineError,
  pack,
  runAirpack,
  sha256Of,
  tarMember,
  type AirpackResult,
} from "../helpers/cli";
import { makeTempDir, removeDir } from "../helpers/peers/temp";
import { inspectBundle } from "../helpers/registry-fixtures";

let dir = "";
let odd = "";

function assertUsageError(r: AirpackResult, pattern: RegExp): void {
  assert.equal(r.code, 2, `expected exit 2, got ${r.code}: ${r.stderr}`);
  const lines = r.stderr.trim().split("\n");
  assert.match(lines[0]!, pattern);
  assert.ok(!/\n\s+at /.test(r.stderr), `a stack trace: ${r.stderr}`);
}

async function layoutEntry(layout: string, tag: string): Promise<{ digest: string; mediaType: string }> {
  const index = asIndex(JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as unknown);
  const e = index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag);
  assert.ok(e, `no ${tag} in ${layout}`);
  return e;
}

describe("real-world inputs", { timeout: 300_000 }, () => {
  before(async () => {
    dir = await makeTempDir("airpack-real-world-");
    odd = join(dir, "odd");
    execFileSync("python3", [join(REPO_ROOT, "fixtures", "make-odd-layouts.py"), odd]);
  });
  after(async () => {
    if (dir) await removeDir(dir);
  });

  for (const layers of ["uncompressed", "zstd"]) {
    for (const tag of ["text", "tar"]) {
      it(`--layers ${layers}: a "gzip" layer holding ${tag === "text" ? "text" : "a plain tar"} fails at once, naming it`, async () => {
        const out = join(dir, `notgzip-${layers}-${tag}`);
        await mkdir(out);
        const started = Date.now();
        const r = await runAirpack(
          [
            "pack",
            `oci:${join(odd, "notgzip")}:${tag}`,
            "--layers",
            layers,
            "--cache",
            join(dir, "c-ng"),
            "-o",
            join(out, "b.tar"),
          ],
          { timeoutMs: 30_000 },
        );
        assert.ok(Date.now() - started < 20_000, "no hang");
        const line = assertOneLineError(r, /layer sha256:[0-9a-f]{12}…: not valid gzip data/);
        assert.match(line, new RegExp(`localhost/notgzip:${tag}`));
        assert.deepEqual(await readdir(out), []);
      });
    }
  }

  for (const tag of ["oci-over-v2s2", "v2s2-over-oci"]) {
    it(`--layers keep keeps every byte of a manifest whose descriptor has the wrong type (${tag})`, async () => {
      const layout = join(odd, "typemismatch");
      const entry = await layoutEntry(layout, tag);
      const body = JSON.parse((await readFile(join(layout, "blobs", "sha256", entry.digest.slice(7)))).toString()) as {
        mediaType: string;
      };
      assert.notEqual(body.mediaType, entry.mediaType, "the fixture's descriptor disagrees with its body");
      const bundle = join(dir, `${tag}.tar`);
      const r = await pack([`oci:${layout}:${tag}`], bundle, join(dir, "c-tm"));
      assert.match(r.stderr, /warning: .*says .* but the manifest is/);
      const index = asIndex(JSON.parse((await tarMember(bundle, "index.json")).toString()) as unknown);
      assert.equal(index.manifests[0]?.digest, entry.digest, "the manifest digest is the source's");
      assert.equal(index.manifests[0]?.mediaType, body.mediaType, "the descriptor now says what the body is");
      const blob = await tarMember(bundle, `blobs/sha256/${entry.digest.slice(7)}`);
      assert.equal(sha256Of(blob), entry.digest);
      await airpackOk(["verify", bundle]);
    });
  }

  it("an artifact whose config is an empty {} image config is copied as it is", async () => {
    const layout = join(odd, "artifact");
    const bundle = join(dir, "artifact.tar");
    await pack([`oci:${layout}`], bundle, join(dir, "c-art"), ["--layers", "gzip"]);
    const att = await layoutEntry(layout, "attestation");
    const images = await inspectBundle(bundle);
    const got = images.find((i) => i.name === "localhost/artifact:attestation");
    assert.equal(got?.digest, att.digest, "the artifact's manifest is untouched");
    const img = images.find((i) => i.name === "localhost/artifact:image");
    assert.match(img?.platforms[0]?.layers[0]?.mediaType ?? "", /tar\+gzip$/, "the image beside it is still converted");
  });

  it("Docker 25+ `docker save IMAGE_ID` (manifests: null, RepoTags: null) packs as an untagged image", async () => {
    const bundle = join(dir, "by-id.tar");
    await pack([`docker-archive:${join(odd, "docker25-by-id.tar")}`], bundle, join(dir, "c-id"));
    const images = await inspectBundle(bundle);
    assert.equal(images.length, 1);
    assert.match(images[0]!.name, /^localhost\/docker25-by-id:latest$/);
    await airpackOk(["verify", bundle]);
  });

  it("docker-archive:FILE:REF takes that one name, not every tag of the image", async () => {
    const bundle = join(dir, "one-tag.tar");
    await pack([`docker-archive:${join(odd, "docker-two-tags.tar")}:example.com/b:2`], bundle, join(dir, "c-2t"));
    assert.deepEqual(
      (await inspectBundle(bundle)).map((i) => i.name),
      ["example.com/b:2"],
    );
  });

  it("the same source twice is taken once", async () => {
    const layout = join(odd, "artifact");
    const bundle = join(dir, "twice.tar");
    await pack([`oci:${layout}:image`, `oci:${layout}:image`], bundle, join(dir, "c-twice"));
    assert.equal((await inspectBundle(bundle)).length, 1);
  });

  it("options are checked before anything is read: exit 2, one line", async () => {
    const src = `oci:${join(odd, "artifact")}`;
    const out = join(dir, "opts-out");
    await mkdir(out);
    const base = ["pack", src, "--cache", join(dir, "c-opts")];
    assertUsageError(await runAirpack([...base, "-o", join(out, "a.tar.xz"), "--level", "99"]), /--level.*99.*0-9/);
    assertUsageError(await runAirpack([...base, "-o", join(out, "a.tar.xz"), "--level", "abc"]), /--level/);
    assertUsageError(await runAirpack([...base, "-o", join(out, "a.tar.gz"), "--level", "10"]), /--level.*1-9/);
    assertUsageError(await runAirpack([...base, "-o", join(out, "a.tar.xz"), "-T", "-3"]), /--threads -3/);
    assertUsageError(
      await runAirpack([...base, "-o", join(out, "a.tar"), "--platform", "foo"]),
      /--platform: invalid platform "foo"/,
    );
    assert.deepEqual(await readdir(out), []);
  });

  it("a compressed name on an uncompressed output gets a warning", async () => {
    const out = join(dir, "named.tar.xz");
    const r = await pack([`oci:${join(odd, "artifact")}:image`], out, join(dir, "c-name"), ["--compress", "none"]);
    assert.match(r.stderr, /warning: .*named\.tar\.xz: the name says xz, but this writes a plain tar/);
  });

  it("unpack into a missing directory names the path, and leaves no temp file", async () => {
    const bundle = join(dir, "artifact-u.tar");
    await pack([`oci:${join(odd, "artifact")}:image`], bundle, join(dir, "c-u"));
    const r = await runAirpack(["unpack", bundle, "-o", join(dir, "no-such-dir", "x.tar")]);
    assertOneLineError(r, /no-such-dir/);
    assert.ok(!/finalized|destroyed/.test(r.stderr), r.stderr);
    assert.ok(!(await stat(join(dir, "no-such-dir")).catch(() => undefined)));
  });

  for (const kind of ["symlink", "hardlink"]) {
    it(`docker save whose shared layer.tar is a ${kind} to another image's: both images pack`, async () => {
      const archive = join(odd, `docker-shared-${kind}.tar`);
      const bundle = join(dir, `shared-${kind}.tar`);
      await pack([`docker-archive:${archive}`], bundle, join(dir, `c-shared-${kind}`), ["-q"]);
      await airpackOk(["verify", bundle]);
      // the configs are the archive's own files, named by their sha256
      const entries = JSON.parse((await tarMember(archive, "manifest.json")).toString("utf8")) as {
        Config: string;
        RepoTags: string[];
      }[];
      const out = join(dir, `shared-${kind}.docker.tar`);
      await airpackOk(["unpack", bundle, "-o", out]);
      const unpacked = JSON.parse((await tarMember(out, "manifest.json")).toString("utf8")) as {
        Config: string;
        RepoTags: string[];
        Layers: string[];
      }[];
      for (const e of entries) {
        const config = await tarMember(archive, e.Config);
        const got = unpacked.find((u) => u.RepoTags.includes(e.RepoTags[0]!));
        assert.equal(got?.Config, `blobs/sha256/${sha256Of(config).slice(7)}`, e.RepoTags[0]);
        const diffIds = (JSON.parse(config.toString("utf8")) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids;
        assert.deepEqual(
          got?.Layers,
          diffIds.map((d) => `blobs/sha256/${d.slice(7)}`),
        );
      }
    });
  }

  it("a link in a source archive that climbs out of it is refused, naming the archive and the link", async () => {
    const archive = join(odd, "docker-link-escape.tar");
    const r = await runAirpack([
      "pack",
      `docker-archive:${archive}`,
      "-o",
      join(dir, "escape.tar"),
      "--cache",
      join(dir, "c-esc"),
    ]);
    assertOneLineError(
      r,
      /docker-link-escape\.tar: base1\/layer\.tar links to "\.\.\/\.\.\/base0\/layer\.tar", outside the archive/,
    );
  });

  it("errors of the system name the file and say what failed in words", async () => {
    const aFile = join(dir, "a-file");
    await writeFile(aFile, "not a directory\n");
    const layout = join(dir, "dir-blob");
    await cp(join(odd, "artifact"), layout, { recursive: true });
    const blob = (await readdir(join(layout, "blobs", "sha256")))[0]!;
    await rm(join(layout, "blobs", "sha256", blob));
    await mkdir(join(layout, "blobs", "sha256", blob));
    const cache = join(dir, "c-syserr");
    const out = join(dir, "syserr.tar");
    const bundle = join(dir, "syserr-src.tar");
    await pack([`oci:${join(odd, "artifact")}`], bundle, cache, ["-q"]);
    const cases: [string[], RegExp, number][] = [
      [["pack", `oci-archive:${dir}`, "-o", out], /^airpack: oci-archive:\S+: \S+ is a directory, not a tar file/, 1],
      [
        ["pack", `docker-archive:${join(dir, "missing.tar")}`, "-o", out],
        /docker-archive:\S+missing\.tar: cannot read \(no such file\)$/,
        1,
      ],
      [["pack", "-f", dir, "-o", out], /^airpack: -f \S+: cannot read \(is a directory\)$/, 2],
      [["pack", `oci:${layout}`, "-o", out], new RegExp(`dir-blob: blobs/sha256/${blob} is not a regular file$`), 1],
      [
        ["pack", `oci:${join(odd, "artifact")}`, "-o", out, "--cache", join(aFile, "store")],
        /a-file\/store\S*: cannot (create|look at) it \(a part of the path is not a directory\)$/,
        1,
      ],
      [
        ["unpack", bundle, "--format", "oci", "-o", join(aFile, "d")],
        /a-file\/d: cannot look at it \(a part of the path is not a directory\)$/,
        1,
      ],
    ];
    for (const [i, [args, pattern, code]] of cases.entries()) {
      // a store of its own each: a cached blob would hide the broken one
      const r = await runAirpack(args.includes("--cache") ? args : [...args, "--cache", `${cache}-${i}`]);
      assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
      const lines = r.stderr.trim().split("\n");
      assert.match(lines[0]!, pattern, args.join(" "));
      assert.doesNotMatch(r.stderr, /\b(ENOENT|EISDIR|ENOTDIR|EACCES)\b/, args.join(" "));
    }
  });

  it("--layers auto (the default): uncompressed with recipes under xz and zstd, keep for .tar and .tar.gz", async () => {
    const src = `oci:${join(odd, "artifact")}:image`;
    for (const [name, expected] of [
      ["auto.tar.xz", "uncompressed"],
      ["auto.tar.zst", "uncompressed"],
      ["auto.tar", "keep"],
      ["auto.tar.gz", "keep"],
    ] as const) {
      const out = join(dir, name);
      await airpackOk(["pack", src, "-o", out, "--cache", join(dir, "c-auto"), "-q"]);
      const meta = (await airpackOk(["inspect", "--json", out])).stdout.toString("utf8");
      assert.equal((JSON.parse(meta) as { layersMode: string }).layersMode, expected, name);
    }
  });

  it("--help examples: each command whole on one line, under a line saying what it does", async () => {
    for (const command of ["pack", "unpack", "verify", "inspect", "cache"]) {
      const help = (await airpackOk([command, "--help"])).stdout.toString("utf8");
      const lines = help.split("\n");
      const at = lines.indexOf("Examples:");
      assert.ok(at >= 0, `${command} --help has no examples`);
      const shown = lines.slice(at + 1).filter((l) => l.startsWith("  airpack "));
      assert.ok(shown.length > 0, `${command}: no example commands`);
      for (const line of shown) {
        assert.ok(line.length <= 80, `${command}: example wider than 80 columns: ${line}`);
        const before = lines[lines.indexOf(line) - 1] ?? "";
        assert.match(before, /^ {2}# \S/, `${command}: example without its description: ${line}`);
        // nothing of the command spilled onto the next line
        assert.match(lines[lines.indexOf(line) + 1] ?? "", /^$/, `${command}: example wrapped: ${line}`);
      }
    }
  });

  it("cache ls of a store that does not exist creates nothing", async () => {
    const missing = join(dir, "no-store");
    const r = await airpackOk(["cache", "ls", "--cache", missing]);
    assert.match(r.stdout.toString(), /no store/);
    assert.equal(await stat(missing).catch(() => undefined), undefined);
  });
});
