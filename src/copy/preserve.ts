import { open } from "node:fs/promises";
import { PassThrough } from "node:stream";
import { discard } from "../util/streams";
import { pipeline } from "node:stream/promises";
import type { ConvertOptions, LayerResult } from "./layer-types";
import { diffIdCheck } from "./diff-id";
import { decompressLayer } from "../compression/codecs";
import type { Descriptor } from "../oci/descriptor";
import { shortDigest, type Digest } from "../oci/digest";
import { layerMediaType, mediaTypeInfo } from "../oci/mediatypes";
import type { Store } from "../store/store";
import { meter } from "../util/progress";
import { allSettledOrThrow } from "../util/pool";
import type { GzipRecipe } from "../recipes/format";
import { identifyGzipThreaded } from "../recipes/threaded";
import { identifyGzipMembers } from "../recipes/members";

const NO_MATCH = "kept: original (no matching encoder)";

/**
 * --layers uncompressed with digests preserved: decompress the (stored, verified) gzip layer once;
 * the uncompressed tar goes into the store under its diff_id while every candidate encoder
 * re-compresses it and is compared byte by byte with the original. A match gives a recipe; no
 * match keeps the original blob, so the image's digests are preserved either way.
 */
export async function preserveGzipLayer(
  store: Store,
  layer: Descriptor,
  diffId: Digest,
  errorLabel: string,
  opts: ConvertOptions,
  uncompressedSize: number | undefined,
): Promise<LayerResult> {
  const info = mediaTypeInfo(layer.mediaType);
  const uncompressedType = layerMediaType(opts.family, "none", info?.nonDistributable);
  const prior = await store.records.recipe(layer.digest);
  const asStored = (recipe: GzipRecipe, size: number): LayerResult => ({
    descriptor: {
      mediaType: uncompressedType,
      digest: diffId,
      size,
      ...(layer.annotations ? { annotations: layer.annotations } : {}),
    },
    action: "converted",
    uncompressedSize: size,
    recipe,
  });
  if (prior) {
    if (prior.recipe === null)
      return {
        descriptor: layer,
        action: "copied",
        keptReason: NO_MATCH,
        ...(uncompressedSize !== undefined ? { uncompressedSize } : {}),
      };
    if (await store.hasBlob({ digest: diffId, size: prior.size })) return asStored(prior.recipe, prior.size);
  }

  const identifier = identifyGzipThreaded(store.blobFile(layer), { digest: layer.digest, size: layer.size });
  const check = diffIdCheck(diffId, errorLabel);
  const tee = new PassThrough({ highWaterMark: 1 << 20 });
  const decompressed = pipeline(
    await store.blob(layer, errorLabel, opts.signal),
    meter(`recipe:${layer.digest}`, `id ${shortDigest(layer.digest).slice(7, 15)}`, layer.size, opts.onProgress),
    decompressLayer("gzip", errorLabel),
    check,
    tee,
  );
  decompressed.catch(() => undefined);
  const toStore = new PassThrough({ highWaterMark: 1 << 20 });
  const toIdentify = new PassThrough({ highWaterMark: 1 << 20 });
  tee.pipe(toStore);
  tee.pipe(toIdentify);
  // pipe() passes data, not failure: a layer that isn't gzip would leave both branches waiting forever.
  decompressed.catch((err: unknown) => {
    toStore.destroy(err as Error);
    toIdentify.destroy(err as Error);
  });
  const [, stored] = await allSettledOrThrow([
    decompressed,
    store.ingest(toStore, [], opts.signal),
    pipeline(toIdentify, identifier, discard()),
  ] as const);
  if (stored.digest !== diffId)
    throw new Error(`${errorLabel}: uncompressed content does not match the config's diff_id`);
  const recipe = identifier.recipe ?? (await identifyMultiMember(store, layer, stored));
  await store.records.recordRecipe(layer.digest, { recipe: recipe ?? null, size: stored.size });
  if (!recipe) return { descriptor: layer, action: "copied", uncompressedSize: stored.size, keptReason: NO_MATCH };
  return asStored(recipe, stored.size);
}

/**
 * A blob whose trailer's ISIZE is not the layer's size has more than one member (its trailer only
 * counts the last): only then is it split and identified member by member.
 */
async function identifyMultiMember(
  store: Store,
  layer: Descriptor,
  stored: { digest: Digest; size: number },
): Promise<GzipRecipe | undefined> {
  if (layer.size < 18) return undefined;
  const file = store.blobFile(layer);
  const handle = await open(file, "r");
  const isize = Buffer.alloc(4);
  try {
    await handle.read(isize, 0, 4, layer.size - 4);
  } finally {
    await handle.close();
  }
  if (isize.readUInt32LE(0) === stored.size % 0x100000000) return undefined;
  return identifyGzipMembers({ file, digest: layer.digest, size: layer.size }, store.blobFile(stored));
}
