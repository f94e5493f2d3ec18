import { parseDescriptor, parseJson, type Descriptor } from "../oci/descriptor";
import { parseDigest, type Digest } from "../oci/digest";
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

type Obj = Record<string, unknown>;

function obj(v: unknown, label: string): Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error(`${label}: not an object`);
  return v as Obj;
}

function list(v: unknown, label: string): unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new Error(`${label}: not a list`);
  return v;
}

function str(v: unknown, label: string, optional = false): void {
  if (optional && v === undefined) return;
  if (typeof v !== "string") throw new Error(`${label}: not a string`);
}

function count(v: unknown, label: string, optional = false): void {
  if (optional && v === undefined) return;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw new Error(`${label}: not a byte count`);
}

function blobRef(v: unknown, label: string): void {
  const o = obj(v, label);
  parseDigest(o.digest, label);
  str(o.mediaType, `${label} mediaType`);
  count(o.size, `${label} size`);
}

/**
 * airpack.json, checked for every field airpack acts on (unknown fields are ignored, as the format
 * says): the version, the images' layers and their recipes (checkRecipe), the restored roots and the
 * recorded extra blobs.
 */
export function parseMetadata(bytes: Uint8Array, label: string): BundleMetadata {
  const meta = parseJson(bytes, label);
  if (typeof meta.airpackBundleVersion !== "number" || meta.airpackBundleVersion > DELTA_FORMAT_VERSION) {
    throw new Error(
      `${label}: bundle format version ${String(meta.airpackBundleVersion)} is newer than this airpack supports; upgrade airpack`,
    );
  }
  meta.images = list(meta.images, `${label} images`);
  (meta.images as unknown[]).forEach((image, i) => {
    const img = obj(image, `${label} images[${i}]`);
    const what = `${label} images[${i}]`;
    str(img.name, `${what} name`);
    if (img.restored !== undefined) blobRef(img.restored, `${what} restored`);
    img.skipped = list(img.skipped, `${what} skipped`);
    img.manifests = list(img.manifests, `${what} manifests`);
    (img.manifests as unknown[]).forEach((manifest, j) => {
      const m = obj(manifest, `${what} manifests[${j}]`);
      const mw = `${what} manifests[${j}]`;
      parseDigest(m.digest, `${mw} digest`);
      m.layers = list(m.layers, `${mw} layers`);
      (m.layers as unknown[]).forEach((layer, k) => {
        const lw = `${mw} layers[${k}]`;
        const l = obj(layer, lw);
        blobRef(l, lw);
        str(l.mode, `${lw} mode`);
        str(l.kept, `${lw} kept`, true);
        count(l.uncompressedSize, `${lw} uncompressedSize`, true);
        blobRef(l.source, `${lw} source`);
        if (l.recipe !== undefined) checkRecipe(l.recipe, l.size as number, lw);
      });
    });
  });
  if (meta.delta !== undefined) checkDelta(meta.delta, `${label} delta`);
  meta.extraBlobs = list(meta.extraBlobs, `${label} extraBlobs`).map((d, i) =>
    parseDescriptor(d, `${label} extraBlobs[${i}]`),
  );
  return meta as unknown as BundleMetadata;
}

function checkDelta(v: unknown, label: string): void {
  const d = obj(v, label);
  d.base = list(d.base, `${label} base`);
  (d.base as unknown[]).forEach((b, i) => {
    const o = obj(b, `${label} base[${i}]`);
    str(o.kind, `${label} base[${i}] kind`);
    if (typeof o.sha256 !== "string" || !/^[a-f0-9]{64}$/.test(o.sha256)) {
      throw new Error(`${label} base[${i}] sha256: not a hex sha256`);
    }
  });
  d.index = list(d.index, `${label} index`).map((e, i) => parseDescriptor(e, `${label} index[${i}]`));
  d.relies = list(d.relies, `${label} relies`);
  (d.relies as unknown[]).forEach((r, i) => {
    const o = obj(r, `${label} relies[${i}]`);
    parseDigest(o.digest, `${label} relies[${i}] digest`);
    count(o.size, `${label} relies[${i}] size`);
    list(o.holders, `${label} relies[${i}] holders`).forEach((h, j) => str(h, `${label} relies[${i}] holders[${j}]`));
  });
}
