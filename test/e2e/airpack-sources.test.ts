/**
 * End-to-end: every source transport (oci-archive:, docker-archive: in its
 * three layouts) packed, unpacked and handed to the real ctr and podman;
 * blob de-duplication across sources; foreign (non-distributable) layers.
 * Expected values are read from the source archives with the system tar and
 * hashed here, never taken from airpack's output.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";

import {
  FIXTURES,
  REF_NAME,
  airpackOk,
  asConfig,
  asIndex,
  asManifest,
  assertSnapshotsFor,
  layoutImages,
  pack,
  readLayoutIndex,
  runAirpack,
  sha256Of,
  tarMember,
  tarMembers,
} from "../helpers/cli";
import { startContainerd, type Containerd } from "../helpers/peers/containerd";
import { createPodman, type Podman } from "../helpers/peers/podman";
import { peersUnavailable, runOk, skipOrFail } from "../helpers/peers/process";
import { makeTempDir, removeDir } from "../helpers/peers/temp";

const TIMEOUT = 120_000;

/** What a source archive holds, read with tar + node:crypto. */
interface SourceImage {
  source: string;
  /** Exact expected name, or a pattern when the name is derived by airpack from a file name. */
  name: string | RegExp;
  configDigest: string;
  diffIds: string[];
  /** The source's own manifest digest when it has one (OCI layouts), which --layers keep must preserve. */
  manifestDigest: string | null;
}

async function ociArchiveImage(file: string, source: string): Promise<SourceImage> {
  const index = asIndex(JSON.parse((await tarMember(file, "index.json")).toString("utf8")) as unknown);
  assert.equal(index.manifests.length, 1);
  const top = index.manifests[0];
  assert.ok(top);
  const hex = (d: string): string => d.slice("sha256:".length);
  const manifestBytes = await tarMember(file, `blobs/sha256/${hex(top.digest)}`);
  assert.equal(sha256Of(manifestBytes), top.digest);
  const manifest = asManifest(JSON.parse(manifestBytes.toString("utf8")) as unknown);
  const configBytes = await tarMember(file, `blobs/sha256/${hex(manifest.config.digest)}`);
  assert.equal(sha256Of(configBytes), manifest.config.digest);
  const tag = top.annotations?.[REF_NAME] ?? "";
  return {
    source,
    name: new RegExp(`^localhost/[a-z0-9._-]+:${tag}$`),
    configDigest: manifest.config.digest,
    diffIds: asConfig(JSON.parse(configBytes.toString("utf8")) as unknown).rootfs.diff_ids,
    manifestDigest: top.digest,
  };
}

async function dockerArchiveImage(file: string, source: string): Promise<SourceImage> {
  const entries = JSON.parse((await tarMember(file, "manifest.json")).toString("utf8")) as unknown;
  assert.ok(Array.isArray(entries) && entries.length === 1);
  const entry: unknown = entries[0];
  assert.ok(typeof entry === "object" && entry !== null && "Config" in entry && "RepoTags" in entry);
  assert.ok(typeof entry.Config === "string" && Array.isArray(entry.RepoTags));
  const configBytes = await tarMember(file, entry.Config);
  const members = await tarMembers(file);
  let manifestDigest: string | null = null;
  if (members.includes("oci-layout") && members.includes("index.json")) {
    const index = asIndex(JSON.parse((await tarMember(file, "index.json")).toString("utf8")) as unknown);
    manifestDigest = index.manifests[0]?.digest ?? null;
  }
  return {
    source,
    name: String(entry.RepoTags[0]),
    configDigest: sha256Of(configBytes),
    diffIds: asConfig(JSON.parse(configBytes.toString("utf8")) as unknown).rootfs.diff_ids,
    manifestDigest,
  };
}

function nameMatches(name: string, expected: string | RegExp): boolean {
  return typeof expected === "string" ? name === expected : expected.test(name);
}

describe("airpack sources: oci-archive, docker-archive (3 layouts), foreign layers", { timeout: 600_000 }, () => {
  let work = "";
  let cache = "";
  let unavailable: string | null = null;
  let ctd: Containerd | null = null;
  let podman: Podman | null = null;
  const sources: SourceImage[] = [];

  before(async () => {
    work = await makeTempDir("airpack-e2e-sources");
    cache = path.join(work, "cache");
    sources.push(
      await ociArchiveImage(path.join(FIXTURES, "mixed.oci.tar"), `oci-archive:${FIXTURES}/mixed.oci.tar`),
      await dockerArchiveImage(
        path.join(FIXTURES, "docker-legacy.tar"),
        `docker-archive:${FIXTURES}/docker-legacy.tar`,
      ),
      await dockerArchiveImage(
        path.join(FIXTURES, "docker-legacy-classic.tar"),
        `docker-archive:${FIXTURES}/docker-legacy-classic.tar`,
      ),
      await dockerArchiveImage(path.join(FIXTURES, "docker-oci.tar"), `docker-archive:${FIXTURES}/docker-oci.tar`),
    );
    unavailable = await peersUnavailable(["containerd", "ctr", "podman", "tar"]);
    if (unavailable === null) {
      ctd = await startContainerd();
      podman = await createPodman();
    }
  });

  after(async () => {
    await ctd?.stop();
    await podman?.cleanup();
    if (work) await removeDir(work);
  });

  /** Checks one imported image in containerd: name, digest, config (via ctr content get) and unpacked layers. */
  async function checkCtr(ns: string, img: SourceImage): Promise<void> {
    assert.ok(ctd);
    const rows = await ctd.listImages(ns);
    const row = rows.find((r) => nameMatches(r.name, img.name));
    assert.ok(row, `${img.source}: no image named ${String(img.name)} in ${JSON.stringify(rows.map((r) => r.name))}`);
    if (img.manifestDigest !== null) assert.equal(row.digest, img.manifestDigest, img.source);
    const manifestBytes = (await ctd.ctrOk(["content", "get", row.digest], { namespace: ns })).stdout;
    assert.equal(sha256Of(manifestBytes), row.digest);
    const manifest = asManifest(JSON.parse(manifestBytes.toString("utf8")) as unknown);
    assert.equal(manifest.config.digest, img.configDigest, `${img.source}: config changed`);
    const check = (await ctd.ctrOk(["images", "check"], { namespace: ns })).stdout.toString("utf8");
    const line = check.split("\n").find((l) => l.startsWith(`${row.name} `));
    assert.match(line ?? "", /\bcomplete\b/, check);
    await assertSnapshotsFor(ctd, ns, [{ ref: row.name, diffIds: img.diffIds }]);
  }

  async function checkPodman(img: SourceImage, loadedName: string): Promise<void> {
    assert.ok(podman);
    const inspect = await podman.imageInspect(loadedName);
    assert.equal(`sha256:${inspect.Id}`, img.configDigest, img.source);
    assert.deepEqual(inspect.RootFS?.Layers, img.diffIds, img.source);
  }

  for (const [i, label] of [
    "oci-archive mixed.oci.tar",
    "docker-legacy.tar",
    "docker-legacy-classic.tar",
    "docker-oci.tar",
  ].entries()) {
    test(`${label}: pack → unpack → ctr import and podman load`, { timeout: TIMEOUT }, async (t) => {
      const img = sources[i];
      assert.ok(img);
      const bundle = path.join(work, `src-${i}.tar.gz`);
      await pack([img.source], bundle, cache);
      if (skipOrFail(t, unavailable) || !ctd || !podman) return;

      const ns = `src-${i}`;
      const tar = await airpackOk(["unpack", bundle, "-o", "-"]);
      await ctd.importImage(tar.stdout, { namespace: ns });
      await checkCtr(ns, img);

      const archive = path.join(work, `src-${i}.oci.tar`);
      await airpackOk(["unpack", bundle, "--format", "oci-archive", "-o", archive]);
      const loaded = await podman.load(archive);
      assert.equal(loaded.loaded.length, 1, loaded.stdout.toString("utf8"));
      const name = loaded.loaded[0] ?? "";
      assert.ok(nameMatches(name, img.name), `${img.source}: podman loaded ${name}, want ${String(img.name)}`);
      await checkPodman(img, name);
      if (img.manifestDigest !== null) {
        assert.equal((await podman.imageInspect(name)).Digest, img.manifestDigest, img.source);
      }
      await podman.removeAllImages();
    });
  }

  test("several sources in one pack: identical blobs stored once; all import", { timeout: TIMEOUT }, async (t) => {
    const bundle = path.join(work, "all-sources.tar");
    const mixedLayout = `oci:${FIXTURES}/oci:mixed`; // the same image as mixed.oci.tar, from a layout
    await pack([...sources.map((s) => s.source), mixedLayout], bundle, cache);
    const unpacked = path.join(work, "all-sources.oci.tar");
    await airpackOk(["unpack", bundle, "--format", "oci-archive", "-o", unpacked]);

    const dir = path.join(work, "all-sources");
    await fs.mkdir(dir);
    await runOk("tar", ["-xf", unpacked, "-C", dir]);
    const images = await layoutImages(dir); // verifies every manifest/config blob hash
    const referenced = new Set<string>();
    for (const img of images) {
      for (const d of [img.top, img.desc, img.manifest.config, ...img.manifest.layers]) referenced.add(d.digest);
    }
    for (const tarFile of [bundle, unpacked]) {
      const blobs = (await tarMembers(tarFile)).filter((m) => /^(\.\/)?blobs\/sha256\/[0-9a-f]{64}$/.test(m));
      assert.equal(blobs.length, new Set(blobs).size, `${tarFile}: a blob is stored twice`);
      assert.deepEqual(
        blobs.map((b) => `sha256:${path.basename(b)}`).sort(),
        [...referenced].sort(),
        `${tarFile}: blobs vs referenced digests`,
      );
    }
    // the uncompressed layer A (diff_id = digest) is shared by the three docker archives: stored once, used 3 times
    const layerA = sources[1]?.diffIds[0] ?? "";
    assert.equal(images.filter((i) => i.manifest.layers.some((l) => l.digest === layerA)).length, 3);
    const index = await readLayoutIndex(dir);
    assert.equal(index.manifests.length, 5);

    if (skipOrFail(t, unavailable) || !ctd || !podman) return;
    const ns = "all-sources";
    await ctd.importImage(await fs.readFile(unpacked), { namespace: ns });
    for (const img of sources) await checkCtr(ns, img);
    assert.equal((await ctd.listImages(ns)).length, 5);

    // podman: a multi-image bundle goes through the docker-archive format
    const dockerTar = path.join(work, "all-sources.docker.tar");
    await airpackOk(["unpack", bundle, "--format", "docker-archive", "-o", dockerTar]);
    const loaded = await podman.load(dockerTar);
    assert.equal(loaded.loaded.length, 5, loaded.stdout.toString("utf8"));
    for (const img of sources) {
      const name = loaded.loaded.find((n) => nameMatches(n, img.name));
      assert.ok(name, `${img.source}: not loaded (${loaded.loaded.join(", ")})`);
      await checkPodman(img, name);
    }
    await podman.removeAllImages();
  });

  test("foreign layer: pack warns on stderr, exits 0; inspect --json says mode foreign", async () => {
    const layout = path.join(FIXTURES, "foreign");
    const [top] = (await readLayoutIndex(layout)).manifests;
    assert.ok(top);
    const manifest = asManifest(
      JSON.parse(await fs.readFile(path.join(layout, "blobs", "sha256", top.digest.slice(7)), "utf8")) as unknown,
    );
    const foreign = manifest.layers[0];
    const present = manifest.layers[1];
    assert.ok(foreign && present);
    assert.match(foreign.mediaType, /nondistributable/);

    const bundle = path.join(work, "foreign.tar.xz");
    const r = await runAirpack(["pack", `oci:${layout}`, "-o", bundle, "--cache", cache, "--layers", "keep"]);
    assert.equal(r.code, 0, r.stderr);
    const warning = r.stderr.split("\n").find((l) => /warn/i.test(l) && l.includes(foreign.digest));
    assert.ok(warning, `no warning line naming ${foreign.digest} on stderr:\n${r.stderr}`);

    const inspect = await airpackOk(["inspect", "--json", bundle]);
    const parsed: unknown = JSON.parse(inspect.stdout.toString("utf8"));
    const modes = new Map<string, string>();
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (typeof v === "object" && v !== null) {
        if ("digest" in v && "mode" in v && typeof v.digest === "string" && typeof v.mode === "string") {
          modes.set(v.digest, v.mode);
        }
        Object.values(v).forEach(walk);
      }
    };
    walk(parsed);
    assert.equal(modes.get(foreign.digest), "foreign", JSON.stringify(parsed));
    assert.notEqual(modes.get(present.digest), "foreign");
    assert.ok(modes.has(present.digest));
    // the foreign blob itself is not in the bundle; the present layer is
    const raw = path.join(work, "foreign-raw.tar");
    await fs.writeFile(raw, (await runOk("xz", ["-dc", bundle])).stdout);
    const members = await tarMembers(raw);
    assert.ok(!members.some((m) => m.endsWith(foreign.digest.slice(7))), "foreign blob was packed");
    assert.ok(
      members.some((m) => m.endsWith(present.digest.slice(7))),
      "present layer missing",
    );
  });

  test("a non-distributable layer whose blob is there is packed, streamed or written in place", async () => {
    // The mixed fixture with its first layer re-typed as non-distributable (the blob stays available),
    // like a Windows base layer a registry serves.
    const src = path.join(FIXTURES, "oci");
    const layout = path.join(work, "nondist-layout");
    await fs.cp(src, layout, { recursive: true });
    const entry = (await readLayoutIndex(src)).manifests.find((m) => m.annotations?.[REF_NAME] === "mixed");
    assert.ok(entry, "no mixed image in the fixture layout");
    const doc = JSON.parse(await fs.readFile(path.join(src, "blobs", "sha256", entry.digest.slice(7)), "utf8")) as {
      layers: { mediaType: string; digest: string }[];
    };
    const layer = doc.layers.find((l) => l.mediaType.endsWith("tar+gzip"));
    assert.ok(layer, "no gzip layer in the mixed image");
    layer.mediaType = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    const bytes = Buffer.from(JSON.stringify(doc));
    const digest = sha256Of(bytes);
    await fs.writeFile(path.join(layout, "blobs", "sha256", digest.slice(7)), bytes);
    const index = {
      schemaVersion: 2,
      manifests: [{ ...entry, digest, size: bytes.length }],
    };
    await fs.writeFile(path.join(layout, "index.json"), JSON.stringify(index));

    for (const name of ["nondist.tar", "nondist.tar.xz"]) {
      const bundle = path.join(work, name);
      const cache = path.join(work, `cache-${name}`);
      await airpackOk(["pack", `oci:${layout}:mixed`, "-o", bundle, "--cache", cache, "--layers", "keep"]);
      const raw = name.endsWith(".xz") ? path.join(work, "nondist-raw.tar") : bundle;
      if (raw !== bundle) await fs.writeFile(raw, (await runOk("xz", ["-dc", bundle])).stdout);
      const members = await tarMembers(raw);
      assert.ok(
        members.some((m) => m.endsWith(layer.digest.slice(7))),
        `${name}: the non-distributable layer's blob is missing`,
      );
      await airpackOk(["verify", bundle]);
    }
  });
});
