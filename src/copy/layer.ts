import { discard } from "../util/streams";
import type { LayerMode } from "./layer-modes";
import { pipeline } from "node:stream/promises";
import type { Readable } from "node:stream";
import type { FileSpot } from "../util/file-writer";
import type { Descriptor } from "../oci/descriptor";
import { shortDigest, type Digest } from "../oci/digest";
import { layerCompression, layerMediaType, mediaTypeInfo, type Compression, type Family } from "../oci/mediatypes";
import type { Store } from "../store/store";
import type { CarriedRecipe, ImageSource } from "../transports/types";
import { meter, progressCounter } from "../util/progress";
import { compressStream, decompressLayer } from "../compression/codecs";
import { diffIdCheck } from "./diff-id";
import type * as Preserve from "./preserve";
import type { ConvertOptions, LayerResult } from "./layer-types";

export type { ConvertOptions, LayerResult } from "./layer-types";

export function targetCompression(mode: LayerMode, current: Compression): Compression {
  if (mode === "zstd-to-gzip") return current === "zstd" ? "gzip" : current;
  return mode === "keep" ? current : mode === "uncompressed" ? "none" : mode;
}

/** The encoder models load only for --preserve-digests (they are most of pack's start-up code). */
function preserve(): Promise<typeof Preserve> {
  return import("./preserve.js");
}

/**
 * Bring one layer into the store, converted to the target compression. The uncompressed
 * bytes of every converted layer are checked against the config's diff_id on the way.
 */
export async function convertLayer(
  source: ImageSource,
  store: Store,
  layer: Descriptor,
  diffId: Digest | undefined,
  errorLabel: string,
  opts: ConvertOptions,
): Promise<LayerResult> {
  return store.exclusive(`layer ${layer.digest}`, () =>
    convertOneLayer(source, store, layer, diffId, errorLabel, opts),
  );
}

async function convertOneLayer(
  source: ImageSource,
  store: Store,
  layer: Descriptor,
  diffId: Digest | undefined,
  errorLabel: string,
  opts: ConvertOptions,
): Promise<LayerResult> {
  const info = mediaTypeInfo(layer.mediaType);
  const from = layerCompression(layer.mediaType);
  if (info?.nonDistributable && !(await source.hasBlob(layer))) {
    return { descriptor: layer, action: "foreign" };
  }
  const relied = reliedOn(layer, diffId, opts, errorLabel);
  if (relied) return relied;
  const id = layer.digest;
  const label = shortDigest(layer.digest).slice(7);
  if (from === undefined || info === undefined) {
    // Unknown layer type (artifact payload): copied byte for byte.
    return copyBlob(source, store, layer, undefined, errorLabel, opts);
  }
  const to = targetCompression(opts.mode, from);
  const carried = source.recipeFor?.(layer);
  if (carried && diffId === carried.uncompressed.digest) {
    // The source rebuilds this gzip layer from an uncompressed blob it holds: take that blob, and
    // the recipe too where the copy keeps digests, instead of rebuilding and identifying it again.
    const keepRecipe = opts.mode === "keep" || (to === "none" && opts.preserveDigests === true);
    if (keepRecipe || to === "none") {
      return carryUncompressed(source, store, layer, carried, errorLabel, {
        ...opts,
        keepRecipe,
        nonDistributable: info.nonDistributable,
      });
    }
  }
  if (to === from) return copyBlob(source, store, layer, diffId, errorLabel, opts);
  if (opts.preserveDigests && to === "none") {
    // The original blob must be in the store (verified) to be compared against; its diff_id is
    // checked by the identification pass itself.
    const inline: ConvertOptions = { ...opts, verifyDiffIds: false };
    delete inline.background; // identification needs the blob now
    const copied = await copyBlob(source, store, layer, diffId, errorLabel, inline);
    if (from !== "gzip" || !diffId) {
      return { ...copied, keptReason: `${from} layers are kept as they are (no ${from} recipes yet)` };
    }
    const identify = async (): Promise<LayerResult> =>
      (await preserve()).preserveGzipLayer(store, layer, diffId, errorLabel, opts, copied.uncompressedSize);
    return opts.cpu ? opts.cpu.run(identify) : identify();
  }

  const targetType = layerMediaType(opts.family, to, info.nonDistributable);
  const cached = await store.records.converted(layer.digest, to);
  if (cached) {
    const measured = await store.records.diffId(layer.digest);
    return {
      descriptor: withType(layer, cached, targetType),
      action: "cached",
      ...(measured ? { uncompressedSize: measured.size } : {}),
    };
  }
  if (!diffId) throw new Error(`${errorLabel}: no diff_id in the config for this layer; cannot verify a conversion`);

  const raw = await source.blob(layer, errorLabel, opts.signal);
  const diffCheck = diffIdCheck(diffId, errorLabel, source.uncompressedLimit?.(layer));
  const stages = [
    meter(id, label, layer.size, opts.onProgress),
    decompressLayer(from, errorLabel),
    diffCheck,
    compressStream(to, opts.level !== undefined ? { level: opts.level, threads: 1 } : { threads: 1 }),
  ];
  const result = await store.ingest(raw, stages, opts.signal);
  const descriptor = withType(layer, result, targetType);
  await store.records.recordConverted(layer.digest, to, descriptor);
  await store.records.recordDiffId(layer.digest, diffId, diffCheck.size);
  return { descriptor, action: "converted", uncompressedSize: diffCheck.size };
}

/**
 * Copy a layer as it is, its blob digest checked on the way. With --verify-diff-ids a compressed
 * layer is also decompressed on the side and checked against its diff_id. A plain copy may finish
 * in the background (opts.background): its result is known before the bytes arrive.
 */
function copyBlob(
  source: ImageSource,
  store: Store,
  layer: Descriptor,
  diffId: Digest | undefined,
  errorLabel: string,
  opts: ConvertOptions,
): Promise<LayerResult> {
  // Several layers (of other images, or a recipe layer's uncompressed blob) may need this blob at once.
  return store.exclusive(`blob ${layer.digest}`, () => copyOneBlob(source, store, layer, diffId, errorLabel, opts));
}

async function copyOneBlob(
  source: ImageSource,
  store: Store,
  layer: Descriptor,
  diffId: Digest | undefined,
  errorLabel: string,
  opts: ConvertOptions,
): Promise<LayerResult> {
  const compression = layerCompression(layer.mediaType);
  const descriptor: Descriptor = { ...layer, mediaType: familyType(layer, opts.family) };
  if (compression === "none" && diffId !== undefined && diffId !== layer.digest) {
    throw new Error(
      `${errorLabel}: uncompressed layer digest differs from the config's diff_id ${shortDigest(diffId)}…`,
    );
  }
  if (await store.hasBlob(layer)) {
    if (compression === "none") return { descriptor, action: "copied", uncompressedSize: layer.size };
    // A size measured by an earlier run is only reported where this run would measure it too:
    // what goes into the bundle must not depend on what the store did before (reproducible packs).
    const measured = opts.verifyDiffIds ? await store.records.diffId(layer.digest) : undefined;
    if (measured || compression === undefined || diffId === undefined || !opts.verifyDiffIds) {
      return { descriptor, action: "copied", ...(measured ? { uncompressedSize: measured.size } : {}) };
    }
    // In the store but never checked against this diff_id: check it from the stored copy.
    const check = diffIdCheck(diffId, errorLabel, source.uncompressedLimit?.(layer));
    await pipeline(
      await store.blob(layer, errorLabel, opts.signal),
      decompressLayer(compression, errorLabel),
      check,
      discard(),
    );
    await store.records.recordDiffId(layer.digest, diffId, check.size);
    return { descriptor, action: "copied", uncompressedSize: check.size };
  }
  const open = async (): Promise<Readable> => {
    const raw = await source.blob(layer, errorLabel, opts.signal);
    if (!opts.onProgress) return raw;
    const metered = raw.pipe(meter(layer.digest, shortDigest(layer.digest).slice(7), layer.size, opts.onProgress));
    raw.on("error", (err) => metered.destroy(err));
    return metered;
  };
  if (compression === undefined || compression === "none" || diffId === undefined || !opts.verifyDiffIds) {
    const download = async (tee?: FileSpot): Promise<void> => {
      if (!source.blobUnchecked) return store.putVerifiedBlob(layer, await open(), errorLabel, opts.signal, { tee });
      // The store checks what the source did not (on its hash thread: hashed once), and counts the
      // bytes itself, so that a registry download can fill the store's blocks without a stream between.
      const progress = opts.onProgress
        ? progressCounter(layer.digest, shortDigest(layer.digest).slice(7), layer.size, opts.onProgress)
        : undefined;
      const data = await source.blobUnchecked(layer, errorLabel, opts.signal);
      await store.putBlob(layer, data, errorLabel, opts.signal, { tee, onBytes: progress?.advance });
      progress?.done();
    };
    if (opts.background) opts.background(layer.digest, download);
    else await download();
    return { descriptor, action: "copied", ...(compression === "none" ? { uncompressedSize: layer.size } : {}) };
  }
  const metered = await open();
  const check = diffIdCheck(diffId, errorLabel, source.uncompressedLimit?.(layer));
  const side = pipeline(metered, decompressLayer(compression, errorLabel), check, discard());
  side.catch(() => undefined); // awaited by putBlob; this only stops an early unhandled rejection
  await store.putVerifiedBlob(layer, metered, errorLabel, opts.signal, { gate: side });
  await store.records.recordDiffId(layer.digest, diffId, check.size);
  return { descriptor, action: "copied", uncompressedSize: check.size };
}

/** Store the uncompressed blob a recipe layer is rebuilt from, and (keepRecipe) the recipe for it. */
async function carryUncompressed(
  source: ImageSource,
  store: Store,
  layer: Descriptor,
  carried: CarriedRecipe,
  errorLabel: string,
  opts: ConvertOptions & { keepRecipe: boolean; nonDistributable: boolean | undefined },
): Promise<LayerResult> {
  const { uncompressed, recipe } = carried;
  await copyBlob(source, store, uncompressed, uncompressed.digest, errorLabel, { ...opts, verifyDiffIds: false });
  if (opts.keepRecipe) await store.records.recordRecipe(layer.digest, { recipe, size: uncompressed.size });
  return {
    descriptor: {
      mediaType: layerMediaType(opts.family, "none", opts.nonDistributable),
      digest: uncompressed.digest,
      size: uncompressed.size,
      ...(layer.annotations ? { annotations: layer.annotations } : {}),
    },
    action: "converted",
    uncompressedSize: uncompressed.size,
    ...(opts.keepRecipe ? { recipe } : {}),
  };
}

/**
 * A layer the site has (pack --have) is not fetched: as the original blob, in whatever form the
 * site stores it; or, converting plainly to uncompressed, as its diff_id when the site has that.
 */
function reliedOn(
  layer: Descriptor,
  diffId: Digest | undefined,
  opts: ConvertOptions,
  errorLabel: string,
): LayerResult | undefined {
  const have = opts.have;
  if (!have) return undefined;
  const sized = (d: Descriptor): boolean => {
    const size = have.get(d.digest);
    if (size === undefined) return false;
    if (size !== d.size) {
      throw new Error(
        `${errorLabel}: the --have holdings list ${d.digest} as ${size} bytes, the manifest as ${d.size}; the inventory is wrong — make it again`,
      );
    }
    return true;
  };
  if (sized(layer)) return { descriptor: { ...layer, mediaType: familyType(layer, opts.family) }, action: "relied" };
  const from = layerCompression(layer.mediaType);
  const plainly = opts.mode === "uncompressed" && !opts.preserveDigests && from !== undefined && from !== "none";
  const size = diffId && have.get(diffId);
  if (!plainly || !diffId || size === undefined) return undefined;
  const info = mediaTypeInfo(layer.mediaType);
  const uncompressed = withType(
    layer,
    { digest: diffId, size },
    layerMediaType(opts.family, "none", info?.nonDistributable),
  );
  return { descriptor: uncompressed, action: "relied", uncompressedSize: size };
}

function familyType(layer: Descriptor, family: Family): string {
  const info = mediaTypeInfo(layer.mediaType);
  if (!info || info.family === family) return layer.mediaType;
  return layerMediaType(family, info.compression ?? "none", info.nonDistributable);
}

/** Keep annotations of the source descriptor, drop urls (the converted blob lives nowhere else). */
function withType(layer: Descriptor, result: Pick<Descriptor, "digest" | "size">, mediaType: string): Descriptor {
  const out: Descriptor = { mediaType, digest: result.digest, size: result.size };
  if (layer.annotations) out.annotations = layer.annotations;
  return out;
}
