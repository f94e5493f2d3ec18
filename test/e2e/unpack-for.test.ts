/**
 * End-to-end: `unpack --for containerd|k3s|podman` handed to the real ctr 1.6 and podman 4.3 (docker:
 * docker-load.test.ts). Every fixture image, the gzip+zstd+plain one included, goes in; digests
 * and diff_ids expected come from the fixture layout, never from airpack.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";

import {
  FIXTURES,
  REF_NAME,
  airpackOk,
  assertSnapshotsFor,
  layoutImages,
  pack,
  readLayoutIndex,
  tarMembers,
  type Descriptor,
  type LayoutImage,
} from "../helpers/cli";
import { startContainerd, type Containerd } from "../helpers/peers/containerd";
import { createPodman, type Podman } from "../helpers/peers/podman";
import { peersUnavailable, skipOrFail } from "../helpers/peers/process";
import { makeTempDir, removeDir } from "../helpers/peers/temp";

const OCI = path.join(FIXTURES, "oci");
const TIMEOUT = 120_000;
const nameOf = (tag: string): string => `localhost/oci:${tag}`;

describe("unpack --for containerd|k3s|podman → ctr, podman", { timeout: 600_000 }, () => {
  let work = "";
  let bundle = "";
  let unavailable: string | null = null;
  let ctd: Containerd | null = null;
  let podman: Podman | null = null;
  let top: Descriptor[] = [];
  let images: LayoutImage[] = [];

  before(async () => {
    work = await makeTempDir("airpack-e2e-for");
    top = (await readLayoutIndex(OCI)).manifests;
    images = await layoutImages(OCI);
    unavailable = await peersUnavailable(["containerd", "ctr", "podman", "tar"]);
    if (unavailable === null) {
      ctd = await startContainerd();
      podman = await createPodman();
    }
    bundle = path.join(work, "all.tar.xz");
    await pack([`oci:${OCI}`], bundle, path.join(work, "cache"), ["--all-platforms"]);
  });

  after(async () => {
    await ctd?.stop();
    await podman?.cleanup();
    if (work) await removeDir(work);
  });

  for (const target of ["containerd", "k3s"] as const) {
    test(
      `--for ${target} -o - | ctr images import${target === "k3s" ? " --all-platforms" : ""} -`,
      { timeout: TIMEOUT },
      async (t) => {
        if (skipOrFail(t, unavailable) || !ctd) return;
        const tar = await airpackOk(["unpack", bundle, "--for", target, "-o", "-"]);
        const ns = `for-${target}`;
        // k3s imports with all platforms, as ctr --all-platforms does
        await ctd.importImage(tar.stdout, { namespace: ns, allPlatforms: target === "k3s" });
        const rows = await ctd.listImages(ns);
        assert.deepEqual(
          rows.map((r) => [r.name, r.digest]).sort(),
          top.map((d) => [nameOf(d.annotations?.[REF_NAME] ?? ""), d.digest]).sort(),
          "every image, with the fixture digests (zstd layers kept)",
        );
        await assertSnapshotsFor(
          ctd,
          ns,
          images
            .filter((i) => (i.config.architecture ?? "amd64") === "amd64")
            .map((i) => ({ ref: i.ref, diffIds: i.config.rootfs.diff_ids })),
        );
      },
    );
  }

  test("--for podman → podman load: every image, zstd layers included", { timeout: TIMEOUT }, async (t) => {
    if (skipOrFail(t, unavailable) || !podman) return;
    const file = path.join(work, "podman.tar");
    await airpackOk(["unpack", bundle, "--for", "podman", "-o", file]);
    assert.ok((await tarMembers(file)).includes("manifest.json"));
    const loaded = await podman.load(file);
    assert.deepEqual([...loaded.loaded].sort(), top.map((d) => nameOf(d.annotations?.[REF_NAME] ?? "")).sort());
    for (const d of top) {
      const tag = d.annotations?.[REF_NAME] ?? "";
      const fixture = images.find((i) => i.top.digest === d.digest && (i.config.architecture ?? "amd64") === "amd64");
      assert.ok(fixture, tag);
      const inspect = await podman.imageInspect(nameOf(tag));
      assert.equal(`sha256:${inspect.Id}`, fixture.manifest.config.digest, tag);
      assert.deepEqual(inspect.RootFS?.Layers, fixture.config.rootfs.diff_ids, tag);
    }
    await podman.removeAllImages();
  });
});
