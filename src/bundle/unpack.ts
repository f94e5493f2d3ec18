import { describeRecipe } from "../recipes/identify";
import { imageName, type Descriptor } from "../oci/descriptor";
import type { Digest } from "../oci/digest";
import { isIndex, layerCompression } from "../oci/mediatypes";
import { formatPlatform } from "../oci/platform";
import { nameForDigest } from "../oci/reference";
import type { BundleContents } from "./reader";
import { ArchiveSink, LayoutDirSink, NullSink } from "./sinks";
import { copyImage } from "../copy/copy";
import { copyToLayout } from "../copy/layout";
import type { LayerMode } from "../copy/layer-modes";
import { Store } from "../store/store";
import type { LayoutSink, NamedImage } from "../transports/types";
import { UsageError } from "../util/errors";
import type { ProgressListener } from "../util/progress";
import type { BundleMetadata, DeltaBase } from "./format";
import { BundleSource } from "./source";
import { DeepCheckSink } from "./deep";
import { layoutFiles } from "./writer";
import { checkOutputParent } from "./output";
import { defaultThreads } from "../compression/codecs";
import { namingDamagedParts } from "./parts";
import { checkBase, openBase, reliedBy, type BaseSpec } from "./delta-source";

export type UnpackFormat = "oci" | "oci-archive" | "docker-archive";

export interface UnpackOptions {
  input: string;
  out: string;
  format: UnpackFormat;
  force: boolean;
  /** Rebuild the source's digests from recipes (default true); false writes the bundle's own form. */
  restoreDigests?: boolean;
  /**
   * Convert layers again on the way out; goes through the store in `cacheDir`. "zstd-to-gzip"
   * (unpack --for docker) converts only zstd layers and restores every other digest as usual.
   */
  layers?: LayerMode;
  cacheDir?: string;
  /** Leave out names that hold no runnable image (a signature or SBOM on its own): ctr import stops at them. */
  imagesOnly?: boolean;
  jobs?: number;
  /** A delta bundle's base (--base, --base-registry). */
  base?: BaseSpec;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
}

/**
 * A delta with its base checked to hold every relied-on blob (before anything is written), or the
 * bundle itself when it is complete. A delta without a base is refused: it makes no image alone.
 */
async function complete(source: BundleSource, base: BaseSpec | undefined, what: string): Promise<void> {
  if (source.relied.size === 0) return;
  if (!base?.base && !base?.baseRegistry) {
    throw new UsageError(
      `${source.label}: a delta bundle (it relies on ${source.relied.size} blob(s) it does not hold); ${what} needs its base: --base BUNDLE|oci:DIR or --base-registry REG`,
    );
  }
  const opened = await openBase(base, source);
  try {
    await checkBase(source, opened);
  } catch (err) {
    await opened.close();
    throw err;
  }
  source.useBase(opened);
}

/** Where the output can't go, said before anything is read. */
async function checkOutput(opts: UnpackOptions): Promise<void> {
  if (opts.format !== "oci") return checkOutputParent(opts.out);
  if (opts.out === "-") {
    throw new UsageError("--format oci writes a directory; use --format oci-archive or docker-archive for stdout");
  }
}

function outputSink(opts: UnpackOptions): LayoutSink {
  if (opts.format === "oci") {
    return new LayoutDirSink(opts.out, opts.force);
  }
  return new ArchiveSink(opts.out, {
    dockerManifest: opts.format === "docker-archive",
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
}

/** Layers asked of a bundle ahead of the one being written: recipe rebuilds run on every core meanwhile. */
const REBUILD_AHEAD = defaultThreads() + 1;

/**
 * unpack: copy(bundle → layout or archive), verifying on the way; the output is committed only
 * after the whole bundle checked out. With --layers, the images go through the store first,
 * converted there, and are then written out.
 */
export async function unpack(opts: UnpackOptions): Promise<BundleContents> {
  return namingDamagedParts(() => unpackBundle(opts), opts.signal);
}

async function unpackBundle(opts: UnpackOptions): Promise<BundleContents> {
  let convert = opts.layers !== undefined && opts.layers !== "keep";
  // Converting only the zstd layers keeps every other digest, recipe layers' included.
  const onlyZstd = opts.layers === "zstd-to-gzip";
  if (convert && !opts.cacheDir) throw new Error("unpack --layers needs a store directory");
  await checkOutput(opts);
  const source = await BundleSource.open(opts.input, {
    // Converted layers make new digests anyway: the bundle's own form is the shorter way there.
    restoreDigests: (!convert || onlyZstd) && opts.restoreDigests !== false,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  // Nothing to convert: the plain copy writes the same output without going through the store.
  if (onlyZstd && zstdLayers(source.contents) === 0) convert = false;
  let sink: LayoutSink | undefined;
  try {
    await complete(source, opts.base, "unpack");
    sink = outputSink(opts);
    if (!convert) {
      await copyToLayout(source, await source.images(), sink, {
        extraBlobs: source.extraBlobs(),
        files: (plan) => layoutFiles(plan),
        ahead: REBUILD_AHEAD,
        beforeCommit: () => source.finish(),
        ...(opts.imagesOnly ? { imagesOnly: true } : {}),
        ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      return source.contents;
    }
    const store = await Store.open(opts.cacheDir!);
    const converted: NamedImage[] = [];
    for (const image of await source.images()) {
      const report = await copyImage(source, store, image, {
        layers: opts.layers!,
        platforms: [],
        allPlatforms: true,
        withAttestations: true,
        jobs: opts.jobs ?? 4,
        ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      converted.push({ ...image, descriptor: report.descriptor });
    }
    await source.finish();
    await store.close();
    await copyToLayout(store, converted, sink, {
      files: (plan) => layoutFiles(plan),
      ...(opts.imagesOnly ? { imagesOnly: true } : {}),
    });
    return source.contents;
  } catch (err) {
    await sink?.abort();
    throw err;
  } finally {
    await source.close();
  }
}

/**
 * Distinct zstd layers of the bundle's manifests (all platforms). A digest-preserving bundle keeps
 * zstd layers as they are, so its restored images hold the same ones.
 */
export function zstdLayers(contents: BundleContents): number {
  const seen = new Set<string>();
  for (const m of contents.manifests.values()) {
    for (const l of m.layers) if (layerCompression(l.mediaType) === "zstd") seen.add(l.digest);
  }
  return seen.size;
}

/**
 * verify: the whole bundle read and checked, and every recipe run (a bundle only verifies if every
 * original layer can be rebuilt). `deep` also decompresses every compressed layer and checks it
 * against its config's diff_id, within the size airpack.json records or the ratio bound.
 */
export async function verify(
  input: string,
  signal?: AbortSignal,
  deep = false,
  base?: BaseSpec,
): Promise<BundleContents> {
  return namingDamagedParts(() => verifyBundle(input, signal, deep, base), signal);
}

/** A delta without --base is verified for what it holds; its relied-on blobs are listed, not read. */
async function verifyBundle(
  input: string,
  signal: AbortSignal | undefined,
  deep: boolean,
  base: BaseSpec | undefined,
): Promise<BundleContents> {
  const source = await BundleSource.open(input, signal ? { signal } : {});
  const withBase = base?.base !== undefined || base?.baseRegistry !== undefined;
  try {
    if (withBase) await complete(source, base, "verify --base");
    const sink = deep ? new DeepCheckSink(source) : new NullSink();
    await copyToLayout(source, await source.images(), sink, {
      ...(withBase ? {} : { absent: source.unavailable() }),
      files: (plan) => {
        if (sink instanceof DeepCheckSink) sink.learn(plan);
        return layoutFiles(plan);
      },
      ahead: REBUILD_AHEAD,
      beforeCommit: () => source.finish(),
      ...(signal ? { signal } : {}),
    });
    return source.contents;
  } finally {
    await source.close();
  }
}

export interface LayerSummary {
  digest: Digest;
  mediaType: string;
  compression: string;
  size: number;
  uncompressedSize?: number;
  /** kept | converted | foreign, or "recipe: <encoder>" / "kept: original (…)" in digest-preserving bundles. */
  mode: string;
}

export interface ImageSummary {
  name: string;
  digest: Digest;
  mediaType: string;
  sourceDigest?: Digest;
  /** A digest-named image whose restored root differs from what is packed: the name unpack gives it. */
  restoredName?: string;
  platforms: { platform: string; digest: Digest; layers: LayerSummary[] }[];
  skipped: { platform: string; digest: string; reason: string }[];
}

export interface BundleSummary {
  format: string;
  tool?: string;
  created?: string;
  layersMode?: string;
  images: ImageSummary[];
  totals: { blobs: number; layerBytes: number; uncompressedBytes: number; uncompressedKnown: boolean };
  /** Digest-preserving bundles: how many gzip layers got a recipe, and the original layer bytes. */
  recipes?: { gzipLayers: number; withRecipe: number; recipeBytes: number; originalLayerBytes: number };
  /** A delta bundle: what it was made against, and the blobs it relies on (with the images needing each). */
  delta?: { base: DeltaBase[]; relies: { digest: Digest; size: number; neededBy: string[] }[]; reliedBytes: number };
  verified: boolean;
}

/** Turn what the reader saw into the inspect view. */
export function summarize(contents: BundleContents): BundleSummary {
  const meta = contents.metadata;
  const layerInfo = new Map<string, { mode: string; uncompressedSize?: number }>();
  for (const img of meta?.images ?? []) {
    for (const m of img.manifests) {
      m.layers.forEach((l, i) => {
        const mode = l.recipe
          ? `recipe: ${describeRecipe(l.recipe)}`
          : l.kept
            ? l.kept.replace(/^(?!kept)/, "kept: ")
            : l.mode;
        const info = { mode, ...(l.uncompressedSize !== undefined ? { uncompressedSize: l.uncompressedSize } : {}) };
        // Keyed by image too: two images can convert to the same manifest from different originals.
        layerInfo.set(`${img.name} ${m.digest}/${i}`, info);
        if (!layerInfo.has(l.digest)) layerInfo.set(l.digest, info);
      });
    }
  }
  // A delta's relied-on layers are not in it: its totals are what it holds.
  const counted = new Set<string>((meta?.delta?.relies ?? []).map((r) => r.digest));
  const totals = {
    blobs: contents.partial ? contents.referenced : contents.blobs.size,
    layerBytes: 0,
    uncompressedBytes: 0,
    uncompressedKnown: true,
  };
  const images: ImageSummary[] = contents.index.manifests.map((root) => {
    const name = imageName(root);
    const metaImage = meta?.images.find((i) => i.name === name);
    // Depth first in list order, each index once and each (manifest, platform) once: an index graph
    // with many paths to the same documents costs one step per reference, not per path.
    const leaves: Descriptor[] = [];
    const walked = new Set<string>();
    const todo: Descriptor[] = [root];
    for (let d = todo.pop(); d; d = todo.pop()) {
      const idx = isIndex(d.mediaType) ? contents.indexes.get(d.digest) : undefined;
      const key = idx ? d.digest : `${d.digest} ${formatPlatform(d.platform)}`;
      if (walked.has(key)) continue;
      walked.add(key);
      if (idx) todo.push(...[...idx.manifests].reverse());
      else if (contents.manifests.has(d.digest)) leaves.push(d);
    }
    const restoredName = metaImage?.restored ? nameForDigest(name, metaImage.restored.digest) : undefined;
    return {
      name,
      digest: root.digest,
      mediaType: root.mediaType,
      ...(metaImage ? { sourceDigest: metaImage.sourceDigest } : {}),
      ...(restoredName && restoredName !== name ? { restoredName } : {}),
      platforms: leaves.map((leaf) => ({
        platform: formatPlatform(leaf.platform ?? platformOf(contents, leaf.digest)),
        digest: leaf.digest,
        layers: contents.manifests.get(leaf.digest)!.layers.map((l, i) => {
          const info = layerInfo.get(`${name} ${leaf.digest}/${i}`) ?? layerInfo.get(l.digest);
          const compression = layerCompression(l.mediaType) ?? "other";
          const uncompressedSize = compression === "none" ? l.size : info?.uncompressedSize;
          if (!counted.has(l.digest)) {
            counted.add(l.digest);
            totals.layerBytes += l.size;
            if (uncompressedSize === undefined) totals.uncompressedKnown = false;
            else totals.uncompressedBytes += uncompressedSize;
          }
          return {
            digest: l.digest,
            mediaType: l.mediaType,
            compression,
            size: l.size,
            ...(uncompressedSize !== undefined ? { uncompressedSize } : {}),
            mode: info?.mode ?? "unknown",
          };
        }),
      })),
      skipped: metaImage?.skipped ?? [],
    };
  });
  const recipes = recipeTotals(meta);
  const needers = reliedBy(meta);
  const delta = meta?.delta && {
    base: meta.delta.base,
    relies: meta.delta.relies.map((r) => ({ ...r, neededBy: needers.get(r.digest) ?? [] })),
    reliedBytes: meta.delta.relies.reduce((a, r) => a + r.size, 0),
  };
  return {
    format: contents.format,
    ...(recipes ? { recipes } : {}),
    ...(delta ? { delta } : {}),
    ...(meta ? { tool: meta.tool, created: meta.created, layersMode: meta.layers } : {}),
    images,
    totals,
    verified: !contents.partial,
  };
}

function recipeTotals(meta: BundleMetadata | undefined): BundleSummary["recipes"] {
  if (!meta?.images.some((i) => i.restored)) return undefined;
  const seen = new Set<string>();
  const t = { gzipLayers: 0, withRecipe: 0, recipeBytes: 0, originalLayerBytes: 0 };
  for (const img of meta.images) {
    for (const l of img.manifests.flatMap((m) => m.layers)) {
      if (seen.has(l.source.digest)) continue;
      seen.add(l.source.digest);
      t.originalLayerBytes += l.source.size;
      if (!l.source.mediaType.endsWith("gzip")) continue;
      t.gzipLayers++;
      if (l.recipe) {
        t.withRecipe++;
        t.recipeBytes += JSON.stringify(l.recipe).length;
      }
    }
  }
  return t;
}

function platformOf(
  contents: BundleContents,
  manifestDigest: Digest,
): { os: string; architecture: string } | undefined {
  const m = contents.manifests.get(manifestDigest);
  const cfg = m ? contents.configs.get(m.config.digest) : undefined;
  return cfg?.os && cfg.architecture ? { os: cfg.os, architecture: cfg.architecture } : undefined;
}

/** inspect: the small documents only, or with `full` the whole bundle read and checked (recipes not run). */
export async function inspect(input: string, full: boolean): Promise<BundleSummary> {
  return namingDamagedParts(() => inspectBundle(input, full));
}

async function inspectBundle(input: string, full: boolean): Promise<BundleSummary> {
  const source = await BundleSource.open(input, { restoreDigests: false });
  try {
    if (!full) return summarize(source.stopAtLayers());
    await source.finish();
    return summarize(source.contents);
  } finally {
    await source.close();
  }
}
