import { convertLayer, type ConvertOptions, type LayerResult } from "./layer";
import type { LayerMode } from "../copy/layer-modes";
import {
  encodeJson,
  isRunnableImage,
  parseConfig,
  parseIndex,
  parseJson,
  parseManifest,
  sniffManifestType,
  type Descriptor,
} from "../oci/descriptor";
import { sha256, shortDigest, type Digest } from "../oci/digest";
import {
  isIndex,
  isManifest,
  isSchema1,
  layerCompression,
  mediaTypeInfo,
  MediaType,
  toOciMediaType,
  type Family,
} from "../oci/mediatypes";
import { formatPlatform, isAttestationPlatform, platformMatches, type Platform } from "../oci/platform";
import { nameForDigest, pinnedDigest } from "../oci/reference";
import type { Store } from "../store/store";
import type { ImageSource, NamedImage } from "../transports/types";
import { mapPool, type Limiter } from "../util/pool";
import { MAX_INDEX_DEPTH } from "../oci/limits";
import type { GzipRecipe } from "../recipes/format";
import type { ProgressListener } from "../util/progress";

export interface CopyOptions {
  layers: LayerMode;
  /** Platforms to keep from an index; undefined with allPlatforms=false means the host platform. */
  platforms: Platform[];
  allPlatforms: boolean;
  withAttestations: boolean;
  jobs: number;
  level?: number;
  /** With layers "uncompressed": store recipes and the original manifests so unpack restores every digest. */
  preserveDigests?: boolean;
  /** Decompress kept layers too and check their diff_ids. */
  verifyDiffIds?: boolean;
  /** Bounds CPU-heavy work across all layers of a command. */
  cpu?: Limiter;
  /** Bounds blob transfers across images copied side by side (each image alone is bounded by `jobs`). */
  transfers?: Limiter;
  /** Blobs the site has (pack --have): layers among them are relied on, never fetched. */
  have?: ReadonlyMap<Digest, number>;
  /** Lets plain layer copies finish in the background (see ConvertOptions.background). */
  background?: ConvertOptions["background"];
  onProgress?: ProgressListener;
  signal?: AbortSignal;
}

export interface LayerReport {
  /** The layer as the source had it. */
  source: Descriptor;
  /** The layer as stored. */
  stored: Descriptor;
  diffId?: Digest;
  uncompressedSize?: number;
  action: LayerResult["action"];
  recipe?: GzipRecipe;
  keptReason?: string;
}

export interface ManifestReport {
  platform?: Platform;
  sourceDigest: Digest;
  descriptor: Descriptor;
  config: Descriptor;
  layers: LayerReport[];
  /** Non-image manifests (signatures, SBOMs) copied as they are. */
  artifact: boolean;
}

export interface ImageReport {
  name: string;
  source: string;
  sourceDescriptor: Descriptor;
  descriptor: Descriptor;
  /** The root that restores the source's digests (the source root itself unless platforms were left out). */
  restored: Descriptor;
  /** Original manifests and indexes kept so unpack can restore them. */
  originals: Descriptor[];
  manifests: ManifestReport[];
  /** Index entries left out, with why. */
  skipped: { platform: string; digest: Digest; reason: string }[];
  /** Whether the originals were kept so that unpack restores the source's digests. */
  preserved: boolean;
  /** Things the source got wrong that the copy worked around (printed as warnings). */
  warnings: string[];
}

interface Ctx {
  source: ImageSource;
  store: Store;
  opts: CopyOptions;
  image: NamedImage;
  report: ImageReport;
  /** Documents copied so far, by digest: one listed many times (or on many levels) is copied once. */
  copied: Map<string, Promise<Copied>>;
}

/** Copy one named image (index or manifest) from a source into the store, converting layers. */
export async function copyImage(
  source: ImageSource,
  store: Store,
  image: NamedImage,
  opts: CopyOptions,
): Promise<ImageReport> {
  // A source that carries recipes (a digest-preserving bundle) keeps its digests through a plain copy.
  const preserved = opts.preserveDigests === true || (opts.layers === "keep" && source.recipeFor !== undefined);
  if (preserved !== (opts.preserveDigests === true)) opts = { ...opts, preserveDigests: preserved };
  const report: ImageReport = {
    preserved,
    warnings: [],
    name: image.name,
    source: image.source,
    sourceDescriptor: image.descriptor,
    descriptor: image.descriptor,
    restored: image.descriptor,
    originals: [],
    manifests: [],
    skipped: [],
  };
  const ctx: Ctx = { source, store, opts, image, report, copied: new Map() };
  let copied = await copyNode(ctx, image.descriptor, image.name, true, 1);
  const pin = pinnedDigest(image.name);
  if (pin && copied.only) {
    // A digest names one thing: one platform taken from a pinned index is carried as that
    // platform's own manifest (a digest the source has too), not as an index made up here.
    const filtered = copied.restored.digest;
    report.originals = report.originals.filter((o) => o.digest !== filtered);
    copied = { converted: withoutPlatform(copied.only.converted), restored: withoutPlatform(copied.only.restored) };
  }
  report.descriptor = copied.converted;
  report.restored = copied.restored;
  // As written (index.json, airpack.json); a restoring unpack names the restored root the same way.
  report.name = nameForDigest(image.name, copied.converted.digest);
  if (pin && report.restored.digest !== pin) report.warnings.push(pinMoved(image.name, pin, report));
  if (image.warnings) report.warnings.push(...image.warnings);
  await store.tag({ name: report.name, descriptor: report.descriptor, source: image.source });
  return report;
}

function withoutPlatform(desc: Descriptor): Descriptor {
  return { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
}

function pinMoved(name: string, pin: Digest, report: ImageReport): string {
  const kept = report.manifests.filter((m) => !m.artifact).map((m) => formatPlatform(m.platform));
  const what = report.manifests.length === 1 ? "its manifest" : "an index of those";
  return (
    `${name} is a multi-platform index; only ${kept.join(", ")} is packed, as ${what}, ` +
    `named ${nameForDigest(name, report.restored.digest)} (pins to ${shortDigest(pin)}… will not resolve offline; ` +
    `--all-platforms keeps the index)`
  );
}

/** A copied node: as stored for direct import, and the digest-preserving original it stands for. */
interface Copied {
  converted: Descriptor;
  restored: Descriptor;
  /** An index filtered down to one image manifest: that manifest. */
  only?: Copied;
}

/** Keep an original document in the store when the converted one differs (for digest restoration). */
async function keepOriginal(ctx: Ctx, desc: Descriptor, bytes: Uint8Array, errorLabel: string): Promise<void> {
  if (!ctx.opts.preserveDigests) return;
  await ctx.store.putSmall(desc, bytes, errorLabel);
  ctx.report.originals.push({ mediaType: desc.mediaType, digest: desc.digest, size: desc.size });
}

/**
 * Copy one document and what it references, once per digest: a later reference to the same digest
 * gets the same result (a manifest listed again under another platform is reported under that one too).
 * `depth` is its level below the image's root (1); nesting deeper than MAX_INDEX_DEPTH is refused.
 */
async function copyNode(ctx: Ctx, desc: Descriptor, errorLabel: string, top: boolean, depth: number): Promise<Copied> {
  if (depth > MAX_INDEX_DEPTH) {
    throw new Error(`${errorLabel}: indexes nest more than ${MAX_INDEX_DEPTH} levels deep (the limit)`);
  }
  const earlier = ctx.copied.get(desc.digest);
  if (earlier) {
    const result = await earlier;
    const same = ctx.report.manifests.filter((m) => m.sourceDigest === desc.digest);
    const platform = formatPlatform(desc.platform);
    if (same[0] && desc.platform && !same.some((m) => formatPlatform(m.platform) === platform)) {
      ctx.report.manifests.push({ ...same[0], platform: desc.platform });
    }
    return result;
  }
  const copying = copyNodeOnce(ctx, desc, errorLabel, top, depth);
  ctx.copied.set(desc.digest, copying);
  return copying;
}

async function copyNodeOnce(
  ctx: Ctx,
  desc: Descriptor,
  errorLabel: string,
  top: boolean,
  depth: number,
): Promise<Copied> {
  if (isSchema1(desc.mediaType)) {
    throw new Error(
      `${errorLabel}: Docker schema 1 manifests are not supported (deprecated); re-push the image with a current client`,
    );
  }
  if (isIndex(desc.mediaType)) return copyIndex(ctx, desc, errorLabel, depth);
  if (isManifest(desc.mediaType)) return copyManifest(ctx, desc, errorLabel);
  const bytes = await ctx.source.fetchSmall(desc, errorLabel);
  let doc: Record<string, unknown>;
  try {
    doc = parseJson(bytes, errorLabel);
  } catch (err) {
    throw new Error(`${errorLabel}: ${desc.mediaType} is neither an image index nor a manifest (not JSON)`, {
      cause: err,
    });
  }
  const type = sniffManifestType(doc);
  if (type && isIndex(type)) return copyIndex(ctx, { ...desc, mediaType: type }, errorLabel, depth);
  if (type && isManifest(type)) return copyManifest(ctx, { ...desc, mediaType: type }, errorLabel);
  if (top) throw new Error(`${errorLabel}: ${desc.mediaType} is neither an image index nor a manifest`);
  // An artifact manifest of a type we don't know, referenced from an index: copied as it is.
  await ctx.store.putSmall(desc, bytes, errorLabel);
  return { converted: desc, restored: desc };
}

/**
 * A descriptor whose media type disagrees with the manifest's own (OCI over a Docker v2s2 body, or
 * the reverse): the body is what its digest covers, so it wins, as in skopeo; the copy then keeps
 * every byte, and the user is told.
 */
function bodyTyped(ctx: Ctx, desc: Descriptor, bodyType: string | undefined, errorLabel: string): Descriptor {
  if (!bodyType || bodyType === desc.mediaType || !isManifest(bodyType)) return desc;
  ctx.report.warnings.push(
    `${errorLabel}: the descriptor says ${desc.mediaType} but the manifest is ${bodyType}; kept as ${bodyType}`,
  );
  return { ...desc, mediaType: bodyType };
}

function selectChild(ctx: Ctx, child: Descriptor, siblings: Descriptor[]): string | undefined {
  const { opts } = ctx;
  if (isAttestationPlatform(child.platform)) {
    return opts.withAttestations ? undefined : "attestation (use --with-attestations)";
  }
  if (opts.allPlatforms) return undefined;
  // An index inside an index is chosen from by its own entries' platforms; an index that names no
  // platform at all (artifacts, a referrers list) is not split by platform (as containerd and skopeo).
  if (!child.platform && (isIndex(child.mediaType) || siblings.every((s) => !s.platform))) return undefined;
  if (!child.platform) return "no platform";
  return opts.platforms.some((p) => platformMatches(p, child.platform)) ? undefined : "platform not selected";
}

async function copyIndex(ctx: Ctx, desc: Descriptor, errorLabel: string, depth: number): Promise<Copied> {
  const bytes = await ctx.source.fetchSmall(desc, errorLabel);
  const index = parseIndex(bytes, errorLabel);
  const doc = parseJson(bytes, errorLabel) as { manifests: unknown[] };
  const kept: { i: number; child: Descriptor }[] = [];
  for (const [i, child] of index.manifests.entries()) {
    const reason = selectChild(ctx, child, index.manifests);
    if (reason) ctx.report.skipped.push({ platform: formatPlatform(child.platform), digest: child.digest, reason });
    else kept.push({ i, child });
  }
  // Attestations only make sense next to the images they describe.
  if (kept.length > 0 && kept.every(({ child }) => isAttestationPlatform(child.platform))) kept.length = 0;
  if (kept.length === 0) {
    const have = index.manifests.map((m) => formatPlatform(m.platform)).join(", ");
    const want = ctx.opts.platforms.map(formatPlatform).join(", ");
    throw new Error(
      `${errorLabel}: no manifest for platform ${want} (the index has: ${have}); use --platform or --all-platforms`,
    );
  }
  const filtered = kept.length !== index.manifests.length;
  let changed = filtered;
  let restoredChanged = filtered;
  const newEntries: unknown[] = [];
  let onlyCopied: Copied | undefined;
  const restoredEntries: unknown[] = [];
  for (const { i, child } of kept) {
    const copied = await copyNode(ctx, child, `${errorLabel} [${formatPlatform(child.platform)}]`, false, depth + 1);
    onlyCopied = copied;
    const entry = { ...(doc.manifests[i] as Record<string, unknown>) };
    const restoredEntry = { ...entry };
    if (copied.converted.digest !== child.digest) {
      changed = true;
      entry.mediaType = copied.converted.mediaType;
      entry.digest = copied.converted.digest;
      entry.size = copied.converted.size;
    }
    if (copied.restored.digest !== child.digest) {
      restoredChanged = true;
      restoredEntry.digest = copied.restored.digest;
      restoredEntry.size = copied.restored.size;
    }
    newEntries.push(entry);
    restoredEntries.push(restoredEntry);
  }
  if (!changed) {
    await ctx.store.putSmall(desc, bytes, errorLabel);
    return { converted: desc, restored: desc };
  }
  // Keep the original index too, so nothing about the source is lost.
  await ctx.store.putSmall(desc, bytes, errorLabel);
  let restored = desc;
  if (ctx.opts.preserveDigests) {
    if (restoredChanged) {
      // Platforms were left out: the restorable index lists the original manifests that are inside.
      const out = encodeJson({ ...parseJson(bytes, errorLabel), manifests: restoredEntries });
      restored = { mediaType: desc.mediaType, digest: sha256(out), size: out.length };
      await keepOriginal(ctx, restored, out, errorLabel);
    } else {
      await keepOriginal(ctx, desc, bytes, errorLabel);
    }
  }
  const only =
    filtered && kept.length === 1 && onlyCopied && isManifest(kept[0]!.child.mediaType) ? onlyCopied : undefined;
  const full = parseJson(bytes, errorLabel);
  const anyOciChild = newEntries.some((e) => mediaTypeInfo(String((e as Descriptor).mediaType))?.family === "oci");
  full.manifests = newEntries;
  let mediaType = desc.mediaType;
  if (anyOciChild && mediaType === MediaType.dockerManifestList) mediaType = MediaType.ociIndex;
  if (full.mediaType !== undefined || mediaType !== desc.mediaType) full.mediaType = mediaType;
  const out = encodeJson(full);
  const newDesc: Descriptor = { mediaType, digest: sha256(out), size: out.length };
  await ctx.store.putSmall(newDesc, out, errorLabel);
  return { converted: newDesc, restored, ...(only ? { only } : {}) };
}

async function copyManifest(ctx: Ctx, described: Descriptor, errorLabel: string): Promise<Copied> {
  const { source, store, opts } = ctx;
  const bytes = await source.fetchSmall(described, errorLabel);
  const manifest = parseManifest(bytes, errorLabel);
  const desc = bodyTyped(ctx, described, manifest.mediaType, errorLabel);
  const configBytes = await source.fetchSmall(manifest.config, `${errorLabel} config`);
  await store.putSmall(manifest.config, configBytes, `${errorLabel} config`);
  // Artifacts are copied as they are.
  const isImage = isRunnableImage(manifest);
  const diffIds = isImage ? (parseConfig(configBytes, `${errorLabel} config`).rootfs?.diff_ids ?? []) : [];
  if (isImage && diffIds.length !== manifest.layers.length) {
    throw new Error(`${errorLabel}: config lists ${diffIds.length} diff_ids for ${manifest.layers.length} layers`);
  }
  const sourceFamily: Family = mediaTypeInfo(desc.mediaType)?.family ?? "oci";
  // v2s2 has no zstd layer type: a zstd target (or zstd layer kept) means an OCI manifest.
  const needsOci =
    sourceFamily === "docker" &&
    isImage &&
    manifest.layers.some((l) => {
      const c = layerCompression(l.mediaType);
      return c !== undefined && (opts.layers === "zstd" || (opts.layers === "keep" && c === "zstd"));
    });
  const family: Family = needsOci ? "oci" : sourceFamily;

  const results = await mapPool(manifest.layers, opts.jobs, async (layer, i) => {
    const layerWhat = `${errorLabel} layer ${shortDigest(layer.digest)}…`;
    const convertOpts = {
      mode: isImage ? opts.layers : ("keep" as const),
      family,
      ...(opts.preserveDigests ? { preserveDigests: true } : {}),
      ...(opts.cpu ? { cpu: opts.cpu } : {}),
      ...(opts.background ? { background: opts.background } : {}),
      ...(opts.have ? { have: opts.have } : {}),
      ...(opts.verifyDiffIds ? { verifyDiffIds: true } : {}),
      ...(opts.level !== undefined ? { level: opts.level } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    };
    const convert = (): Promise<LayerResult> => convertLayer(source, store, layer, diffIds[i], layerWhat, convertOpts);
    return opts.transfers ? opts.transfers.run(convert) : convert();
  });

  const layers: LayerReport[] = manifest.layers.map((layer, i) => ({
    source: layer,
    stored: results[i]!.descriptor,
    ...(diffIds[i] ? { diffId: diffIds[i] } : {}),
    ...(results[i]!.uncompressedSize !== undefined ? { uncompressedSize: results[i]!.uncompressedSize } : {}),
    action: results[i]!.action,
    ...(results[i]!.recipe ? { recipe: results[i]!.recipe } : {}),
    ...(results[i]!.keptReason ? { keptReason: results[i]!.keptReason } : {}),
  }));
  const unchanged =
    !needsOci && layers.every((l) => l.stored.digest === l.source.digest && l.stored.mediaType === l.source.mediaType);
  let result = desc;
  if (unchanged) {
    await store.putSmall(desc, bytes, errorLabel);
  } else {
    const doc = parseJson(bytes, errorLabel);
    const rawLayers = doc.layers as Record<string, unknown>[];
    doc.layers = layers.map((l, i) => {
      const entry: Record<string, unknown> = {
        ...rawLayers[i],
        mediaType: l.stored.mediaType,
        digest: l.stored.digest,
        size: l.stored.size,
      };
      if (l.stored.digest !== l.source.digest) delete entry.urls;
      return entry;
    });
    if (needsOci) {
      doc.mediaType = MediaType.ociManifest;
      doc.config = { ...(doc.config as Record<string, unknown>), mediaType: toOciMediaType(manifest.config.mediaType) };
    }
    const out = encodeJson(doc);
    result = { mediaType: needsOci ? MediaType.ociManifest : desc.mediaType, digest: sha256(out), size: out.length };
    await store.putSmall(result, out, errorLabel);
    await keepOriginal(ctx, desc, bytes, errorLabel);
  }
  ctx.report.manifests.push({
    ...(desc.platform ? { platform: desc.platform } : {}),
    sourceDigest: desc.digest,
    descriptor: result,
    config: needsOci ? { ...manifest.config, mediaType: toOciMediaType(manifest.config.mediaType) } : manifest.config,
    layers,
    artifact: !isImage,
  });
  return { converted: { ...result, ...(desc.platform ? { platform: desc.platform } : {}) }, restored: desc };
}
