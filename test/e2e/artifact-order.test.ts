/**
 * End-to-end: bundles that hold artifacts (an SBOM attestation named on its own) next to images.
 * `ctr images import` stops at the first name it cannot unpack, so airpack writes runnable images
 * first, and `unpack --images-only` leaves such names out. The layout comes from
 * fixtures/make-odd-layouts.py; the image's diff_id is the sha256 of its tar, hashed here.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test, type TestContext } from "node:test";

import {
  REF_NAME,
  REPO_ROOT,
  airpackOk,
  asConfig,
  asIndex,
  asManifest,
  assertSnapshotsFor,
  pack,
  readBlobJson,
  tarMember,
} from "../helpers/cli";
import { startContainerd, type Containerd } from "../helpers/peers/containerd";
import { peersUnavailable, skipOrFail } from "../helpers/peers/process";
import { makeTempDir, removeDir } from "../helpers/peers/temp";

describe("artifacts next to images: ctr import gets every image", { timeout: 300_000 }, () => {
  let unavailable: string | null = null;
  let ctd: Containerd | null = null;
  let dir = "";
  let layout = "";
  let imageDiffIds: string[] = [];

  before(async () => {
    unavailable = await peersUnavailable(["containerd", "ctr"]);
    if (unavailable !== null) return;
    dir = await makeTempDir("airpack-e2e-artifacts-");
    execFileSync("python3", [join(REPO_ROOT, "fixtures", "make-odd-layouts.py"), join(dir, "odd")]);
    layout = join(dir, "odd", "artifact");
    const index = asIndex(JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as unknown);
    const image = index.manifests.find((m) => m.annotations?.[REF_NAME] === "image");
    assert.ok(image);
    const manifest = asManifest(await readBlobJson(layout, image));
    imageDiffIds = asConfig(await readBlobJson(layout, manifest.config)).rootfs.diff_ids;
    ctd = await startContainerd();
  });
  after(async () => {
    await ctd?.stop();
    if (dir) await removeDir(dir);
  });

  function ready(t: TestContext): Containerd | null {
    if (skipOrFail(t, unavailable)) return null;
    assert.ok(ctd);
    return ctd;
  }

  test("an artifact given first is written after the image, so ctr unpacks the image", async (t) => {
    const c = ready(t);
    if (!c) return;
    const bundle = join(dir, "artifact-first.tar");
    await pack([`oci:${layout}:attestation`, `oci:${layout}:image`], bundle, join(dir, "cache"));
    const names = asIndex(
      JSON.parse((await tarMember(bundle, "index.json")).toString("utf8")) as unknown,
    ).manifests.map((m) => m.annotations?.[REF_NAME]);
    assert.deepEqual(names, ["localhost/artifact:image", "localhost/artifact:attestation"]);
    // ctr still exits 1 at the artifact (it cannot unpack one), but the image before it is in
    const ns = "artifact-first";
    const r = await c.importImage(bundle, { namespace: ns, check: false });
    assert.equal(r.code, 1, "ctr 1.6 exits 1 at a name it cannot unpack");
    await assertSnapshotsFor(c, ns, [{ ref: "localhost/artifact:image", diffIds: imageDiffIds }]);
  });

  test("unpack --images-only leaves the artifact out: ctr imports with exit 0", async (t) => {
    const c = ready(t);
    if (!c) return;
    const bundle = join(dir, "artifact-both.tar.xz");
    await pack([`oci:${layout}`], bundle, join(dir, "cache"), ["-q"]);
    const out = join(dir, "images-only.tar");
    await airpackOk(["unpack", bundle, "--images-only", "-o", out]);
    const names = asIndex(JSON.parse((await tarMember(out, "index.json")).toString("utf8")) as unknown).manifests.map(
      (m) => m.annotations?.[REF_NAME],
    );
    assert.deepEqual(names, ["localhost/artifact:image"]);
    const ns = "images-only";
    await c.importImage(out, { namespace: ns });
    assert.deepEqual(
      (await c.listImages(ns)).map((i) => i.name),
      ["localhost/artifact:image"],
    );
    await assertSnapshotsFor(c, ns, [{ ref: "localhost/artifact:image", diffIds: imageDiffIds }]);
  });
});
