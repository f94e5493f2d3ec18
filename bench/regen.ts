/**
 * Times one airpack encoder by itself: regenerates a gzip blob from its uncompressed tar with
 * regenerateGzip(recipe) (src/recipes/regenerate.ts, on this thread, no worker), hashes it and
 * checks the digest. Used by bench part B for per-family throughput without the bundle around it.
 *
 * usage: node dist/bench/regen.js RECIPE_JSON UNCOMPRESSED_TAR EXPECTED_DIGEST
 * prints: {"inputBytes":…,"outputBytes":…,"seconds":…,"digest":"sha256:…","ok":true}; exit 1 if not ok.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { regenerateGzip } from "../src/recipes/regenerate";
import type { GzipRecipe } from "../src/recipes/format";

async function main(): Promise<void> {
  const [recipeJson, input, expected] = process.argv.slice(2);
  if (!recipeJson || !input || !expected) {
    process.stderr.write("usage: regen.js RECIPE_JSON UNCOMPRESSED_TAR EXPECTED_DIGEST\n");
    process.exit(2);
  }
  const recipe = JSON.parse(recipeJson) as GzipRecipe;
  const hash = createHash("sha256");
  let inputBytes = 0;
  let outputBytes = 0;
  const source = createReadStream(input, { highWaterMark: 1 << 20 });
  source.on("data", (c) => {
    inputBytes += c.length;
  });
  const sink = new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      outputBytes += chunk.length;
      cb();
    },
  });
  const start = process.hrtime.bigint();
  await pipeline(source, regenerateGzip(recipe), sink);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const digest = `sha256:${hash.digest("hex")}`;
  const ok = digest === expected;
  process.stdout.write(`${JSON.stringify({ inputBytes, outputBytes, seconds, digest, ok })}\n`);
  if (!ok) process.exitCode = 1;
}

main().catch((err: unknown) => {
  process.stderr.write(`regen.js: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
