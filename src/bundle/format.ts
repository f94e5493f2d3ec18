import type { Descriptor } from "../oci/descriptor";
import type { Digest } from "../oci/digest";
import type { GzipRecipe } from "../recipes/format";

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
