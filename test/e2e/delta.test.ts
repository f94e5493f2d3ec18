/**
 * End-to-end: a delta bundle between two real registries. Bundle 1 holds app/web:v1 (the "mixed"
 * fixture). The source registry then gets v2 (v1's layers with a new top layer) and a new image
 * app/tool:1, both built here as OCI layouts and pushed with skopeo. Bundle 1 is pushed to the
 * target, the target inventoried, and a delta of v2 and tool packed against that inventory. Every
 * expected digest and byte count is read from the registries with skopeo inspect --raw and the
 * registry's own access log; containerd imports the assembled images. tool shares v1's base layer,
 * which the target holds only in app/web: the delta's push mounts it from there.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { spawn } from "node:child_process";
import { access, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { after, before, describe, test, type TestContext } from "node:test";

import { AIRPACK_BIN, airpackOk, runAirpack, sha256Of, assertOneLineError } from "../helpers/cli";
import { startContainerd, type Containerd } from "../helpers/peers/containerd";
import { peersUnavailable, runOk, skipOrFail } from "../helpers/peers/process";
import { startRegistry, type Registry } from "../helpers/peers/registry";
import { createSkopeo, type Skopeo } from "../helpers/peers/skopeo";
import { makeTempDir, removeDir } from "../helpers/peers/temp";
import {
  LAYOUT,
  blobDigestOf,
  blobGetsSince,
  pushFixture,
  registryDigest,
  settledRequests,
} from "../helpers/registry-fixtures";

interface Desc {
  mediaType: string;
  digest: string;
  size: number;
}
interface Manifest {
  config: Desc;
  layers: Desc[];
}

interface Peers {
  source: Registry;
  target: Registry;
  empty: Registry;
  sk: Skopeo;
  ctd: Containerd;
}

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip";

/** A tar.gz layer holding one file of random bytes (GNU tar and gzip -n); its blob and diff_id. */
async function randomLayer(work: string, name: string, bytes: number): Promise<{ gz: Buffer; diffId: string }> {
  const dir = path.join(work, `${name}-rootfs`);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, `${name}.bin`), randomBytes(bytes));
  const tarFile = path.join(work, `${name}.tar`);
  await runOk("tar", ["--owner=0", "--group=0", "--mtime=@0", "-C", dir, "-cf", tarFile, "."]);
  const tar = await readFile(tarFile);
  const gz = (await runOk("gzip", ["-n", "-c", tarFile])).stdout;
  return { gz, diffId: sha256Of(tar) };
}

/** An OCI layout with one image: `layers` (blob + diff_id) under a fresh config; tagged `tag`. */
async function buildLayout(
  dir: string,
  tag: string,
  layers: { blob: Buffer; mediaType: string; diffId: string }[],
): Promise<void> {
  await mkdir(path.join(dir, "blobs", "sha256"), { recursive: true });
  const put = async (data: Buffer): Promise<string> => {
    const digest = sha256Of(data);
    await writeFile(path.join(dir, "blobs", "sha256", digest.slice(7)), data);
    return digest;
  };
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
      config: {},
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: await put(config), size: config.length },
      layers: await Promise.all(
        layers.map(async (l) => ({ mediaType: l.mediaType, digest: await put(l.blob), size: l.blob.length })),
      ),
    }),
  );
  const md = await put(manifest);
  await writeFile(path.join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(
    path.join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: OCI_MANIFEST,
          digest: md,
          size: manifest.length,
          annotations: { "org.opencontainers.image.ref.name": tag },
        },
      ],
    }),
  );
}

describe("delta bundles between real registries", { timeout: 900_000 }, () => {
  let unavailable: string | null = null;
  let peers: Peers | null = null;
  let work = "";
  let bundle1 = "";
  let inventory = "";
  let delta = "";
  /** Digests of the source's v2 and tool manifests, and their manifests. */
  const digests = new Map<string, string>();
  const manifests = new Map<string, Manifest>();
  /** Blob GETs the source registry logged while the delta was packed. */
  let deltaGets: string[] = [];

  const V1 = "app/web:v1";
  const V2 = "app/web:v2";
  const TOOL = "app/tool:1";

  before(async () => {
    unavailable = await peersUnavailable(["docker-registry", "skopeo", "containerd", "ctr", "gzip", "tar"]);
    if (unavailable !== null) return;
    work = await makeTempDir("airpack-e2e-delta");
    const [source, target, empty] = await Promise.all([startRegistry(), startRegistry(), startRegistry()]);
    const sk = await createSkopeo();
    const ctd = await startContainerd();
    peers = { source, target, empty, sk, ctd };

    await pushFixture(sk, "mixed", `${source.host}/${V1}`);
    bundle1 = path.join(work, "bundle1.tar.xz");
    const cache = path.join(work, "cache1");
    await airpackOk(["pack", `${source.host}/${V1}`, "-o", bundle1, "--cache", cache, "-q"]);

    // v2: v1's layers, its top layer replaced; tool: one new layer of its own.
    const v1 = JSON.parse(
      (await sk.inspectRawBytes(`docker://${source.host}/${V1}`, { tlsVerify: false })).toString(),
    ) as Manifest;
    const v1Config = JSON.parse(
      (await readFile(path.join(LAYOUT, "blobs", "sha256", v1.config.digest.slice(7)))).toString(),
    ) as { rootfs: { diff_ids: string[] } };
    const base = await Promise.all(
      v1.layers.slice(0, -1).map(async (l, i) => ({
        blob: await readFile(path.join(LAYOUT, "blobs", "sha256", l.digest.slice(7))),
        mediaType: l.mediaType,
        diffId: v1Config.rootfs.diff_ids[i]!,
      })),
    );
    const top = await randomLayer(work, "top", 3 << 20);
    await buildLayout(path.join(work, "v2"), "v2", [
      ...base,
      { blob: top.gz, mediaType: GZIP_LAYER, diffId: top.diffId },
    ]);
    const tool = await randomLayer(work, "tool", 1 << 20);
    // tool shares v1's base layer from another repository: push must mount it from app/web.
    await buildLayout(path.join(work, "tool"), "1", [
      base[0]!,
      { blob: tool.gz, mediaType: GZIP_LAYER, diffId: tool.diffId },
    ]);
    await sk.copy(`oci:${path.join(work, "v2")}:v2`, `docker://${source.host}/${V2}`, [
      "--preserve-digests",
      "--dest-tls-verify=false",
    ]);
    await sk.copy(`oci:${path.join(work, "tool")}:1`, `docker://${source.host}/${TOOL}`, [
      "--preserve-digests",
      "--dest-tls-verify=false",
    ]);
    for (const ref of [V2, TOOL]) {
      const raw = await sk.inspectRawBytes(`docker://${source.host}/${ref}`, { tlsVerify: false });
      digests.set(ref, sha256Of(raw));
      manifests.set(ref, JSON.parse(raw.toString()) as Manifest);
    }

    // The site: bundle 1 pushed to the target; its inventory carried back.
    await airpackOk(["push", bundle1, target.host, "-q"]);
    inventory = path.join(work, "site.inventory.json");
    await airpackOk(["inventory", target.host, "-o", inventory]);

    await settledRequests(source);
    const mark = source.requests().length;
    delta = path.join(work, "delta.tar.xz");
    await airpackOk([
      "pack",
      `${source.host}/${V2}`,
      `${source.host}/${TOOL}`,
      "--have",
      inventory,
      "-o",
      delta,
      "--cache",
      path.join(work, "cache2"),
      "-q",
    ]);
    await settledRequests(source);
    deltaGets = blobGetsSince(source, mark).map((r) => blobDigestOf(r)!);
  });

  after(async () => {
    await peers?.ctd.stop();
    await peers?.sk.cleanup();
    await peers?.source.stop();
    await peers?.target.stop();
    await peers?.empty.stop();
    if (work) await removeDir(work);
  });

  function ready(t: TestContext): Peers | null {
    if (skipOrFail(t, unavailable)) return null;
    assert.ok(peers);
    return peers;
  }

  /** Layers of v2 and tool the target lacks (skopeo's view of both registries), and configs. */
  async function newContent(p: Peers): Promise<{ layers: Desc[]; configs: Desc[] }> {
    const v1 = JSON.parse(
      (await p.sk.inspectRawBytes(`docker://${p.target.host}/${V1}`, { tlsVerify: false })).toString(),
    ) as Manifest;
    const held = new Set(v1.layers.map((l) => l.digest));
    const layers = new Map<string, Desc>();
    for (const m of manifests.values()) for (const l of m.layers) if (!held.has(l.digest)) layers.set(l.digest, l);
    return { layers: [...layers.values()], configs: [...manifests.values()].map((m) => m.config) };
  }

  test("packing the delta fetched only the blobs the site lacks; its size is theirs plus metadata (5%)", async (t) => {
    const p = ready(t);
    if (!p) return;
    const { layers, configs } = await newContent(p);
    const expected = new Set([...layers, ...configs].map((d) => d.digest));
    assert.deepEqual(new Set(deltaGets), expected, "blob GETs = new layers and configs");
    assert.equal(deltaGets.length, expected.size, "each fetched once");
    const layerBytes = layers.reduce((a, l) => a + l.size, 0);
    let metadata = configs.reduce((a, c) => a + c.size, 0);
    for (const ref of [V2, TOOL]) {
      metadata += (await p.sk.inspectRawBytes(`docker://${p.source.host}/${ref}`, { tlsVerify: false })).length;
    }
    const size = (await stat(delta)).size;
    const want = layerBytes + metadata;
    assert.ok(Math.abs(size - want) <= 0.05 * want, `delta ${size} bytes vs new layers + metadata ${want}`);
    t.diagnostic(`delta ${size} bytes; new layers ${layerBytes} + manifests/configs ${metadata} bytes`);
  });

  test("push of the delta HEADs the relied-on blobs first: a registry without them gets nothing", async (t) => {
    const p = ready(t);
    if (!p) return;
    const meta = JSON.parse((await airpackOk(["inspect", delta, "--json"])).stdout.toString()) as {
      delta: { relies: { digest: string }[] };
    };
    const r = await runAirpack(["push", delta, p.empty.host]);
    const line = assertOneLineError(r, /lacks \d+ blob\(s\) the delta relies on, nothing was pushed/);
    for (const d of meta.delta.relies) assert.ok(line.includes(d.digest), `names ${d.digest}`);
    const res = await fetch(`${p.empty.url}/v2/_catalog`);
    assert.deepEqual(((await res.json()) as { repositories: string[] }).repositories, [], "nothing pushed");
  });

  test("the delta pushed on top: the target serves v2 and tool with the source's digests", async (t) => {
    const p = ready(t);
    if (!p) return;
    await airpackOk(["push", delta, p.target.host, "-q"]);
    for (const ref of [V2, TOOL]) {
      assert.equal(await registryDigest(p.sk, `${p.target.host}/${ref}`), digests.get(ref), `${ref} at the target`);
    }
  });

  test("unpack DELTA --base bundle1 -o - | ctr images import - gives the source's digests", async (t) => {
    const p = ready(t);
    if (!p) return;
    const child = spawn(
      process.execPath,
      [AIRPACK_BIN, "unpack", delta, "--base", bundle1, "--format", "oci-archive", "-o", "-"],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    await p.ctd.importImage(child.stdout, { namespace: "delta" });
    // The delta alone is no image: ctr imports nothing from it (rather than images missing layers).
    const plain = path.join(work, "delta.tar");
    await runOk("sh", ["-c", `xz -dc '${delta}' > '${plain}'`]);
    await p.ctd.importImage(plain, { namespace: "alone", check: false });
    assert.deepEqual(await p.ctd.listImages("alone"), []);
    const listed = await p.ctd.listImages("delta");
    for (const ref of [V2, TOOL]) {
      const img = listed.find((i) => i.name.endsWith(`/${ref}`));
      assert.ok(img, `${ref} imported: ${listed.map((i) => i.name).join(", ")}`);
      assert.equal(img.digest, digests.get(ref));
    }
  });

  test("a wrong base fails before writing, with the digest list", async (t) => {
    const p = ready(t);
    if (!p) return;
    const out = path.join(work, "wrong.tar");
    const r = await runAirpack(["unpack", delta, "--base-registry", p.empty.host, "-o", out]);
    const line = assertOneLineError(r, /lacks \d+ blob\(s\) the delta relies on/);
    const { layers } = await newContent(p);
    const v2 = manifests.get(V2)!;
    const relied = v2.layers.filter((l) => !layers.some((n) => n.digest === l.digest));
    for (const l of relied) assert.ok(line.includes(l.digest), `names ${l.digest}`);
    assert.match(line, /needed by [^ ]*app\/web:v2/);
    await assert.rejects(access(out), "nothing written");
    // The right registry completes it.
    await airpackOk(["verify", delta, "--base-registry", p.target.host]);
  });

  test("diff of the two registries matches a count of their layers", async (t) => {
    const p = ready(t);
    if (!p) return;
    // Before the delta was pushed the target held v1 only: compare the inventory with the source.
    const d = JSON.parse((await airpackOk(["diff", inventory, p.source.host, "--json"])).stdout.toString()) as {
      images: { image: string; status: string; addedLayers: string[] }[];
      totals: { deltaLayers: number; deltaLayerBytes: number };
    };
    assert.deepEqual(
      d.images.map((i) => [i.image, i.status]),
      [
        [TOOL, "added"],
        [V1, "unchanged"],
        [V2, "added"],
      ],
    );
    const { layers } = await newContent(p);
    assert.equal(d.totals.deltaLayers, layers.length);
    assert.equal(
      d.totals.deltaLayerBytes,
      layers.reduce((a, l) => a + l.size, 0),
    );
    // Now the target has everything: nothing left to carry.
    const now = JSON.parse((await airpackOk(["diff", p.target.host, p.source.host, "--json"])).stdout.toString()) as {
      totals: { deltaLayers: number };
    };
    assert.equal(now.totals.deltaLayers, 0);
  });
});
