import { parseDescriptor, parseJson, type Descriptor } from "../oci/descriptor";
import { type Digest } from "../oci/digest";
import { schemaCheck } from "../oci/schema";
import { checkRecipe, type GzipRecipe } from "../recipes/format";

/** airpack.json: the bundle's own metadata. Documented in docs/bundle-format.md. */
export const METADATA_FILE = "airpack.json";
export const BUNDLE_FORMAT_VERSION = 1;

export interface BundleLayer {
  /** How the layer was stored: copied as it was, converted, or a foreign layer left out. */
  mode: "kept" | "converted" | "foreign";
  digest: Digest;
  mediaType: string;
  size: number;
  diffId?: Digest;
  uncompressedSize?: number;
  source: { digest: Digest; mediaType: string; size: number };
  /** Rebuilds the source blob byte for byte from this (uncompressed) one. See docs/recipe-format.md. */
  recipe?: GzipRecipe;
  /** Why the source blob was kept although another form was asked for. */
  kept?: string;
}

export interface BundleManifest {
  platform?: string;
  digest: Digest;
  mediaType: string;
  sourceDigest: Digest;
  config: Digest;
  artifact: boolean;
  layers: BundleLayer[];
}

export interface BundleImage {
  name: string;
  source: string;
  digest: Digest;
  mediaType: string;
  size: number;
  /** The root digest at the source; differs from `digest` when layers were converted or platforms dropped. */
  sourceDigest: Digest;
  sourceMediaType: string;
  manifests: BundleManifest[];
  /** Digest-preserving bundles: the root `airpack unpack` restores (the source root unless platforms were left out). */
  restored?: { digest: Digest; mediaType: string; size: number };
  skipped: { platform: string; digest: Digest; reason: string }[];
}

export interface BundleMetadata {
  airpackBundleVersion: number;
  tool: string;
  created: string;
  layers: string;
  images: BundleImage[];
  /** Blobs kept for the record (e.g. an original index) that no index.json entry reaches. */
  extraBlobs: Descriptor[];
}

const checkMetadata = schemaCheck<BundleMetadata>("airpack.json");

/**
 * airpack.json, checked against docs/schemas/airpack.json for every field airpack acts on (unknown
 * fields are ignored, as the format says), after its version: a newer format may change any shape.
 * Each recipe is then checked by checkRecipe against the layer it rebuilds.
 */
export function parseMetadata(bytes: Uint8Array, label: string): BundleMetadata {
  const raw = parseJson(bytes, label);
  const version = raw.airpackBundleVersion;
  if (typeof version === "number" && version > BUNDLE_FORMAT_VERSION) {
    throw new Error(`${label}: bundle format version ${version} is newer than this airpack supports; upgrade airpack`);
  }
  const meta = checkMetadata(raw, label);
  meta.images ??= [];
  meta.extraBlobs = (meta.extraBlobs ?? []).map((d, i) => parseDescriptor(d, `${label} extraBlobs[${i}]`));
  meta.images.forEach((img, i) => {
    img.skipped ??= [];
    img.manifests ??= [];
    img.manifests.forEach((m, j) => {
      m.layers ??= [];
      m.layers.forEach((l, k) => {
        if (l.recipe !== undefined) checkRecipe(l.recipe, l.size, `${label} images[${i}] manifests[${j}] layers[${k}]`);
      });
    });
  });
  return meta;
}
