/**
 * D. airpack inventory of a real registry (CNCF distribution on loopback) holding 200 tags: 10
 * repositories of 20 tags, each tag its own manifest (an annotation differs) over one small config
 * and layer. Target: under 10 s with the default concurrency (--jobs 8). Then a delta: bench/delta:v2
 * (v1's first layer and a new one) packed --have that inventory; the registry's log must show no
 * GET of the shared layer (target: 0 downloads of blobs the site has).
 */
import { randomBytes } from "node:crypto";
import { gzipSync } from "node:zlib";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  blobDigestOf,
  blobGetsSince,
  putManifest,
  settledRequests,
  uploadBlob,
} from "../test/helpers/registry-fixtures";
import { sha256Of } from "../test/helpers/cli";
import { startRegistry, type Registry } from "../test/helpers/peers/registry";
import { AIRPACK, allWalls, best, cpuOf, log, peakMb, run, sec, tmp, verdict, type PartResult } from "./lib";

const REPOS = 10;
const TAGS = 20;
const TARGET_S = 10;

interface Layer {
  gz: Buffer;
  diffId: string;
}

/** A gzip layer of random bytes (not a tar: pack --layers keep doesn't look inside). */
function image(name: string): Layer {
  const raw = Buffer.concat([Buffer.from(name), randomBytes(256 * 1024)]);
  return { gz: gzipSync(raw), diffId: sha256Of(raw) };
}

async function pushImage(registry: Registry, repo: string, tag: string, layers: Layer[]): Promise<void> {
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    }),
  );
  const configDigest = await uploadBlob(registry.url, repo, config);
  const descs = [];
  for (const l of layers) {
    const digest = await uploadBlob(registry.url, repo, l.gz);
    descs.push({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest, size: l.gz.length });
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.length },
      layers: descs,
    }),
  );
  await putManifest(registry.url, repo, tag, manifest, "application/vnd.oci.image.manifest.v1+json");
}

/** Push bench/delta:v2 (v1's first layer and a new one), pack it --have the inventory, count the blob GETs. */
async function deltaGets(
  registry: Registry,
  inventory: string,
  shared: Layer,
): Promise<{ total: number; shared: number }> {
  await pushImage(registry, "bench/delta", "v2", [shared, image("v2-top")]);
  const sharedLayer = sha256Of(shared.gz);
  await settledRequests(registry);
  const mark = registry.requests().length;
  const out = join(tmp(), "bench-delta.tar");
  await run("delta pack", [
    AIRPACK,
    "pack",
    `${registry.host}/bench/delta:v2`,
    "--have",
    inventory,
    "-o",
    out,
    "--cache",
    join(tmp(), "bench-delta-cache"),
    "-q",
  ]);
  await settledRequests(registry);
  const gets = blobGetsSince(registry, mark).map((r) => blobDigestOf(r));
  return { total: gets.length, shared: gets.filter((d) => d === sharedLayer).length };
}

export async function benchInventory(): Promise<PartResult> {
  const title = "D. inventory of a registry with 200 tags (CNCF distribution, localhost)";
  const registry = await startRegistry();
  try {
    const layer = randomBytes(4096);
    const config = Buffer.from(
      JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }),
    );
    for (let r = 0; r < REPOS; r++) {
      const repo = `bench/app${r}`;
      const layerDigest = await uploadBlob(registry.url, repo, layer);
      const configDigest = await uploadBlob(registry.url, repo, config);
      for (let t = 0; t < TAGS; t++) {
        const manifest = Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: "application/vnd.oci.image.manifest.v1+json",
            config: {
              mediaType: "application/vnd.oci.image.config.v1+json",
              digest: configDigest,
              size: config.length,
            },
            layers: [
              { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: layerDigest, size: layer.length },
            ],
            annotations: { "bench.tag": `${r}-${t}` },
          }),
        );
        await putManifest(registry.url, repo, `v${t}`, manifest, "application/vnd.oci.image.manifest.v1+json");
      }
    }
    const shared = image("shared");
    await pushImage(registry, "bench/delta", "v1", [shared, image("v1-top")]);
    log(`inventory: ${REPOS * TAGS + 1} tags in ${registry.host}`);
    const out = join(tmp(), "bench.inventory.json");
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push(await run("inventory", [AIRPACK, "inventory", registry.host, "-o", out]));
    const inv = JSON.parse(await readFile(out, "utf8")) as { manifests: unknown[] };
    const b = best(runs);
    const ok = b.wall < TARGET_S && inv.manifests.length === REPOS * TAGS + 1;
    const gets = await deltaGets(registry, out, shared);
    return {
      sections: [
        {
          title,
          body:
            `${inv.manifests.length} manifests listed (catalog, ${REPOS} tag lists, ${REPOS * TAGS} manifest GETs, 8 in flight). ` +
            `Wall ${sec(b.wall)} best (${allWalls(runs)}), CPU ${cpuOf(b)}, peak RSS ${peakMb(b).toFixed(0)} MB. ` +
            `Delta of bench/delta:v2 against it: ${gets.total} blob GETs (the new layer and config), ${gets.shared} of the shared layer.`,
        },
      ],
      metrics: [
        {
          metric: "inventory: 200-tag registry",
          value: sec(b.wall),
          target: `< ${TARGET_S} s`,
          verdict: verdict(ok),
        },
        {
          metric: "inventory: delta pack, GETs of blobs the site has",
          value: String(gets.shared),
          target: "0",
          verdict: verdict(gets.shared === 0 && gets.total === 2),
        },
      ],
    };
  } finally {
    await registry.stop();
  }
}
