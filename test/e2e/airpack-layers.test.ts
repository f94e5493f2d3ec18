/**
 * End-to-end: layer conversion (--layers keep|uncompressed|gzip|zstd) and the
 * oci / oci-archive unpack formats, checked with the real ctr, podman and
 * skopeo. Expected values come from the fixture layout, fixtures.json and
 * sha256 computed here, never from airpack's own output.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";

import {
  FIXTURES,
  REF_NAME,
  airpackOk,
  asManifest,
  assertSnapshotsFor,
  blobPath,
  layoutImages,
  pack,
  readLayoutIndex,
  sha256File,
  sha256Of,
  sniffFile,
  tarMember,
  type ImageManifest,
  type LayoutImage,
  type OuterFormat,
} from "../helpers/cli";
import { startContainerd, type Containerd } from "../helpers/peers/containerd";
import { createPodman, type Podman } from "../helpers/peers/podman";
import { peersUnavailable, runOk, skipOrFail } from "../helpers/peers/process";
import { createSkopeo, type Skopeo } from "../helpers/peers/skopeo";
import { makeTempDir, removeDir } from "../helpers/peers/temp";

const OCI = path.join(FIXTURES, "oci");
const TIMEOUT = 120_000;
const nameOf = (tag: string): string => `localhost/oci:${tag}`;

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_LAYER = "application/vnd.oci.image.layer.v1.tar";
const DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar";

function fixture(images: readonly LayoutImage[], tag: string): LayoutImage {
  const img = images.find((i) => i.ref === tag);
  assert.ok(img, `fixture tag ${tag} missing`);
  return img;
}

/** Decompressed sha256 of a layer blob, using the system zstd/gzip (not airpack). */
async function diffIdOfBlob(file: string): Promise<string> {
  const fmt = await sniffFile(file);
  if (fmt === "none") return sha256File(file);
  const tool = fmt === "zstd" ? "zstd" : fmt === "gzip" ? "gzip" : fmt === "xz" ? "xz" : null;
  assert.ok(tool, `${file}: unknown layer compression`);
  return sha256Of((await runOk(tool, ["-dc", file])).stdout);
}

describe("airpack --layers and unpack formats → ctr, podman, skopeo", { timeout: 600_000 }, () => {
  let work = "";
  let cache = "";
  let unavailable: string | null = null;
  let ctd: Containerd | null = null;
  let podman: Podman | null = null;
  let sk: Skopeo | null = null;
  let fixtures: LayoutImage[] = [];

  before(async () => {
    work = await makeTempDir("airpack-e2e-layers");
    cache = path.join(work, "cache");
    fixtures = await layoutImages(OCI);
    unavailable = await peersUnavailable(["containerd", "ctr", "podman", "skopeo", "tar", "gzip", "zstd"]);
    if (unavailable === null) {
      ctd = await startContainerd();
      podman = await createPodman();
      sk = await createSkopeo();
    }
  });

  after(async () => {
    await ctd?.stop();
    await podman?.cleanup();
    await sk?.cleanup();
    if (work) await removeDir(work);
  });

  test(
    "oci:LAYOUT:mixed → .tar.zst → oci-archive: skopeo sees the fixture manifest bytes; podman loads it",
    {
      timeout: TIMEOUT,
    },
    async (t) => {
      if (skipOrFail(t, unavailable) || !podman || !sk) return;
      const mixed = fixture(fixtures, "mixed");
      const bundle = path.join(work, "M.tar.zst");
      await pack([`oci:${OCI}:mixed`], bundle, cache);
      assert.equal(await sniffFile(bundle), "zstd");
      const archive = path.join(work, "O.tar");
      await airpackOk(["unpack", bundle, "--format", "oci-archive", "-o", archive]);
      assert.equal(await sniffFile(archive), "none");

      const raw = await sk.inspectRawBytes(`oci-archive:${archive}:${nameOf("mixed")}`);
      assert.equal(sha256Of(raw), mixed.desc.digest);
      assert.ok(raw.equals(await fs.readFile(blobPath(OCI, mixed.desc.digest))), "manifest bytes changed");

      const loaded = await podman.load(archive);
      assert.deepEqual(loaded.loaded, [nameOf("mixed")]);
      const inspect = await podman.imageInspect(nameOf("mixed"));
      assert.equal(inspect.Digest, mixed.desc.digest);
      assert.equal(`sha256:${inspect.Id}`, mixed.manifest.config.digest);
      assert.deepEqual(inspect.RootFS?.Layers, mixed.config.rootfs.diff_ids);
      await podman.removeAllImages();
    },
  );

  test(
    "--layers uncompressed: layer digest = diff_id, uncompressed media types; ctr imports; skopeo copies",
    {
      timeout: TIMEOUT,
    },
    async (t) => {
      const bundle = path.join(work, "U.tar.zst");
      // The plain converted mode; digest preservation (the default) is tested in preserve-digests.test.ts.
      await pack([`oci:${OCI}:mixed`, `oci:${OCI}:v2s2`], bundle, cache, [
        "--layers",
        "uncompressed",
        "--no-preserve-digests",
      ]);
      const dir = path.join(work, "udir");
      await airpackOk(["unpack", bundle, "--format", "oci", "-o", dir]);

      const images = await layoutImages(dir); // re-hashes every manifest and config blob
      assert.deepEqual(images.map((i) => i.ref).sort(), [nameOf("mixed"), nameOf("v2s2")]);
      for (const img of images) {
        const src = fixture(fixtures, img.ref.replace(/^localhost\/oci:/, ""));
        assert.deepEqual(img.config.rootfs.diff_ids, src.config.rootfs.diff_ids, `${img.ref}: diff_ids changed`);
        const docker = img.desc.mediaType === DOCKER_MANIFEST;
        assert.equal(img.desc.mediaType, src.desc.mediaType, `${img.ref}: manifest type changed`);
        assert.equal(img.manifest.layers.length, img.config.rootfs.diff_ids.length);
        for (const [i, layer] of img.manifest.layers.entries()) {
          assert.equal(layer.digest, img.config.rootfs.diff_ids[i], `${img.ref} layer ${i}`);
          assert.equal(layer.mediaType, docker ? DOCKER_LAYER : OCI_LAYER, `${img.ref} layer ${i}`);
          const file = blobPath(dir, layer.digest);
          assert.equal(await sha256File(file), layer.digest, `${img.ref} layer ${i} blob`);
          assert.equal((await fs.stat(file)).size, layer.size, `${img.ref} layer ${i} size`);
          assert.equal(await sniffFile(file), "none", `${img.ref} layer ${i} is not a plain tar`);
        }
      }
      if (skipOrFail(t, unavailable) || !ctd || !sk) return;

      const ns = "uncompressed";
      const tar = await airpackOk(["unpack", bundle, "-o", "-"]);
      await ctd.importImage(tar.stdout, { namespace: ns });
      const rows = await ctd.listImages(ns);
      const expected = await Promise.all(
        (await readLayoutIndex(dir)).manifests.map(async (d) => [
          d.annotations?.[REF_NAME] ?? "",
          await sha256File(blobPath(dir, d.digest)),
        ]),
      );
      assert.deepEqual(rows.map((r) => [r.name, r.digest]).sort(), expected.sort());
      await assertSnapshotsFor(
        ctd,
        ns,
        images.map((i) => ({ ref: i.ref, diffIds: i.config.rootfs.diff_ids })),
      );

      // skopeo 1.9's oci: transport only sees index entries with OCI media types (it cannot read the
      // fixture's own oci:fixtures/out/oci:v2s2 either), so only the OCI manifests go through it.
      for (const img of images.filter((i) => i.desc.mediaType === OCI_MANIFEST)) {
        const other = path.join(work, `copied-${img.ref.replace(/\W/g, "_")}`);
        await sk.copy(`oci:${dir}:${img.ref}`, `oci:${other}:copy`, ["--preserve-digests"]);
        const raw = await sk.inspectRawBytes(`oci:${other}:copy`);
        assert.equal(sha256Of(raw), img.desc.digest, `${img.ref}: skopeo rewrote the manifest`);
      }
    },
  );

  const modes: { mode: string; layer: (l: string) => string; compression: OuterFormat | null }[] = [
    { mode: "keep", layer: (l) => l, compression: null },
    { mode: "zstd", layer: () => "application/vnd.oci.image.layer.v1.tar+zstd", compression: "zstd" },
    { mode: "gzip", layer: () => "application/vnd.oci.image.layer.v1.tar+gzip", compression: "gzip" },
  ];
  for (const { mode, layer, compression } of modes) {
    test(
      `mixed gzip+zstd+plain image, --layers ${mode}: ctr imports and unpacks; podman loads`,
      {
        timeout: TIMEOUT,
      },
      async (t) => {
        const mixed = fixture(fixtures, "mixed");
        const bundle = path.join(work, `mixed-${mode}.tar`);
        await pack([`oci:${OCI}:mixed`], bundle, cache, ["--layers", mode]);
        const archive = path.join(work, `mixed-${mode}.oci.tar`);
        await airpackOk(["unpack", bundle, "--format", "oci-archive", "-o", archive]);

        // the manifest inside the archive, read with tar, not with airpack
        const index = JSON.parse((await tarMember(archive, "index.json")).toString("utf8")) as unknown;
        assert.ok(
          typeof index === "object" && index !== null && "manifests" in index && Array.isArray(index.manifests),
        );
        assert.equal(index.manifests.length, 1);
        const top: unknown = index.manifests[0];
        assert.ok(typeof top === "object" && top !== null && "digest" in top && typeof top.digest === "string");
        const manifestBytes = await tarMember(archive, `blobs/sha256/${top.digest.slice("sha256:".length)}`);
        assert.equal(sha256Of(manifestBytes), top.digest);
        const manifest: ImageManifest = asManifest(JSON.parse(manifestBytes.toString("utf8")) as unknown);
        if (mode === "keep") assert.equal(top.digest, mixed.desc.digest);
        assert.deepEqual(
          manifest.layers.map((l) => l.mediaType),
          mixed.manifest.layers.map((l) => layer(l.mediaType)),
        );
        // every layer blob decompresses (system zstd/gzip) to its fixture diff_id
        const extracted = path.join(work, `x-${mode}`);
        await fs.mkdir(extracted);
        await runOk("tar", ["-xf", archive, "-C", extracted]);
        for (const [i, l] of manifest.layers.entries()) {
          const file = blobPath(extracted, l.digest);
          assert.equal(await sha256File(file), l.digest);
          if (compression !== null) assert.equal(await sniffFile(file), compression, `layer ${i}`);
          assert.equal(await diffIdOfBlob(file), mixed.config.rootfs.diff_ids[i], `layer ${i}`);
        }

        if (skipOrFail(t, unavailable) || !ctd || !podman || !sk) return;
        const ns = `mixed-${mode}`;
        const tar = await airpackOk(["unpack", bundle, "-o", "-"]);
        await ctd.importImage(tar.stdout, { namespace: ns });
        const rows = await ctd.listImages(ns);
        assert.deepEqual(
          rows.map((r) => [r.name, r.digest]),
          [[nameOf("mixed"), top.digest]],
        );
        const check = (await ctd.ctrOk(["images", "check"], { namespace: ns })).stdout.toString("utf8");
        assert.match(check, /\bcomplete\b/, check);
        await assertSnapshotsFor(ctd, ns, [{ ref: nameOf("mixed"), diffIds: mixed.config.rootfs.diff_ids }]);

        const loaded = await podman.load(archive);
        assert.deepEqual(loaded.loaded, [nameOf("mixed")]);
        const inspect = await podman.imageInspect(nameOf("mixed"));
        assert.equal(inspect.Digest, top.digest);
        assert.deepEqual(inspect.RootFS?.Layers, mixed.config.rootfs.diff_ids);
        await podman.removeAllImages();
      },
    );
  }

  for (const mode of ["gzip", "zstd", "uncompressed"]) {
    test(
      `every source and platform with --layers ${mode}: layers decode to their diff_ids; ctr --all-platforms`,
      {
        timeout: TIMEOUT,
      },
      async (t) => {
        const sources = [
          `oci:${OCI}`,
          `oci-archive:${FIXTURES}/mixed.oci.tar`,
          `docker-archive:${FIXTURES}/docker-legacy.tar`,
          `docker-archive:${FIXTURES}/docker-legacy-classic.tar`,
          `docker-archive:${FIXTURES}/docker-oci.tar`,
        ];
        const bundle = path.join(work, `every-${mode}.tar.zst`);
        const plain = mode === "uncompressed" ? ["--no-preserve-digests"] : [];
        await pack(sources, bundle, cache, ["--all-platforms", "--layers", mode, ...plain]);
        const archive = path.join(work, `every-${mode}.oci.tar`);
        await airpackOk(["unpack", bundle, "-o", archive]);
        const dir = path.join(work, `every-${mode}`);
        await fs.mkdir(dir);
        await runOk("tar", ["-xf", archive, "-C", dir]);
        const images = await layoutImages(dir);
        assert.equal(new Set(images.map((i) => i.ref)).size, 8);
        const want = mode === "uncompressed" ? "none" : mode;
        const seen = new Set<string>();
        for (const img of images) {
          assert.equal(img.manifest.layers.length, img.config.rootfs.diff_ids.length, img.ref);
          for (const [i, l] of img.manifest.layers.entries()) {
            if (seen.has(`${l.digest} ${img.config.rootfs.diff_ids[i]}`)) continue;
            seen.add(`${l.digest} ${img.config.rootfs.diff_ids[i]}`);
            const file = blobPath(dir, l.digest);
            assert.equal(await sha256File(file), l.digest, `${img.ref} layer ${i}`);
            assert.equal(await sniffFile(file), want, `${img.ref} layer ${i} (${l.mediaType})`);
            assert.equal(await diffIdOfBlob(file), img.config.rootfs.diff_ids[i], `${img.ref} layer ${i}`);
          }
        }
        if (skipOrFail(t, unavailable) || !ctd) return;
        const ns = `every-${mode}`;
        await ctd.importImage(await fs.readFile(archive), { namespace: ns, allPlatforms: true });
        const rows = await ctd.listImages(ns);
        const index = await readLayoutIndex(dir);
        assert.deepEqual(
          rows.map((r) => [r.name, r.digest]).sort(),
          index.manifests.map((d) => [d.annotations?.[REF_NAME] ?? "", d.digest]).sort(),
        );
        await assertSnapshotsFor(
          ctd,
          ns,
          images.map((i) => ({ ref: `${i.ref} ${i.config.architecture ?? ""}`, diffIds: i.config.rootfs.diff_ids })),
        );
      },
    );
  }

  test("v2s2 with --layers zstd becomes an OCI manifest; ctr and podman take it", { timeout: TIMEOUT }, async (t) => {
    if (skipOrFail(t, unavailable) || !ctd || !podman || !sk) return;
    const v2s2 = fixture(fixtures, "v2s2");
    assert.equal(v2s2.desc.mediaType, DOCKER_MANIFEST);
    const bundle = path.join(work, "v2s2-zstd.tar.xz");
    await pack([`oci:${OCI}:v2s2`], bundle, cache, ["--layers", "zstd"]);
    const archive = path.join(work, "v2s2-zstd.oci.tar");
    await airpackOk(["unpack", bundle, "--format", "oci-archive", "-o", archive]);

    const raw = await sk.inspectRawBytes(`oci-archive:${archive}:${nameOf("v2s2")}`);
    const parsed = JSON.parse(raw.toString("utf8")) as unknown;
    const manifest = asManifest(parsed);
    assert.equal(manifest.mediaType, OCI_MANIFEST);
    assert.equal(manifest.config.mediaType, "application/vnd.oci.image.config.v1+json");
    assert.deepEqual(
      manifest.layers.map((l) => l.mediaType),
      v2s2.manifest.layers.map(() => "application/vnd.oci.image.layer.v1.tar+zstd"),
    );
    const cfg: unknown = await sk.inspect(`oci-archive:${archive}:${nameOf("v2s2")}`, { config: true });
    assert.ok(typeof cfg === "object" && cfg !== null && "rootfs" in cfg);
    assert.deepEqual(cfg.rootfs, { type: "layers", diff_ids: v2s2.config.rootfs.diff_ids });

    const ns = "v2s2-zstd";
    await ctd.importImage(await fs.readFile(archive), { namespace: ns });
    const rows = await ctd.listImages(ns);
    assert.deepEqual(
      rows.map((r) => [r.name, r.digest, r.mediaType]),
      [[nameOf("v2s2"), sha256Of(raw), OCI_MANIFEST]],
    );
    await assertSnapshotsFor(ctd, ns, [{ ref: nameOf("v2s2"), diffIds: v2s2.config.rootfs.diff_ids }]);

    const loaded = await podman.load(archive);
    assert.deepEqual(loaded.loaded, [nameOf("v2s2")]);
    const inspect = await podman.imageInspect(nameOf("v2s2"));
    assert.equal(inspect.Digest, sha256Of(raw));
    assert.deepEqual(inspect.RootFS?.Layers, v2s2.config.rootfs.diff_ids);
    await podman.removeAllImages();
  });
});
