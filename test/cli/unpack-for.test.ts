/**
 * unpack --for docker|containerd|podman|k3s: the form each target picks, how it combines with an
 * explicit --format / --layers (taken when that importer takes it too, exit 2 when it does not),
 * and the warning a plain unpack prints when its docker-archive holds zstd layers. Layers are
 * checked with tar, sha256 and the system gzip/zstd against the fixture layout, not with airpack.
 * (The importers themselves: test/e2e/docker-load.test.ts and test/e2e/unpack-for.test.ts.)
 */
import assert from "node:assert/strict";
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import {
  FIXTURES,
  REF_NAME,
  airpackOk,
  asIndex,
  blobPath,
  layoutImages,
  pack,
  readLayoutIndex,
  runAirpack,
  sha256File,
  sha256Of,
  sniffFile,
  tarMember,
  tarMembers,
  type LayoutImage,
} from "../helpers/cli";
import { runOk } from "../helpers/peers/process";
import { makeTempDir, removeDir } from "../helpers/peers/temp";

const OCI = join(FIXTURES, "oci");
const ZSTD_LAYER = "application/vnd.oci.image.layer.v1.tar+zstd";

let dir = "";
let cache = "";
/** oci:…:mixed (gzip, zstd and plain layers) and oci:…:v2s2 (gzip only). */
let withZstd = "";
let withoutZstd = "";
let fixtures: LayoutImage[] = [];
let n = 0;

/** Extract an output tar; its layers, per image manifest, with their form on disk. */
async function layersOf(
  tarFile: string,
): Promise<{ ref: string; layers: { mediaType: string; digest: string; sniffed: string; diffId: string }[] }[]> {
  const out = join(dir, `x-${n++}`);
  await mkdir(out);
  await runOk("tar", ["-xf", tarFile, "-C", out]);
  const images = await layoutImages(out);
  return Promise.all(
    images.map(async (img) => ({
      ref: img.ref,
      layers: await Promise.all(
        img.manifest.layers.map(async (l) => {
          const file = blobPath(out, l.digest);
          assert.equal(await sha256File(file), l.digest, `${img.ref}: blob ${l.digest}`);
          const sniffed = await sniffFile(file);
          const diffId =
            sniffed === "none" ? await sha256File(file) : sha256Of((await runOk(sniffed, ["-dc", file])).stdout);
          return { mediaType: l.mediaType, digest: l.digest, sniffed, diffId };
        }),
      ),
    })),
  );
}

function fixture(tag: string): LayoutImage {
  const img = fixtures.find((i) => i.ref === tag);
  assert.ok(img, tag);
  return img;
}

function assertUsage(r: { code: number; stderr: string }, pattern: RegExp): void {
  assert.equal(r.code, 2, `expected exit 2, got ${r.code}: ${r.stderr}`);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, pattern);
}

describe("unpack --for", { timeout: 300_000 }, () => {
  before(async () => {
    dir = await makeTempDir("airpack-unpack-for-");
    cache = join(dir, "cache");
    fixtures = await layoutImages(OCI);
    withZstd = join(dir, "zstd.tar.xz");
    withoutZstd = join(dir, "plain.tar.zst");
    await pack([`oci:${OCI}:mixed`, `oci:${OCI}:v2s2`], withZstd, cache);
    await pack([`oci:${OCI}:v2s2`], withoutZstd, cache);
  });
  after(async () => {
    if (dir) await removeDir(dir);
  });

  it("refuses a --format or --layers the importer does not take: exit 2, one line, nothing written", async () => {
    const out = join(dir, "refused");
    await mkdir(out);
    const cases: [string[], RegExp][] = [
      [["--for", "docker", "--layers", "zstd"], /--for docker --layers zstd: docker load \(20\.10\) refuses zstd/],
      [["--for", "docker", "--layers", "keep"], /--for docker --layers keep: docker load \(20\.10\) refuses zstd/],
      [["--for", "docker", "--format", "oci-archive"], /--for docker --format oci-archive: .*manifest\.json/],
      [["--for", "docker", "--format", "oci"], /--for docker --format oci: .*does not take a directory/],
      [["--for", "podman", "--format", "oci-archive"], /--for podman --format oci-archive: .*one image/],
      [["--for", "containerd", "--format", "oci"], /--for containerd --format oci: .*does not take a directory/],
      [["--for", "k3s", "--format", "oci"], /--for k3s --format oci: /],
      [["--for", "nerdctl"], /Invalid values|choices/i],
    ];
    for (const [extra, pattern] of cases) {
      const r = await runAirpack(["unpack", withZstd, ...extra, "--cache", cache, "-o", join(out, "a.tar")]);
      if (extra[1] === "nerdctl") assert.equal(r.code, 2, r.stderr);
      else assertUsage(r, pattern);
      assert.match(r.stderr, pattern);
    }
    // a tar target with -o naming a directory
    assertUsage(
      await runAirpack(["unpack", withZstd, "--for", "k3s", "-o", out]),
      /--for k3s writes a tar \(oci-archive\): -o .* is a directory/,
    );
    // checked before the bundle is read: a missing bundle still gets the usage error
    assertUsage(
      await runAirpack(["unpack", join(dir, "missing.tar"), "--for", "docker", "--layers", "zstd", "-o", "-"]),
      /refuses zstd/,
    );
    assert.deepEqual(await readdir(out), []);
  });

  it("--for docker: docker-archive; only the zstd layer becomes gzip, other layers and images keep their digests", async () => {
    const out = join(dir, "docker.tar");
    const r = await airpackOk(["unpack", withZstd, "--for", "docker", "--cache", cache, "-o", out]);
    assert.doesNotMatch(r.stderr, /warning/);
    assert.ok((await tarMembers(out)).includes("manifest.json"));
    // the image without a zstd layer keeps its manifest digest; the converted one gets a new one
    const index = asIndex(JSON.parse((await tarMember(out, "index.json")).toString("utf8")) as unknown);
    const fixtureTop = await readLayoutIndex(OCI);
    for (const tag of ["mixed", "v2s2"]) {
      const got = index.manifests.find((m) => m.annotations?.[REF_NAME] === `localhost/oci:${tag}`);
      const want = fixtureTop.manifests.find((m) => m.annotations?.[REF_NAME] === tag);
      assert.ok(got && want, tag);
      if (tag === "v2s2") assert.equal(got.digest, want.digest, tag);
      else assert.notEqual(got.digest, want.digest, tag);
    }
    for (const img of await layersOf(out)) {
      const src = fixture(img.ref.replace(/^localhost\/oci:/, ""));
      img.layers.forEach((l, i) => {
        assert.equal(l.diffId, src.config.rootfs.diff_ids[i], `${img.ref} layer ${i}`);
        const from = src.manifest.layers[i]!;
        if (from.mediaType === ZSTD_LAYER) {
          assert.equal(l.sniffed, "gzip");
          assert.equal(l.mediaType, "application/vnd.oci.image.layer.v1.tar+gzip");
        } else {
          assert.deepEqual([l.mediaType, l.digest], [from.mediaType, from.digest], `${img.ref} layer ${i}`);
        }
      });
    }
  });

  it("--for docker --layers gzip|uncompressed: taken (docker loads both); every layer converted", async () => {
    for (const [mode, want] of [
      ["gzip", "gzip"],
      ["uncompressed", "none"],
    ] as const) {
      const out = join(dir, `docker-${mode}.tar`);
      await airpackOk(["unpack", withZstd, "--for", "docker", "--layers", mode, "--cache", cache, "-o", out]);
      assert.ok((await tarMembers(out)).includes("manifest.json"));
      for (const img of await layersOf(out)) {
        const src = fixture(img.ref.replace(/^localhost\/oci:/, ""));
        img.layers.forEach((l, i) => {
          assert.equal(l.sniffed, want, `${img.ref} layer ${i}`);
          assert.equal(l.diffId, src.config.rootfs.diff_ids[i], `${img.ref} layer ${i}`);
        });
      }
    }
  });

  for (const [target, format] of [
    ["containerd", "oci-archive"],
    ["k3s", "oci-archive"],
    ["podman", "docker-archive"],
  ] as const) {
    it(`--for ${target}: ${format}, every layer as it is (zstd included)`, async () => {
      const out = join(dir, `${target}.tar`);
      const r = await airpackOk(["unpack", withZstd, "--for", target, "-o", out]);
      assert.doesNotMatch(r.stderr, /warning/);
      assert.match(r.stderr, new RegExp(`\\(${format}\\)`));
      assert.equal((await tarMembers(out)).includes("manifest.json"), format === "docker-archive");
      for (const img of await layersOf(out)) {
        const src = fixture(img.ref.replace(/^localhost\/oci:/, ""));
        assert.deepEqual(
          img.layers.map((l) => l.digest),
          src.manifest.layers.map((l) => l.digest),
          img.ref,
        );
      }
    });
  }

  it("--for containerd --format docker-archive: taken (ctr reads index.json either way)", async () => {
    const out = join(dir, "containerd-docker.tar");
    const r = await airpackOk(["unpack", withZstd, "--for", "containerd", "--format", "docker-archive", "-o", out]);
    assert.match(r.stderr, /\(docker-archive\)/);
    assert.ok((await tarMembers(out)).includes("manifest.json"));
  });

  it("without --for, a docker-archive with zstd layers gets one warning line naming the fix", async () => {
    const out = join(dir, "warned.tar");
    const r = await airpackOk(["unpack", withZstd, "-o", out]);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 2, r.stderr);
    assert.match(lines[0]!, /^verified .* \(docker-archive\)$/);
    assert.match(
      lines[1]!,
      /^warning: .*warned\.tar holds 1 zstd layer\(s\): docker load \(20\.10\) refuses zstd layers; use --for docker/,
    );
    // stdout too
    const piped = await airpackOk(["unpack", withZstd, "-o", "-"]);
    assert.match(piped.stderr, /warning: stdout holds 1 zstd layer\(s\)/);
    // --layers zstd makes every layer zstd
    const all = await airpackOk([
      "unpack",
      withoutZstd,
      "--layers",
      "zstd",
      "--cache",
      cache,
      "-o",
      join(dir, "z.tar"),
    ]);
    assert.match(all.stderr, /warning: .*z\.tar holds only zstd layers: /);
  });

  it("no warning when docker would take it, for other formats, and in --quiet / --json mode", async () => {
    const quietRuns: [string, string[]][] = [
      [withoutZstd, []],
      [withZstd, ["--layers", "gzip", "--cache", cache]],
      [withZstd, ["--layers", "uncompressed", "--cache", cache]],
      [withZstd, ["--format", "oci-archive"]],
    ];
    for (const [bundle, extra] of quietRuns) {
      const r = await airpackOk(["unpack", bundle, ...extra, "-o", join(dir, `quiet-${n++}.tar`)]);
      assert.doesNotMatch(r.stderr, /warning/, `${extra.join(" ")}: ${r.stderr}`);
    }
    const q = await airpackOk(["unpack", withZstd, "-q", "-o", join(dir, "q.tar")]);
    assert.equal(q.stderr, "");
    const j = await airpackOk(["--json", "unpack", withZstd, "-o", join(dir, "j.tar")]);
    assert.equal(j.stderr, "");
    const doc = JSON.parse(j.stdout.toString("utf8")) as { outputFormat: string; for?: string };
    assert.equal(doc.outputFormat, "docker-archive");
    assert.equal(doc.for, undefined);
    const jf = await airpackOk(["--json", "unpack", withZstd, "--for", "k3s", "-o", join(dir, "jf.tar")]);
    const docFor = JSON.parse(jf.stdout.toString("utf8")) as { outputFormat: string; for?: string };
    assert.deepEqual([docFor.outputFormat, docFor.for], ["oci-archive", "k3s"]);
  });
});
