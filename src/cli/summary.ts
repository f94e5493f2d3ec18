import type { BundleSummary } from "../bundle/unpack";
import { formatBytes, table } from "./output";

/** inspect's human output: one row per layer, then totals, recipe savings and what was left out. */
export function printSummary(s: BundleSummary, bundleBytes?: number): void {
  const rows: string[][] = [["IMAGE", "PLATFORM", "LAYER", "TYPE", "SIZE", "UNCOMPRESSED", "PACKED AS"]];
  for (const img of s.images) {
    for (const p of img.platforms) {
      p.layers.forEach((l, i) => {
        rows.push([
          i === 0 ? img.name : "",
          i === 0 ? p.platform : "",
          l.digest.slice(7, 19),
          l.compression,
          formatBytes(l.size),
          l.uncompressedSize !== undefined ? formatBytes(l.uncompressedSize) : "unknown",
          l.mode,
        ]);
      });
      if (p.layers.length === 0) rows.push([img.name, p.platform, "-", "-", "-", "-", "-"]);
    }
  }
  process.stdout.write(table(rows) + "\n");
  const t = s.totals;
  // Kept compressed layers are never decompressed at pack time (unless --verify-diff-ids): say so in words.
  const unc = t.uncompressedKnown
    ? `${formatBytes(t.uncompressedBytes)} uncompressed`
    : t.uncompressedBytes === 0
      ? "uncompressed size unknown"
      : `${formatBytes(t.uncompressedBytes)} uncompressed plus layers of unknown size`;
  process.stdout.write(
    `\n${s.images.length} image(s), ${t.blobs} blobs; layers ${formatBytes(t.layerBytes)} stored, ${unc}; bundle compression: ${s.format}` +
      (s.layersMode ? `; layers mode: ${s.layersMode}` : "") +
      (s.tool ? `; made by ${s.tool} at ${s.created}` : "") +
      "\n",
  );
  if (s.recipes) {
    const r = s.recipes;
    const pct = (a: number, b: number): string => (b === 0 ? "-" : `${((100 * a) / b).toFixed(0)}%`);
    const diff = bundleBytes === undefined ? 0 : r.originalLayerBytes - bundleBytes;
    const saved =
      bundleBytes === undefined
        ? ""
        : `; bundle is ${pct(Math.abs(diff), r.originalLayerBytes)} ${diff >= 0 ? "smaller" : "larger"} than the original layers`;
    process.stdout.write(
      `digests preserved: ${r.withRecipe}/${r.gzipLayers} gzip layers (${pct(r.withRecipe, r.gzipLayers)}) have recipes (${r.recipeBytes} bytes)${saved}\n`,
    );
  }
  printDelta(s);
  for (const img of s.images) {
    if (img.restoredName) process.stdout.write(`note: ${img.name}: unpack restores it as ${img.restoredName}\n`);
    for (const sk of img.skipped)
      process.stdout.write(`note: ${img.name}: left out ${sk.platform} ${sk.digest.slice(0, 19)}… (${sk.reason})\n`);
  }
}

/** A delta bundle's base and the blobs it relies on (inspect, verify). */
export function printDelta(s: BundleSummary): void {
  if (!s.delta) return;
  const d = s.delta;
  const bases = d.base.map((b) => `${b.kind} ${b.name ?? ""} sha256 ${b.sha256}`.replace("  ", " ")).join("; ");
  process.stdout.write(
    `delta: needs base (${bases}); relies on ${d.relies.length} blob(s), ${formatBytes(d.reliedBytes)}, not in this bundle:\n`,
  );
  for (const r of d.relies) {
    process.stdout.write(`  ${r.digest}  ${r.size} bytes  needed by ${r.neededBy.join(", ") || "-"}\n`);
  }
}
