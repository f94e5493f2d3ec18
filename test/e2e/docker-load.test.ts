/**
 * End-to-end: airpack's outputs handed to a real docker daemon (Debian's docker.io, dockerd
 * 20.10, with a containerd of its own; test/helpers/peers/docker.ts). docker load reads only
 * docker's manifest.json, so what it shows is checked against the fixture layout: image IDs are
 * the fixture config digests, RootFS layers the fixture diff_ids, both read with node:crypto
 * here, never taken from airpack. Names are what docker itself prints for the names packed.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { after, before, describe, test, type TestContext } from "node:test";

import {
  FIXTURES,
  REF_NAME,
  airpackOk,
  blobPath,
  layoutImages,
  pack,
  readLayoutIndex,
  sha256File,
  sha256Of,
  sniffFile,
  tarMember,
  type LayoutImage,
} from "../helpers/cli";
import { startDocker, type Docker } from "../helpers/peers/docker";
import { peersUnavailable, runOk, skipOrFail } from "../helpers/peers/process";
import { makeTempDir, removeDir } from "../helpers/peers/temp";
import { inspectBundle } from "../helpers/registry-fixtures";

const OCI = path.join(FIXTURES, "oci");
const TIMEOUT = 180_000;
const HOST_ARCH = process.arch === "x64" ? "amd64" : process.arch;

/**
 * Fixture tags packed under full names, and the name docker prints for each (docker shows
 * docker.io/library/x as x and docker.io/u/x as u/x; other registries stay as they are).
 */
const NAMES: Record<string, { packed: string; shown: string }> = {
  v2s2: { packed: "docker.io/library/airpack-v2s2:1", shown: "airpack-v2s2:1" },
  multi: { packed: "docker.io/airpack/multi:2", shown: "airpack/multi:2" },
  uncompressed: { packed: "127.0.0.1:5000/airpack/unc:3", shown: "127.0.0.1:5000/airpack/unc:3" },
  mixed: { packed: "localhost/airpack/mixed:4", shown: "localhost/airpack/mixed:4" },
};
/** The fixture tags without a zstd layer. */
const NO_ZSTD = ["v2s2", "multi", "uncompressed"];

/** A copy of the fixture layout whose index names the images by the full names above. */
async function renamedLayout(dir: string): Promise<void> {
  await fs.cp(path.join(OCI, "blobs"), path.join(dir, "blobs"), { recursive: true });
  await fs.copyFile(path.join(OCI, "oci-layout"), path.join(dir, "oci-layout"));
  const index = await readLayoutIndex(OCI);
  index.manifests = index.manifests.map((d) => {
    const tag = d.annotations?.[REF_NAME] ?? "";
    const name = NAMES[tag];
    assert.ok(name, `fixture tag ${tag} has no name here`);
    return { ...d, annotations: { ...d.annotations, [REF_NAME]: name.packed } };
  });
  await fs.writeFile(path.join(dir, "index.json"), JSON.stringify(index));
}

/** Decompressed sha256 of a layer file, with the system gzip/zstd (not airpack). */
async function diffIdOfFile(file: string): Promise<string> {
  const fmt = await sniffFile(file);
  if (fmt === "none") return sha256File(file);
  assert.ok(fmt === "gzip" || fmt === "zstd", `${file}: ${fmt}`);
  return sha256Of((await runOk(fmt, ["-dc", file])).stdout);
}

describe("docker load (dockerd 20.10) of bundles and unpack outputs", { timeout: 900_000 }, () => {
  let work = "";
  let cache = "";
  let layout = "";
  let unavailable: string | null = null;
  let docker: Docker | null = null;
  /** The host-platform image of each fixture tag (what docker load takes from an index). */
  const host = new Map<string, LayoutImage>();

  before(async () => {
    work = await makeTempDir("airpack-e2e-docker");
    cache = path.join(work, "cache");
    layout = path.join(work, "named");
    await renamedLayout(layout);
    for (const img of await layoutImages(OCI)) {
      if ((img.config.architecture ?? "amd64") === HOST_ARCH) host.set(img.ref, img);
    }
    assert.deepEqual([...host.keys()].sort(), Object.keys(NAMES).sort());
    unavailable = await peersUnavailable(["dockerd", "docker", "containerd", "ctr", "unshare", "tar", "gzip", "zstd"]);
    if (unavailable === null) docker = await startDocker();
  });

  after(async () => {
    await docker?.stop();
    if (work) await removeDir(work);
  });

  function ready(t: TestContext): Docker | null {
    if (skipOrFail(t, unavailable)) return null;
    const d = docker;
    assert.ok(d);
    // every test starts with no images, whatever the one before left behind
    t.after(() => d.removeAllImages());
    return d;
  }

  const sources = (tags: readonly string[]): string[] => tags.map((tag) => `oci:${layout}:${NAMES[tag]!.packed}`);

  /**
   * docker shows every tag by its name, with the fixture config digest as ID and diff_ids as
   * layers, and nothing else but `others` ("name id").
   */
  async function assertLoaded(d: Docker, tags: readonly string[], others: readonly string[] = []): Promise<void> {
    for (const tag of tags) {
      const fixture = host.get(tag)!;
      const inspect = await d.inspect(NAMES[tag]!.shown);
      assert.equal(inspect.Id, fixture.manifest.config.digest, `${tag}: image ID`);
      // (one image ID can carry several tags: the legacy docker-archive has v2s2's config)
      assert.ok(inspect.RepoTags.includes(NAMES[tag]!.shown), `${tag}: RepoTags ${inspect.RepoTags.join(", ")}`);
      assert.deepEqual(inspect.RootFS?.Layers, fixture.config.rootfs.diff_ids, `${tag}: RootFS layers`);
      assert.equal(inspect.Architecture, HOST_ARCH, tag);
      // docker load records no manifest digest: an image loaded from a file has no RepoDigests.
      assert.deepEqual(inspect.RepoDigests, [], `${tag}: RepoDigests`);
    }
    const images = await d.images();
    assert.deepEqual(
      images.map((i) => `${i.repository}:${i.tag} ${i.id}`).sort(),
      [...tags.map((tag) => `${NAMES[tag]!.shown} ${host.get(tag)!.manifest.config.digest}`), ...others].sort(),
    );
  }

  test(
    "(a) unpack of a multi-image bundle → docker load: every name as docker shows it, IDs = config digests",
    { timeout: TIMEOUT },
    async (t) => {
      const d = ready(t);
      if (!d) return;
      const bundle = path.join(work, "a.tar.xz");
      await pack(sources(NO_ZSTD), bundle, cache, ["--all-platforms"]);
      const archive = path.join(work, "a.docker.tar");
      const r = await airpackOk(["unpack", bundle, "-o", archive]);
      assert.doesNotMatch(r.stderr, /warning/, "no zstd layers: no warning");

      // manifest.json names each image by its full name; its Config is a config of the fixture
      const manifestJson = JSON.parse((await tarMember(archive, "manifest.json")).toString("utf8")) as {
        Config: string;
        RepoTags: string[];
      }[];
      for (const e of manifestJson) {
        const tag = NO_ZSTD.find((x) => e.RepoTags.includes(NAMES[x]!.packed));
        assert.ok(tag, `manifest.json entry ${JSON.stringify(e.RepoTags)}`);
        assert.equal(sha256Of(await tarMember(archive, e.Config)), host.get(tag)!.manifest.config.digest, tag);
      }

      const loaded = await d.load(archive);
      assert.deepEqual(loaded.loaded.sort(), NO_ZSTD.map((tag) => NAMES[tag]!.shown).sort(), loaded.stdout.toString());
      await assertLoaded(d, NO_ZSTD);
    },
  );

  for (const ext of ["tar", "tar.xz", "tar.gz"]) {
    test(`(b) a .${ext} bundle loads directly: docker load -i b.${ext}`, { timeout: TIMEOUT }, async (t) => {
      const d = ready(t);
      if (!d) return;
      const bundle = path.join(work, `b.${ext}`);
      await pack(sources(NO_ZSTD), bundle, cache, ["--all-platforms"]);
      const loaded = await d.load(bundle);
      assert.deepEqual(loaded.loaded.sort(), NO_ZSTD.map((tag) => NAMES[tag]!.shown).sort());
      await assertLoaded(d, NO_ZSTD);
    });
  }

  test("(b) a .tar.zst bundle is refused: dockerd 20.10 cannot decompress zstd", { timeout: TIMEOUT }, async (t) => {
    const d = ready(t);
    if (!d) return;
    const bundle = path.join(work, "b.tar.zst");
    await pack(sources(NO_ZSTD), bundle, cache, ["--all-platforms"]);
    const r = await d.load(bundle, { check: false });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /invalid tar header/);
    assert.deepEqual(await d.images(), []);
  });

  test(
    "(c) a digest-restored bundle (--layers uncompressed, recipes) → unpack → docker load",
    { timeout: TIMEOUT },
    async (t) => {
      const d = ready(t);
      if (!d) return;
      const bundle = path.join(work, "c.tar.xz");
      await pack(sources(NO_ZSTD), bundle, cache, ["--all-platforms", "--layers", "uncompressed"]);
      const modes = (await inspectBundle(bundle)).flatMap((i) =>
        i.platforms.flatMap((p) => p.layers.map((l) => l.mode)),
      );
      assert.ok(
        modes.some((m) => m.startsWith("recipe: ")),
        `no recipe layers: ${modes.join(", ")}`,
      );

      const archive = path.join(work, "c.docker.tar");
      await airpackOk(["unpack", bundle, "-o", archive]);
      // restored: the index lists the fixture's own digests, and every layer file docker reads is a
      // fixture layer blob, byte for byte
      const extracted = path.join(work, "c-x");
      await fs.mkdir(extracted);
      await runOk("tar", ["-xf", archive, "-C", extracted]);
      const fixtureTop = new Map(
        (await readLayoutIndex(OCI)).manifests.map((m) => [NAMES[m.annotations?.[REF_NAME] ?? ""]?.packed, m.digest]),
      );
      const index = await readLayoutIndex(extracted);
      assert.deepEqual(
        index.manifests.map((m) => [m.annotations?.[REF_NAME], m.digest]).sort(),
        NO_ZSTD.map((tag) => [NAMES[tag]!.packed, fixtureTop.get(NAMES[tag]!.packed)]).sort(),
      );
      const manifestJson = JSON.parse(await fs.readFile(path.join(extracted, "manifest.json"), "utf8")) as {
        RepoTags: string[];
        Layers: string[];
      }[];
      for (const e of manifestJson) {
        const tag = NO_ZSTD.find((x) => e.RepoTags.includes(NAMES[x]!.packed))!;
        const want = host.get(tag)!.manifest.layers.map((l) => l.digest);
        const have = await Promise.all(e.Layers.map((p) => sha256File(path.join(extracted, p))));
        assert.deepEqual(have, want, `${tag}: layer files are the original blobs`);
      }

      const loaded = await d.load(archive);
      assert.deepEqual(loaded.loaded.sort(), NO_ZSTD.map((tag) => NAMES[tag]!.shown).sort());
      await assertLoaded(d, NO_ZSTD);
      await d.removeAllImages();

      // the bundle itself (uncompressed layers, converted manifests) loads too, to the same IDs
      const direct = await d.load(bundle);
      assert.deepEqual(direct.loaded.sort(), NO_ZSTD.map((tag) => NAMES[tag]!.shown).sort());
      await assertLoaded(d, NO_ZSTD);
    },
  );

  test(
    "(d) a bundle with a zstd layer: docker load fails without help, unpack warns; --for docker loads",
    { timeout: TIMEOUT },
    async (t) => {
      const d = ready(t);
      if (!d) return;
      // What the demo packs (every fixture image, the mixed gzip+zstd+plain one included) plus names.
      const tags = ["mixed", ...NO_ZSTD];
      const legacyTar = path.join(FIXTURES, "docker-legacy.tar");
      const [legacyEntry] = JSON.parse((await tarMember(legacyTar, "manifest.json")).toString("utf8")) as {
        Config: string;
        RepoTags: string[];
      }[];
      assert.ok(legacyEntry);
      const legacy = legacyEntry.RepoTags[0]!; // example.com/fixtures/legacy:1.0, shown as it is
      const legacyId = sha256Of(await tarMember(legacyTar, legacyEntry.Config));
      const bundle = path.join(work, "d.tar.xz");
      await pack([...sources(tags), `docker-archive:${legacyTar}`], bundle, cache, ["--all-platforms"]);

      // the bundle itself and a plain unpack both fail in docker, on the zstd layer
      const direct = await d.load(bundle, { check: false });
      assert.notEqual(direct.code, 0);
      assert.match(direct.stderr, /invalid tar header/);
      const plain = path.join(work, "d.docker.tar");
      const r = await airpackOk(["unpack", bundle, "-o", plain]);
      const warnings = r.stderr.split("\n").filter((l) => l.startsWith("warning:"));
      assert.equal(warnings.length, 1, r.stderr);
      assert.match(
        warnings[0]!,
        /holds 1 zstd layer\(s\): docker load \(20\.10\) refuses zstd layers; use --for docker/,
      );
      const refused = await d.load(plain, { check: false });
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /invalid tar header/);
      await d.removeAllImages();

      // --for docker: one line, no warning; every image loads
      const archive = path.join(work, "d.for-docker.tar");
      const ok = await airpackOk(["unpack", bundle, "--for", "docker", "--cache", cache, "-o", archive]);
      assert.doesNotMatch(ok.stderr, /warning/);
      assert.match(ok.stderr, /1 zstd layer\(s\) converted to gzip/);
      const loaded = await d.load(archive);
      assert.deepEqual(loaded.loaded.sort(), [...tags.map((tag) => NAMES[tag]!.shown), legacy].sort());
      await assertLoaded(d, tags, [`${legacy} ${legacyId}`]);
      await d.removeAllImages();

      // only the zstd layer changed: it is now gzip holding the same tar; the rest are the fixture blobs
      const extracted = path.join(work, "d-x");
      await fs.mkdir(extracted);
      await runOk("tar", ["-xf", archive, "-C", extracted]);
      const mixed = host.get("mixed")!;
      const index = await readLayoutIndex(extracted);
      const entry = index.manifests.find((m) => m.annotations?.[REF_NAME] === NAMES.mixed!.packed);
      assert.ok(entry);
      const manifest = JSON.parse((await fs.readFile(blobPath(extracted, entry.digest))).toString("utf8")) as {
        layers: { mediaType: string; digest: string }[];
      };
      assert.equal(sha256Of(await fs.readFile(blobPath(extracted, entry.digest))), entry.digest);
      for (const [i, l] of manifest.layers.entries()) {
        const src = mixed.manifest.layers[i]!;
        const file = blobPath(extracted, l.digest);
        assert.equal(await sha256File(file), l.digest);
        assert.equal(await diffIdOfFile(file), mixed.config.rootfs.diff_ids[i], `layer ${i}`);
        if (src.mediaType.endsWith("+zstd")) {
          assert.equal(l.mediaType, "application/vnd.oci.image.layer.v1.tar+gzip");
          assert.equal(await sniffFile(file), "gzip");
        } else {
          assert.deepEqual([l.mediaType, l.digest], [src.mediaType, src.digest], `layer ${i} kept`);
        }
      }
      // the converted image has a new manifest digest; images without zstd layers keep theirs
      const fixtureTop = new Map(
        (await readLayoutIndex(OCI)).manifests.map((m) => [NAMES[m.annotations?.[REF_NAME] ?? ""]?.packed, m.digest]),
      );
      for (const m of index.manifests) {
        const name = m.annotations?.[REF_NAME] ?? "";
        if (name === NAMES.mixed!.packed) assert.notEqual(m.digest, fixtureTop.get(name));
        else if (fixtureTop.has(name)) assert.equal(m.digest, fixtureTop.get(name), name);
      }

      // the same through a pipe: unpack -o - | docker load
      const piped = await airpackOk(["unpack", bundle, "--for", "docker", "--cache", cache, "-q", "-o", "-"]);
      assert.equal(piped.stderr, "");
      const fromStdin = await d.load(piped.stdout);
      assert.deepEqual(fromStdin.loaded.sort(), [...tags.map((tag) => NAMES[tag]!.shown), legacy].sort());
      assert.equal((await d.inspect(NAMES.mixed!.shown)).Id, mixed.manifest.config.digest);
    },
  );

  test("(d) --for docker on a digest-restored bundle with a zstd layer", { timeout: TIMEOUT }, async (t) => {
    const d = ready(t);
    if (!d) return;
    const tags = ["mixed", "v2s2"];
    const bundle = path.join(work, "dr.tar.zst");
    await pack(sources(tags), bundle, cache, ["--layers", "uncompressed"]);
    const archive = path.join(work, "dr.for-docker.tar");
    await airpackOk(["unpack", bundle, "--for", "docker", "--cache", cache, "-o", archive]);
    const loaded = await d.load(archive);
    assert.deepEqual(loaded.loaded.sort(), tags.map((tag) => NAMES[tag]!.shown).sort());
    await assertLoaded(d, tags);
    // v2s2 has no zstd layer: its recipe layers were rebuilt and its digest restored
    const index = JSON.parse((await tarMember(archive, "index.json")).toString("utf8")) as {
      manifests: { digest: string; annotations?: Record<string, string> }[];
    };
    const v2s2 = index.manifests.find((m) => m.annotations?.[REF_NAME] === NAMES.v2s2!.packed);
    const fixtureV2s2 = (await readLayoutIndex(OCI)).manifests.find((m) => m.annotations?.[REF_NAME] === "v2s2");
    assert.equal(v2s2?.digest, fixtureV2s2?.digest);
  });
});
