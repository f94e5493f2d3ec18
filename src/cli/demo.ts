import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pack } from "../bundle/pack";
import { summarize, verify } from "../bundle/unpack";
import { hostPlatform } from "../oci/platform";
import { formatBytes } from "./output";

/** npm start: pack the project's fixture images, verify the bundle, print a summary. */
export async function runDemo(g: { quiet: boolean; json: boolean }): Promise<void> {
  const root = resolve(__dirname, "..", "..", "..");
  const outDir = join(root, "demo");
  const cache = await mkdtemp(join(tmpdir(), "airpack-demo-cache-"));
  const out = join(outDir, "fixtures.tar.xz");
  await import("node:fs/promises").then((fs) => fs.mkdir(outDir, { recursive: true }));
  try {
    const result = await pack({
      sources: [
        `oci:${join(root, "fixtures", "out", "oci")}`,
        `docker-archive:${join(root, "fixtures", "out", "docker-legacy.tar")}`,
      ],
      out,
      cacheDir: cache,
      compress: "xz",
      layers: "keep",
      platforms: [hostPlatform()],
      allPlatforms: true,
      withAttestations: false,
      jobs: 4,
    });
    const s = summarize(await verify(out));
    if (g.json) {
      process.stdout.write(JSON.stringify({ output: out, bytes: result.bytesWritten, summary: s }, null, 2) + "\n");
      return;
    }
    process.stdout.write(
      `packed ${s.images.length} images into ${out} (${formatBytes(result.bytesWritten)}) and verified ${s.totals.blobs} blobs:\n`,
    );
    for (const img of s.images) {
      const layers = img.platforms.flatMap((p) => p.layers);
      const kinds = [...new Set(layers.map((l) => l.compression))].join("+");
      process.stdout.write(
        `  ${img.name}  ${img.platforms.map((p) => p.platform).join(",")}  ${layers.length} layers (${kinds})\n`,
      );
    }
    process.stdout.write(
      `next: node bin/airpack inspect ${out}\n      node bin/airpack unpack ${out} -o - | ctr -n k8s.io images import -\n`,
    );
  } finally {
    await rm(cache, { recursive: true, force: true });
  }
}
