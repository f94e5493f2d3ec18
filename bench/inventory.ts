/**
 * D. airpack inventory of a real registry (CNCF distribution on loopback) holding 200 tags: 10
 * repositories of 20 tags, each tag its own manifest (an annotation differs) over one small config
 * and layer. Target: under 10 s with the default concurrency (--jobs 8).
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { putManifest, uploadBlob } from "../test/helpers/registry-fixtures";
import { startRegistry } from "../test/helpers/peers/registry";
import { AIRPACK, allWalls, best, cpuOf, log, peakMb, run, sec, tmp, verdict, type PartResult } from "./lib";

const REPOS = 10;
const TAGS = 20;
const TARGET_S = 10;

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
    log(`inventory: ${REPOS * TAGS} tags in ${registry.host}`);
    const out = join(tmp(), "bench.inventory.json");
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push(await run("inventory", [AIRPACK, "inventory", registry.host, "-o", out]));
    const inv = JSON.parse(await readFile(out, "utf8")) as { manifests: unknown[] };
    const b = best(runs);
    const ok = b.wall < TARGET_S && inv.manifests.length === REPOS * TAGS;
    return {
      sections: [
        {
          title,
          body:
            `${inv.manifests.length} manifests listed (catalog, ${REPOS} tag lists, ${REPOS * TAGS} manifest GETs, 8 in flight). ` +
            `Wall ${sec(b.wall)} best (${allWalls(runs)}), CPU ${cpuOf(b)}, peak RSS ${peakMb(b).toFixed(0)} MB.`,
        },
      ],
      metrics: [
        {
          metric: "inventory: 200-tag registry",
          value: sec(b.wall),
          target: `< ${TARGET_S} s`,
          verdict: verdict(ok),
        },
      ],
    };
  } finally {
    await registry.stop();
  }
}
