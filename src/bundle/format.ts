import { parseDescriptor, parseJson, type Descriptor } from "../oci/descriptor";
import { type Digest } from "../oci/digest";
import { schemaCheck } from "../oci/schema";
import { checkRecipe, type GzipRecipe } from "../recipes/format";

/** airpack.json: the bundle's own metadata. Documented in docs/bundle-format.md. */
export const METADATA_FILE = "airpack.json";
export const BUNDLE_FORMAT_VERSION = 1;
/** Delta bundles (airpack.json `delta`): an airpack that predates them refuses them by this version. */
export const DELTA_FORMAT_VERSION = 2;

export interface BundleLayer {
  /**
   * How the layer was stored: copied as it was, converted, a foreign layer left out, or (delta
   * bundles) left out because the site has it.
   */
  mode: "kept" | "converted" | "foreign" | "relied";
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
  /** A delta bundle: made against what a site holds, it lacks the blobs listed in `relies`. */
  delta?: DeltaInfo;
}

/** What a delta was made against: an inventory file, a bundle, or an OCI layout (its index.json). */
export interface DeltaBase {
  kind: "inventory" | "bundle" | "oci";
  /** Hex sha256 of the inventory or bundle file (of index.json for a layout). */
  sha256: string;
  /** The file or directory as named when packing, for messages. */
  name?: string;
}

export interface DeltaInfo {
  base: DeltaBase[];
  /**
   * The entries index.json would list. A delta's index.json lists none, so that importers (ctr
   * import, k3s) load nothing rather than images whose layers are missing; airpack reads these.
   */
  index?: Descriptor[];
  /**
   * Blobs the images need that the bundle leaves out: the site must have each. `holders`: registry
   * repositories (HOST/REPO) the inventory saw holding it, for push to mount it from.
   */
  relies: { digest: Digest; size: number; holders?: string[] }[];
}

/** pack --have: the blobs the site holds (digest → size), and what said so. */
export interface HaveSet {
  base: DeltaBase[];
  blobs: ReadonlyMap<Digest, number>;
  /** Registry repositories (HOST/REPO) holding each blob, where an inventory of a registry says. */
  holders?: ReadonlyMap<string, string[]>;
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
  if (typeof version === "number" && version > DELTA_FORMAT_VERSION) {
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
  if (meta.delta?.index)
    meta.delta.index = meta.delta.index.map((e, n) => parseDescriptor(e, `${label} delta index[${n}]`));
  return meta;
}
