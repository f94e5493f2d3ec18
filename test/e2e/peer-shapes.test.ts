/**
 * End-to-end: the image shapes of other projects' public test data (go-containerregistry,
 * containers/image, regclient, umoci, moby; see fixtures/README.md, "Peer shapes"), each packed with
 * --layers keep and with --layers uncompressed, verified, unpacked and imported into the real ctr
 * and podman. Hand-made shapes come from fixtures/make-peer-shapes.py; the shapes real tools write
 * are made here by them: podman save in each format, skopeo copy, umoci, ctr export.
 *
 * Expected digests are computed independently of airpack: from `skopeo inspect --raw` and
 * `skopeo inspect --config --raw` of the same input (sha256 of skopeo's bytes), or, where skopeo 1.9
 * cannot address an image, from the layout's files with node:crypto.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { after, before, describe, test, type TestContext } from "node:test";

import {
  FIXTURES,
  airpackOk,
  asConfig,
  asIndex,
  asManifest,
  assertOneLineError,
  assertSnapshotsFor,
  readBlob,
  readLayoutIndex,
  runAirpack,
  sha256Of,
  type Descriptor,
} from "../helpers/cli";
import { HAND_MADE_SHAPES, makePeerShapes, specIn, type PeerShape, type PeerShapeImage } from "../helpers/peer-shapes";
import { startContainerd, type Containerd } from "../helpers/peers/containerd";
import { createPodman, type Podman } from "../helpers/peers/podman";
import { peersUnavailable, runOk, skipOrFail } from "../helpers/peers/process";
import { createSkopeo, type Skopeo } from "../helpers/peers/skopeo";
import { makeTempDir, removeDir } from "../helpers/peers/temp";

const TIMEOUT = 180_000;
const HOST = { os: "linux", architecture: "amd64" };

/** What an image must look like after the round trip, computed without airpack. */
interface Expected {
  /** Digest of the source's top document (manifest or index); none for classic docker archives. */
  top?: string;
  /** For an index whose other platforms are missing: the kept platform's manifest digest. */
  platformManifest?: string;
  /** Config digest and diff_ids of the host platform's image (not for artifacts). */
  config?: string;
  diffIds?: string[];
}

function isIndexDoc(doc: unknown): doc is { manifests: Descriptor[] } {
  return typeof doc === "object" && doc !== null && Array.isArray((doc as { manifests?: unknown }).manifests);
}

function platformOf(d: Descriptor): string {
  const p = d.platform;
  return p ? [p.os, p.architecture, p.variant].filter(Boolean).join("/") : "";
}

/** The host's entry of an index: by platform, else an index inside it that has one. */
async function hostChild(
  index: { manifests: Descriptor[] },
  read: (d: Descriptor) => Promise<Buffer>,
): Promise<Descriptor> {
  const byPlatform = index.manifests.find(
    (m) => m.platform?.os === HOST.os && m.platform.architecture === HOST.architecture,
  );
  if (byPlatform) return byPlatform;
  for (const m of index.manifests.filter((c) => !c.platform)) {
    const doc = JSON.parse((await read(m)).toString("utf8")) as unknown;
    if (isIndexDoc(doc)) return hostChild(doc, read);
    return m;
  }
  throw new Error(`no ${HOST.os}/${HOST.architecture} entry in ${JSON.stringify(index.manifests.map(platformOf))}`);
}

describe("peer shapes: pack → verify → unpack → ctr and podman, digests from skopeo", { timeout: 3_600_000 }, () => {
  let work = "";
  let out = "";
  let cache = "";
  let unavailable: string | null = null;
  let ctd: Containerd | null = null;
  let podman: Podman | null = null;
  let skopeo: Skopeo | null = null;
  let shapes: PeerShape[] = [];
  /** Shapes made by the real tools in before(), with absolute paths. */
  const toolShapes: PeerShape[] = [];

  before(async () => {
    work = await makeTempDir("airpack-e2e-peer-shapes");
    out = path.join(work, "shapes");
    cache = path.join(work, "cache");
    shapes = await makePeerShapes(out);
    unavailable = await peersUnavailable(["containerd", "ctr", "podman", "skopeo", "umoci", "tar"]);
    if (unavailable !== null) return;
    ctd = await startContainerd();
    podman = await createPodman();
    skopeo = await createSkopeo();
    await makeToolShapes();
  });

  after(async () => {
    await ctd?.stop();
    await podman?.cleanup();
    await skopeo?.cleanup();
    if (work) await removeDir(work);
  });

  // ------------------------------------------------------------------ real tools --

  async function makeToolShapes(): Promise<void> {
    assert.ok(podman && skopeo && ctd);
    const tools = path.join(work, "tools");
    await fs.mkdir(tools);
    const at = (name: string): string => path.join(tools, name);

    // podman save in each format, of a v2s2 image loaded from a classic docker save and of an OCI image.
    await podman.load(path.join(FIXTURES, "docker-legacy-classic.tar"));
    const classic = "example.com/fixtures/classic:1.0";
    await podman.podmanOk(["pull", "-q", `oci:${path.join(FIXTURES, "oci")}:multi`]);
    const pulled = (await podman.images()).find((i) => !i.names.includes(classic));
    assert.ok(pulled, "podman pulled oci:…:multi");
    const multi = "example.com/fixtures/multi:1";
    await podman.podmanOk(["tag", pulled.id, multi]);
    for (const format of ["oci-archive", "docker-archive", "oci-dir", "docker-dir"]) {
      await podman.podmanOk(["save", "--format", format, "-o", at(`podman-${format}`), classic]);
    }
    await podman.podmanOk(["save", "-m", "--format", "docker-archive", "-o", at("podman-multi.tar"), classic, multi]);
    await podman.removeAllImages();
    const podmanFrom = "podman 4.3 save (containers/image oci-archive, docker-archive, oci: writers)";
    toolShapes.push(
      {
        name: "podman-oci-archive",
        source: `oci-archive:${at("podman-oci-archive")}`,
        from: podmanFrom,
        valid: true,
        images: [{ name: classic, skopeo: `oci-archive:${at("podman-oci-archive")}` }],
      },
      {
        name: "podman-docker-archive",
        source: `docker-archive:${at("podman-docker-archive")}`,
        from: podmanFrom,
        valid: true,
        images: [{ name: classic, skopeo: `docker-archive:${at("podman-docker-archive")}` }],
      },
      {
        name: "podman-oci-dir",
        source: `oci:${at("podman-oci-dir")}`,
        from: podmanFrom,
        valid: true,
        images: [{ name: classic, skopeo: `oci:${at("podman-oci-dir")}` }],
      },
      {
        name: "podman-multi",
        source: `docker-archive:${at("podman-multi.tar")}`,
        from: "podman save -m (several images in one docker-archive)",
        valid: true,
        images: [classic, multi].map((n) => ({ name: n, skopeo: `docker-archive:${at("podman-multi.tar")}:${n}` })),
      },
      {
        name: "podman-docker-dir",
        source: `oci:${at("podman-docker-dir")}`,
        from: "podman save --format docker-dir (containers/image dir: transport, not a layout)",
        valid: false,
        error: "not an OCI image layout \\(no index\\.json\\)",
      },
    );

    // skopeo copy: full references as ref.name, two images in one layout, --all keeps the index;
    // a docker-archive with --additional-tag (two RepoTags).
    const layout = at("skopeo-layout");
    await skopeo.copy(`oci:${path.join(FIXTURES, "oci")}:mixed`, `oci:${layout}:example.com/skopeo/mixed:1`);
    await skopeo.copy(`oci:${path.join(FIXTURES, "oci")}:multi`, `oci:${layout}:example.com/skopeo/multi:2`, ["--all"]);
    const archive = at("skopeo-tags.tar");
    await skopeo.copy(
      `oci:${path.join(FIXTURES, "oci")}:uncompressed`,
      `docker-archive:${archive}:example.com/skopeo/plain:1`,
      ["--additional-tag", "example.com/skopeo/plain:latest"],
    );
    toolShapes.push(
      {
        name: "skopeo-layout",
        source: `oci:${layout}`,
        from: "skopeo copy to oci:DIR:REGISTRY/REPO:TAG (containers/image oci/layout)",
        valid: true,
        packArgs: ["--all-platforms"],
        images: ["example.com/skopeo/mixed:1", "example.com/skopeo/multi:2"].map((n) => ({
          name: n,
          skopeo: `oci:${layout}:${n}`,
        })),
      },
      {
        name: "skopeo-tags",
        source: `docker-archive:${archive}`,
        from: "skopeo copy --additional-tag to docker-archive: (containers/image docker/archive)",
        valid: true,
        images: ["example.com/skopeo/plain:1", "example.com/skopeo/plain:latest"].map((n) => ({
          name: n,
          skopeo: `docker-archive:${archive}:${n}`,
        })),
      },
    );

    // umoci: an image with no layers, layers with a whiteout and an opaque directory, a config change, two tags.
    const files = at("umoci-files");
    await fs.mkdir(path.join(files, "sub"), { recursive: true });
    await fs.copyFile("/usr/share/common-licenses/BSD", path.join(files, "BSD"));
    await fs.symlink("BSD", path.join(files, "LICENSE"));
    await fs.copyFile(path.join(FIXTURES, "..", "make-peer-shapes.py"), path.join(files, "sub", "script.py"));
    const um = at("umoci");
    const umoci = (args: string[]): Promise<unknown> => runOk("umoci", args, { cwd: tools });
    await umoci(["init", "--layout", um]);
    await umoci(["new", "--image", `${um}:empty`]);
    await umoci(["insert", "--image", `${um}:empty`, "--tag", "files", files, "/opt/peer"]);
    await umoci(["insert", "--image", `${um}:files`, "--whiteout", "/opt/peer/sub"]);
    await umoci(["insert", "--image", `${um}:files`, "--opaque", files, "/opt/peer"]);
    await umoci(["config", "--image", `${um}:files`, "--config.cmd", "/bin/true", "--config.env", "PEER=umoci"]);
    await umoci(["tag", "--image", `${um}:files`, "second"]);
    toolShapes.push({
      name: "umoci",
      source: `oci:${um}`,
      from: "umoci 0.4.7 init/new/insert/config/tag (umoci test/*.bats)",
      valid: true,
      images: ["empty", "files", "second"].map((t) => ({ name: `localhost/umoci:${t}`, skopeo: `oci:${um}:${t}` })),
    });

    // ctr export --platform: the whole index named, one platform's blobs inside, plus manifest.json.
    const full = at("multi-all.oci.tar");
    await skopeo.copy(`oci:${path.join(FIXTURES, "oci")}:multi`, `oci-archive:${full}:multi`, ["--all"]);
    await ctd.importImage(full, { namespace: "export-src", allPlatforms: true, baseName: "example.com/ctr/multi" });
    const exported = at("ctr-export.tar");
    await ctd.ctrOk(["images", "export", "--platform", "linux/amd64", exported, "example.com/ctr/multi:multi"], {
      namespace: "export-src",
    });
    const ctrImage = [
      {
        name: "example.com/ctr/multi:multi",
        skopeo: `oci-archive:${exported}:multi`,
        platform: "linux/amd64",
      },
    ];
    toolShapes.push(
      {
        name: "ctr-export-oci",
        source: `oci-archive:${exported}`,
        from: "ctr 1.6 images export --platform (containerd archive exporter; Docker 25+ containerd store)",
        valid: true,
        images: ctrImage,
      },
      {
        name: "ctr-export-docker",
        source: `docker-archive:${exported}`,
        from: "ctr 1.6 images export --platform, read as a docker save",
        valid: true,
        images: ctrImage,
      },
    );
  }

  // ----------------------------------------------------------- expected values --

  /** Expected values from skopeo's bytes of the same input. */
  async function fromSkopeo(ref: string, img: PeerShapeImage): Promise<Expected> {
    assert.ok(skopeo);
    const global = ["--override-os", HOST.os, "--override-arch", HOST.architecture];
    const raw = (await skopeo.runOk([...global, "inspect", "--raw", ref])).stdout;
    const e: Expected = {};
    // A docker-archive has no manifest; skopeo's is made up, like airpack's: only the config is the source's.
    if (!ref.startsWith("docker-archive:")) e.top = sha256Of(raw);
    const doc = JSON.parse(raw.toString("utf8")) as unknown;
    if (img.platform && isIndexDoc(doc)) {
      e.platformManifest = doc.manifests.find((m) => platformOf(m) === img.platform)?.digest;
      assert.ok(e.platformManifest, `${ref}: skopeo's index has no ${img.platform}`);
    }
    if (!img.artifact) {
      const config = (await skopeo.runOk([...global, "inspect", "--config", "--raw", ref])).stdout;
      e.config = sha256Of(config);
      e.diffIds = asConfig(JSON.parse(config.toString("utf8")) as unknown, ref).rootfs.diff_ids;
    }
    return e;
  }

  /** Expected values read from an OCI layout directory with node:crypto (where skopeo 1.9 cannot pick the image). */
  async function fromLayout(layoutDir: string, img: PeerShapeImage): Promise<Expected> {
    const entry = (await readLayoutIndex(layoutDir)).manifests[img.entry ?? -1];
    assert.ok(entry, `${layoutDir}: no index.json entry ${img.entry}`);
    const read = (d: Descriptor): Promise<Buffer> => readBlob(layoutDir, d.digest, d.size);
    const e: Expected = { top: entry.digest };
    if (img.artifact) return e;
    let desc = entry;
    let doc = JSON.parse((await read(desc)).toString("utf8")) as unknown;
    while (isIndexDoc(doc)) {
      desc = await hostChild(doc, read);
      doc = JSON.parse((await read(desc)).toString("utf8")) as unknown;
    }
    const manifest = asManifest(doc, desc.digest);
    const config = await read(manifest.config);
    e.config = manifest.config.digest;
    e.diffIds = asConfig(JSON.parse(config.toString("utf8")) as unknown).rootfs.diff_ids;
    return e;
  }

  async function expected(shape: PeerShape, img: PeerShapeImage, base: string): Promise<Expected> {
    if (img.skopeo) return fromSkopeo(specIn(base, img.skopeo), img);
    const [, layoutPath] = /^oci:(.*)$/.exec(shape.source) ?? [];
    assert.ok(layoutPath, `${shape.name}: no skopeo reference and not an oci: layout`);
    return fromLayout(path.resolve(base, layoutPath), img);
  }

  // ------------------------------------------------------------------ the peers --

  /** The host platform's image manifest of an image in containerd, read back with ctr content get. */
  async function ctrHostManifest(ns: string, digest: string): Promise<{ digest: string; configDigest: string }> {
    assert.ok(ctd);
    const c = ctd;
    const read = async (d: Descriptor): Promise<Buffer> => {
      const bytes = (await c.ctrOk(["content", "get", d.digest], { namespace: ns })).stdout;
      assert.equal(sha256Of(bytes), d.digest, "ctr content get gives the bytes of the digest");
      return bytes;
    };
    let desc = { digest } as Descriptor;
    let doc = JSON.parse((await read(desc)).toString("utf8")) as unknown;
    while (isIndexDoc(doc)) {
      desc = await hostChild(doc, read);
      doc = JSON.parse((await read(desc)).toString("utf8")) as unknown;
    }
    return { digest: desc.digest, configDigest: asManifest(doc).config.digest };
  }

  async function checkCtr(ns: string, bundleTar: Buffer, images: PeerShapeImage[], want: Expected[]): Promise<void> {
    assert.ok(ctd);
    const artifacts = images.some((i) => i.artifact);
    // ctr 1.6 unpacks every image it imports and fails on an artifact's config ("mismatched image
    // rootfs and manifest layers"): with artifacts, import the content and unpack the images by mounting them.
    await ctd.importImage(bundleTar, { namespace: ns, noUnpack: artifacts });
    const rows = await ctd.listImages(ns);
    for (const [i, img] of images.entries()) {
      const row = rows.find((r) => r.name === img.name);
      assert.ok(row, `no ${img.name} in ctr (${rows.map((r) => r.name).join(", ")})`);
      const e = want[i]!;
      if (e.top && !e.platformManifest) assert.equal(row.digest, e.top, `${img.name}: ctr's digest is the source's`);
      if (img.artifact) continue;
      const host = await ctrHostManifest(ns, row.digest);
      if (e.platformManifest)
        assert.equal(host.digest, e.platformManifest, `${img.name}: the kept platform's manifest`);
      assert.equal(host.configDigest, e.config, `${img.name}: config`);
      if (artifacts) {
        const mnt = path.join(work, `mnt-${ns}`);
        await fs.mkdir(mnt, { recursive: true });
        await ctd.ctrOk(["images", "mount", "--snapshotter", ctd.snapshotter, img.name, mnt], { namespace: ns });
        await ctd.ctrOk(["images", "unmount", "--rm", mnt], { namespace: ns });
      }
      await assertSnapshotsFor(ctd, ns, [{ ref: img.name, diffIds: e.diffIds ?? [] }]);
    }
  }

  async function checkPodman(archive: string, images: PeerShapeImage[], want: Expected[]): Promise<void> {
    assert.ok(podman);
    const runnable = images.map((img, i) => ({ img, e: want[i]! })).filter(({ img }) => !img.artifact);
    if (runnable.length === 0) return; // podman loads images, not artifacts
    try {
      const loaded = await podman.load(archive);
      for (const { img, e } of runnable) {
        const inspect = await podman.imageInspect(img.name);
        assert.equal(`sha256:${inspect.Id}`, e.config, `${img.name}: podman's image ID is the config digest`);
        assert.deepEqual(inspect.RootFS?.Layers, e.diffIds, `${img.name}: podman's layers`);
        // One image loads as an OCI archive, so podman keeps its digest (several go by manifest.json).
        if (images.length === 1 && e.top && !e.platformManifest) {
          assert.equal(inspect.Digest, e.top, `${img.name}: podman's digest (${loaded.stdout.toString()})`);
        }
      }
    } finally {
      await podman.removeAllImages();
    }
  }

  async function roundTrip(t: TestContext, shape: PeerShape, layers: string, base: string): Promise<void> {
    const source = specIn(base, shape.source);
    const bundle = path.join(work, `${shape.name}-${layers}.tar`);
    if (!shape.valid) {
      const r = await runAirpack([
        "pack",
        source,
        ...(shape.packArgs ?? []),
        "--layers",
        layers,
        "--cache",
        cache,
        "-o",
        bundle,
      ]);
      assertOneLineError(r, new RegExp(shape.error ?? "."));
      return;
    }
    await airpackOk(["pack", source, ...(shape.packArgs ?? []), "--layers", layers, "--cache", cache, "-o", bundle]);
    await airpackOk(["verify", bundle]);
    if (skipOrFail(t, unavailable)) return;
    const images = shape.images ?? [];
    const want: Expected[] = [];
    for (const img of images) want.push(await expected(shape, img, base));

    const tar = await airpackOk(["unpack", bundle, "-o", "-"]);
    const index = asIndex(JSON.parse((await tarEntry(tar.stdout, "index.json")).toString("utf8")) as unknown);
    assert.deepEqual(
      index.manifests.map((m) => m.annotations?.["io.containerd.image.name"]).sort(),
      images.map((i) => i.name).sort(),
    );
    await checkCtr(`${shape.name}-${layers}`, tar.stdout, images, want);

    const archive = path.join(work, `${shape.name}-${layers}.docker.tar`);
    await airpackOk(["unpack", bundle, "-o", archive]);
    await checkPodman(archive, images, want);
    await fs.rm(archive);
  }

  /** One member of a tar held in memory (system tar). */
  async function tarEntry(tar: Buffer, member: string): Promise<Buffer> {
    return (await runOk("tar", ["-xOf", "-", member], { input: tar })).stdout;
  }

  // ------------------------------------------------------------------ the tests --

  const TOOL_MADE = [
    "podman-oci-archive",
    "podman-docker-archive",
    "podman-oci-dir",
    "podman-multi",
    "podman-docker-dir",
    "skopeo-layout",
    "skopeo-tags",
    "umoci",
    "ctr-export-oci",
    "ctr-export-docker",
  ];

  for (const layers of ["keep", "uncompressed"]) {
    for (const name of HAND_MADE_SHAPES) {
      test(`${name}, --layers ${layers}`, { timeout: TIMEOUT }, async (t) => {
        const shape = shapes.find((s) => s.name === name);
        assert.ok(shape, `make-peer-shapes.py made no ${name}`);
        await roundTrip(t, shape, layers, out);
      });
    }
    for (const name of TOOL_MADE) {
      test(`${name} (made by the real tool), --layers ${layers}`, { timeout: TIMEOUT }, async (t) => {
        if (skipOrFail(t, unavailable)) return;
        const shape = toolShapes.find((s) => s.name === name);
        assert.ok(shape, `no ${name}`);
        await roundTrip(t, shape, layers, work);
      });
    }
  }
});
