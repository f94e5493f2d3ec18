/**
 * End-to-end: the whole fixture layout (4 tags, one multi-platform index) packed
 * with --all-platforms, unpacked and handed to the real ctr, podman and skopeo.
 * Expected digests come from the fixture layout itself, never from airpack.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";

import {
  FIXTURES,
  REF_NAME,
  airpackOk,
  asConfig,
  assertSnapshotsFor,
  layoutImages,
  pack,
  readLayoutIndex,
  runAirpack,
  sha256Of,
  sniff,
  tarMember,
  tarMembers,
  type Descriptor,
  type LayoutImage,
} from "../helpers/cli";
import { startContainerd, type Containerd } from "../helpers/peers/containerd";
import { createPodman, type Podman } from "../helpers/peers/podman";
import { peersUnavailable, run, skipOrFail } from "../helpers/peers/process";
import { createSkopeo, type Skopeo } from "../helpers/peers/skopeo";
import { removeDir, makeTempDir } from "../helpers/peers/temp";

const OCI = path.join(FIXTURES, "oci");
const TIMEOUT = 120_000;
/** airpack names images of an OCI layout DIR with only ref.name tags `localhost/<basename(DIR)>:<tag>`. */
const nameOf = (tag: string): string => `localhost/oci:${tag}`;

describe("airpack pack oci:LAYOUT --all-platforms → ctr, podman, skopeo", { timeout: 600_000 }, () => {
  let work = "";
  let cache = "";
  let bundle = "";
  let unavailable: string | null = null;
  let ctd: Containerd | null = null;
  let podman: Podman | null = null;
  let sk: Skopeo | null = null;
  let fixtureTop: Descriptor[] = [];
  let fixtureImages: LayoutImage[] = [];

  before(async () => {
    work = await makeTempDir("airpack-e2e-multi");
    cache = path.join(work, "cache");
    fixtureTop = (await readLayoutIndex(OCI)).manifests;
    fixtureImages = await layoutImages(OCI);
    unavailable = await peersUnavailable(["containerd", "ctr", "podman", "skopeo", "bash", "tar"]);
    if (unavailable === null) {
      ctd = await startContainerd();
      podman = await createPodman();
      sk = await createSkopeo();
    }
    bundle = path.join(work, "all.tar.xz");
    await pack([`oci:${OCI}`], bundle, cache, ["--all-platforms"]);
  });

  after(async () => {
    await ctd?.stop();
    await podman?.cleanup();
    await sk?.cleanup();
    if (work) await removeDir(work);
  });

  test("fixture layout has the 4 expected tags (sanity)", () => {
    assert.deepEqual(fixtureTop.map((d) => d.annotations?.[REF_NAME]).sort(), [
      "mixed",
      "multi",
      "uncompressed",
      "v2s2",
    ]);
  });

  test("inspect --json names every image localhost/oci:<tag> with the fixture digests", async () => {
    const r = await airpackOk(["inspect", "--json", bundle]);
    const parsed: unknown = JSON.parse(r.stdout.toString("utf8"));
    assert.ok(typeof parsed === "object" && parsed !== null && "images" in parsed && Array.isArray(parsed.images));
    const images = (parsed.images as unknown[]).map((i) => {
      assert.ok(typeof i === "object" && i !== null && "name" in i && "digest" in i);
      return [String(i.name), String(i.digest)];
    });
    const expected = fixtureTop.map((d) => [nameOf(d.annotations?.[REF_NAME] ?? ""), d.digest]);
    assert.deepEqual(images.sort(), expected.sort());
  });

  test(
    "unpack -o - | ctr images import - (host platform): every name, fixture digests",
    { timeout: TIMEOUT },
    async (t) => {
      if (skipOrFail(t, unavailable) || !ctd) return;
      const tar = await airpackOk(["unpack", bundle, "-o", "-"]);
      assert.equal(sniff(tar.stdout), "none", "unpack -o - writes a plain tar");
      const ns = "default-platform";
      await ctd.importImage(tar.stdout, { namespace: ns });
      const rows = await ctd.listImages(ns);
      assert.deepEqual(
        rows.map((r) => [r.name, r.digest, r.mediaType]).sort(),
        fixtureTop.map((d) => [nameOf(d.annotations?.[REF_NAME] ?? ""), d.digest, d.mediaType]).sort(),
      );
      const multi = rows.find((r) => r.name === nameOf("multi"));
      assert.deepEqual(multi?.platforms.sort(), ["linux/amd64", "linux/arm64/v8"]);
      const check = (await ctd.ctrOk(["images", "check"], { namespace: ns })).stdout.toString("utf8");
      for (const d of fixtureTop) {
        const line = check.split("\n").find((l) => l.startsWith(`${nameOf(d.annotations?.[REF_NAME] ?? "")} `));
        assert.match(line ?? "", /\bcomplete\b/, `ctr images check:\n${check}`);
      }
      // the host-platform layers really were unpacked: containerd keys committed snapshots by chain ID
      await assertSnapshotsFor(
        ctd,
        ns,
        fixtureImages
          .filter((i) => (i.config.architecture ?? "amd64") === "amd64")
          .map((i) => ({ ref: i.ref, diffIds: i.config.rootfs.diff_ids })),
      );
    },
  );

  test("unpack -o - | ctr images import --all-platforms -: every manifest present", { timeout: TIMEOUT }, async (t) => {
    if (skipOrFail(t, unavailable) || !ctd) return;
    const tar = await airpackOk(["unpack", bundle, "-o", "-"]);
    const ns = "all-platforms";
    await ctd.importImage(tar.stdout, { namespace: ns, allPlatforms: true, noUnpack: true });
    const rows = await ctd.listImages(ns);
    assert.deepEqual(
      rows.map((r) => [r.name, r.digest]).sort(),
      fixtureTop.map((d) => [nameOf(d.annotations?.[REF_NAME] ?? ""), d.digest]).sort(),
    );
    // every manifest, config and layer blob of every platform is in the content store, by its fixture digest
    const content = (await ctd.ctrOk(["content", "ls", "-q"], { namespace: ns })).stdout.toString("utf8");
    const have = new Set(content.split("\n").map((l) => l.trim()));
    for (const img of fixtureImages) {
      for (const d of [img.desc, img.manifest.config, ...img.manifest.layers]) {
        assert.ok(have.has(d.digest), `${img.ref} ${img.desc.digest}: ${d.digest} missing from containerd content`);
      }
    }
  });

  test("pack -o - | unpack - -o - | ctr images import - (streaming, real pipes)", { timeout: TIMEOUT }, async (t) => {
    if (skipOrFail(t, unavailable) || !ctd) return;
    // stdout of pack defaults to xz
    const head = await runAirpack(["pack", `oci:${OCI}:mixed`, "-q", "-o", "-", "--cache", path.join(work, "c2")]);
    assert.equal(head.code, 0, head.stderr);
    assert.equal(sniff(head.stdout), "xz");

    const ns = "stream";
    const bin = path.resolve(__dirname, "..", "..", "..", "bin", "airpack");
    const script = [
      "set -o pipefail",
      '"$0" "$1" pack "oci:$2" --all-platforms -q -o - --cache "$3" |',
      '  "$0" "$1" unpack - -q -o - |',
      '  ctr --address "$4" -n "$5" images import --snapshotter "$6" -',
      'echo "PIPESTATUS=${PIPESTATUS[*]}" >&2',
    ].join("\n");
    const r = await run(
      "bash",
      ["-c", script, process.execPath, bin, OCI, path.join(work, "c3"), ctd.address, ns, ctd.snapshotter],
      { timeoutMs: TIMEOUT },
    );
    assert.match(r.stderr, /PIPESTATUS=0 0 0/, r.stderr);
    assert.equal(r.code, 0, r.stderr);
    const rows = await ctd.listImages(ns);
    assert.deepEqual(
      rows.map((x) => [x.name, x.digest]).sort(),
      fixtureTop.map((d) => [nameOf(d.annotations?.[REF_NAME] ?? ""), d.digest]).sort(),
    );
  });

  test(
    "unpack --format docker-archive → podman load loads every image; skopeo inspect",
    { timeout: TIMEOUT },
    async (t) => {
      if (skipOrFail(t, unavailable) || !podman || !sk) return;
      const tarFile = path.join(work, "images.docker.tar");
      await airpackOk(["unpack", bundle, "--format", "docker-archive", "-o", tarFile]);
      const members = await tarMembers(tarFile);
      assert.ok(members.includes("manifest.json"), `no manifest.json in ${members.join(", ")}`);

      const loaded = await podman.load(tarFile);
      const names = fixtureTop.map((d) => nameOf(d.annotations?.[REF_NAME] ?? "")).sort();
      assert.deepEqual([...loaded.loaded].sort(), names, loaded.stdout.toString("utf8"));

      // podman's image ID is the config digest of the host-platform (amd64) manifest of each tag
      const images = await podman.images();
      for (const top of fixtureTop) {
        const tag = top.annotations?.[REF_NAME] ?? "";
        const fixture = fixtureImages.find(
          (i) => i.top.digest === top.digest && (i.config.architecture ?? "amd64") === "amd64",
        );
        assert.ok(fixture, tag);
        const img = images.find((i) => i.names.includes(nameOf(tag)));
        assert.ok(img, `${nameOf(tag)} not in podman images: ${JSON.stringify(images)}`);
        assert.equal(`sha256:${img.id}`, fixture.manifest.config.digest, tag);
        const inspect = await podman.imageInspect(nameOf(tag));
        assert.deepEqual(inspect.RootFS?.Layers, fixture.config.rootfs.diff_ids, tag);

        // skopeo reads the same archive image by image; its Layers are the DiffIDs
        const info: unknown = await sk.inspect(`docker-archive:${tarFile}:${nameOf(tag)}`);
        assert.ok(typeof info === "object" && info !== null && "Layers" in info, tag);
        assert.deepEqual(info.Layers, fixture.config.rootfs.diff_ids, tag);
        const cfg = asConfig(await sk.inspect(`docker-archive:${tarFile}:${nameOf(tag)}`, { config: true }));
        assert.deepEqual(cfg.rootfs.diff_ids, fixture.config.rootfs.diff_ids, tag);
      }

      // manifest.json entries point at config blobs whose bytes hash to the fixture config digests
      const manifestJson: unknown = JSON.parse((await tarMember(tarFile, "manifest.json")).toString("utf8"));
      assert.ok(Array.isArray(manifestJson));
      for (const entry of manifestJson as unknown[]) {
        assert.ok(typeof entry === "object" && entry !== null && "Config" in entry && typeof entry.Config === "string");
        const cfgBytes = await tarMember(tarFile, entry.Config);
        const digest = sha256Of(cfgBytes);
        assert.ok(
          fixtureImages.some((i) => i.manifest.config.digest === digest),
          `manifest.json Config ${entry.Config} is not a fixture config`,
        );
      }
    },
  );
});
