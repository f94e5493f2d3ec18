/**
 * Bundles as sources (`pack bundle:FILE …`): two bundles made from the real registry merge into
 * one whose `unpack | ctr import` shows the registry's own digests; a multi-platform bundle is
 * filtered to one platform and recompressed from .tar.xz to .tar.zst with the registry stopped and
 * an empty store, so nothing can come from the network. Expected digests come from
 * `skopeo inspect --raw` and the fixture layout, never from airpack.
 */
import assert from "node:assert/strict";
import { createReadStream } from "node:fs";
import { copyFile, mkdir, readdir, stat, truncate } from "node:fs/promises";
import * as path from "node:path";
import { after, before, describe, test, type TestContext } from "node:test";
import { execFileSync } from "node:child_process";

import {
  FIXTURES,
  REPO_ROOT,
  airpackOk,
  assertOneLineError,
  pack,
  runAirpack,
  sha256Of,
  sniffFile,
} from "../helpers/cli";
import { startContainerd, type Containerd } from "../helpers/peers/containerd";
import { peersUnavailable, skipOrFail } from "../helpers/peers/process";
import { startRegistry, type Registry } from "../helpers/peers/registry";
import { createSkopeo, type Skopeo } from "../helpers/peers/skopeo";
import { makeTempDir, removeDir } from "../helpers/peers/temp";
import {
  inspectBundle,
  layoutIndexChildren,
  layoutTag,
  pushFixture,
  registryDigest,
} from "../helpers/registry-fixtures";

const TIMEOUT = 240_000;
const OCI = path.join(FIXTURES, "oci");

describe("bundles as sources: merge, filter, recompress", { timeout: 900_000 }, () => {
  let unavailable: string | null = null;
  let reg: Registry | undefined;
  let sk: Skopeo | undefined;
  let ctd: Containerd | undefined;
  let work = "";
  let host = "";
  /** Registry digest of each pushed ref, from `skopeo inspect --raw`. */
  const served = new Map<string, string>();
  let preserving = "";
  let plain = "";

  before(async () => {
    unavailable = await peersUnavailable(["docker-registry", "skopeo", "containerd", "ctr", "python3", "xz", "zstd"]);
    if (unavailable !== null) return;
    work = await makeTempDir("airpack-e2e-bundle-sources");
    reg = await startRegistry();
    sk = await createSkopeo();
    ctd = await startContainerd();
    host = reg.host;
    const zlibLayout = path.join(work, "zlib-layout");
    execFileSync("python3", [path.join(REPO_ROOT, "fixtures", "make-zlib-image.py"), zlibLayout]);
    await sk.copy(`oci:${zlibLayout}:zlib`, `docker://${host}/test/zlib:1`, [
      "--preserve-digests",
      "--dest-tls-verify=false",
    ]);
    await pushFixture(sk, "mixed", `${host}/test/mixed:1`);
    await pushFixture(sk, "multi", `${host}/test/multi:1`);
    for (const ref of ["zlib:1", "mixed:1", "multi:1"]) {
      served.set(ref, await registryDigest(sk, `${host}/test/${ref}`));
    }
    // One digest-preserving bundle (uncompressed layers + recipes) and one plain one (layers kept).
    preserving = path.join(work, "a.tar.xz");
    await pack([`${host}/test/zlib:1`, `${host}/test/mixed:1`], preserving, path.join(work, "cache-a"), [
      "--layers",
      "uncompressed",
    ]);
    plain = path.join(work, "b.tar.zst");
    await pack([`${host}/test/multi:1`], plain, path.join(work, "cache-b"), ["--all-platforms"]);
    // From here on nothing may come from the network.
    await reg.stop();
    reg = undefined;
  });

  after(async () => {
    await ctd?.stop();
    await sk?.cleanup();
    await reg?.stop();
    if (work) await removeDir(work);
  });

  function ready(t: TestContext): Containerd | null {
    if (skipOrFail(t, unavailable)) return null;
    assert.ok(ctd);
    return ctd;
  }

  test("merge two bundles: unpack | ctr import shows the registry's digests", { timeout: TIMEOUT }, async (t) => {
    const c = ready(t);
    if (!c) return;
    const merged = path.join(work, "merged.tar.xz");
    const cache = path.join(work, "cache-merge");
    await pack([`bundle:${preserving}`, `bundle:${plain}`], merged, cache, ["--all-platforms"]);
    assert.equal(await sniffFile(merged), "xz");
    // Recipes came over as they were: the recipe layers are still stored uncompressed.
    const images = await inspectBundle(merged);
    const zlib = images.find((i) => i.name === `${host}/test/zlib:1`);
    assert.deepEqual(
      zlib?.platforms[0]?.layers.map((l) => l.mode),
      ["recipe: zlib-9", "recipe: zlib-6"],
    );
    assert.ok(zlib?.platforms[0]?.layers.every((l) => l.mediaType === "application/vnd.oci.image.layer.v1.tar"));
    // Nothing was identified again: the merge's store holds no gzip blob of the zlib image.
    await airpackOk(["verify", merged]);
    const tar = await airpackOk(["unpack", merged, "-o", "-"]);
    await c.importImage(tar.stdout, { namespace: "merged", allPlatforms: true });
    const rows = await c.listImages("merged");
    for (const [ref, digest] of served) {
      const row = rows.find((r) => r.name === `${host}/test/${ref}`);
      assert.ok(row, `ctr has no ${ref}: ${rows.map((r) => r.name).join(", ")}`);
      assert.equal(row.digest, digest, `${ref}: ctr shows ${row.digest}, the registry serves ${digest}`);
    }
    const check = await c.ctr(["images", "check"], { namespace: "merged" });
    assert.equal(check.code, 0, check.stderr);
  });

  test(
    "filter one platform and recompress .tar.xz → .tar.zst, empty store, no registry",
    { timeout: TIMEOUT },
    async (t) => {
      const c = ready(t);
      if (!c) return;
      const all = path.join(work, "multi.tar.xz");
      await pack([`oci:${OCI}:multi`], all, path.join(work, "cache-multi"), ["--all-platforms"]);
      const arm = (await layoutIndexChildren("multi")).find((m) => m.platform?.architecture === "arm64");
      assert.ok(arm, "the fixture index has an arm64 manifest");
      const emptyStore = path.join(work, "cache-empty");
      const one = path.join(work, "arm64.tar.zst");
      await pack([`bundle:${all}`], one, emptyStore, ["--platform", "linux/arm64/v8"]);
      assert.equal(await sniffFile(one), "zstd");
      const images = await inspectBundle(one);
      assert.equal(images.length, 1);
      assert.deepEqual(
        images[0]!.platforms.map((p) => p.digest),
        [arm.digest],
        "the arm64 manifest keeps its fixture digest",
      );
      // ctr reads only plain tars: unpack it first. An arm64-only image can't be unpacked on this host, so
      // it is imported without unpacking and its content read back.
      const tar = await airpackOk(["unpack", one, "-o", "-"]);
      await c.importImage(tar.stdout, { namespace: "filtered", platform: "linux/arm64", noUnpack: true });
      const rows = await c.listImages("filtered");
      assert.equal(rows.length, 1);
      const got = await c.ctr(["content", "get", arm.digest], { namespace: "filtered" });
      assert.equal(got.code, 0, got.stderr);
      assert.equal(sha256Of(got.stdout), arm.digest, "ctr holds the arm64 manifest byte for byte");
      assert.notEqual(rows[0]!.digest, (await layoutTag("multi")).digest, "a filtered index is a new index");
    },
  );

  test(
    "a digest-preserving bundle recompressed to zstd still restores every digest",
    { timeout: TIMEOUT },
    async (t) => {
      const c = ready(t);
      if (!c) return;
      const out = path.join(work, "a.tar.zst");
      await pack([`bundle:${preserving}`], out, path.join(work, "cache-recompress"), []);
      assert.equal(await sniffFile(out), "zstd");
      const tar = await airpackOk(["unpack", out, "-o", "-"]);
      await c.importImage(tar.stdout, { namespace: "recompressed" });
      const rows = await c.listImages("recompressed");
      for (const ref of ["zlib:1", "mixed:1"]) {
        assert.equal(rows.find((r) => r.name === `${host}/test/${ref}`)?.digest, served.get(ref), ref);
      }
    },
  );

  test("bundle:- reads a bundle from stdin", { timeout: TIMEOUT }, async (t) => {
    if (!ready(t)) return;
    const out = path.join(work, "from-stdin.tar");
    await airpackOk(["pack", "bundle:-", "-o", out, "--cache", path.join(work, "cache-stdin"), "--all-platforms"], {
      input: createReadStream(plain),
    });
    assert.equal(await sniffFile(out), "none");
    const images = await inspectBundle(out);
    assert.deepEqual(
      images.map((i) => i.digest),
      [served.get("multi:1")],
    );
  });

  test("a truncated bundle as a source: one line, exit 1, no output left", { timeout: TIMEOUT }, async (t) => {
    if (!ready(t)) return;
    const cut = path.join(work, "cut.tar.xz");
    await copyFile(preserving, cut);
    await truncate(cut, Math.floor((await stat(cut)).size / 2));
    const outDir = path.join(work, "cut-out");
    await mkdir(outDir);
    const r = await runAirpack([
      "pack",
      `bundle:${cut}`,
      "-o",
      path.join(outDir, "x.tar.zst"),
      "--cache",
      path.join(work, "cache-cut"),
    ]);
    assertOneLineError(r, /truncated|incomplete|corrupt/);
    assert.deepEqual(await readdir(outDir), [], "nothing left in the output directory");
  });

  test("two bundles naming one image with different content is refused", { timeout: TIMEOUT }, async (t) => {
    if (!ready(t)) return;
    const other = path.join(work, "other.tar.xz");
    // The same names, but stored converted to zstd: different manifests.
    await pack([`bundle:${preserving}`], other, path.join(work, "cache-other"), ["--layers", "zstd"]);
    const r = await runAirpack([
      "pack",
      `bundle:${preserving}`,
      `bundle:${other}`,
      "-o",
      path.join(work, "conflict.tar"),
      "--cache",
      path.join(work, "cache-conflict"),
    ]);
    assertOneLineError(r, /given twice/);
  });
});
