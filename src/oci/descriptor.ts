import { sha256, DigestMismatchError, type Digest } from "./digest";
import {
  isIndex as isIndexType,
  isManifest as isManifestType,
  isSchema1,
  layerCompression,
  MediaType,
} from "./mediatypes";
import { type Platform } from "./platform";
import { schemaCheck } from "./schema";
import { MAX_JSON_BYTES, MAX_JSON_DEPTH } from "./limits";

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
  urls?: string[];
  artifactType?: string;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageConfig {
  architecture?: string;
  os?: string;
  variant?: string;
  rootfs?: { type?: string; diff_ids: Digest[] };
  [key: string]: unknown;
}

/** Cap on any JSON document read from untrusted input (manifests, configs, index.json): see limits.ts. */
export { MAX_JSON_BYTES };

export const Annotation = {
  refName: "org.opencontainers.image.ref.name",
  containerdName: "io.containerd.image.name",
} as const;

/** How an index.json entry is named: containerd's full name, else the OCI ref name, else its digest. */
export function imageName(entry: Pick<Descriptor, "digest" | "annotations">): string {
  return entry.annotations?.[Annotation.containerdName] ?? entry.annotations?.[Annotation.refName] ?? entry.digest;
}

type Json = Record<string, unknown>;

export function parseJson(bytes: Uint8Array, errorLabel: string, limit = MAX_JSON_BYTES): Json {
  if (bytes.length > limit) {
    throw new Error(`${errorLabel}: JSON document is ${bytes.length} bytes, over the ${limit}-byte limit`);
  }
  const depth = jsonDepth(bytes, MAX_JSON_DEPTH);
  if (depth > MAX_JSON_DEPTH) throw new Error(`${errorLabel}: JSON nested more than ${MAX_JSON_DEPTH} levels deep`);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch (err) {
    throw new Error(`${errorLabel}: not valid JSON (${(err as Error).message})`, { cause: err });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`${errorLabel}: expected a JSON object`);
  }
  return value as Json;
}

/**
 * How deeply arrays and objects nest in a JSON text, counted up to `stop` + 1 (enough to refuse it):
 * what parses fine can still overflow the stack of whoever walks or re-encodes it later.
 */
export function jsonDepth(bytes: Uint8Array, stop: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) {
        max = depth;
        if (max > stop) return max;
      }
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

const checkDescriptor = schemaCheck<Descriptor>("descriptor.json");
const checkIndexShape = schemaCheck<ImageIndex>("oci-index.json");
const checkManifestShape = schemaCheck<Omit<ImageManifest, "layers"> & { layers?: Descriptor[] }>("oci-manifest.json");
const checkConfigShape = schemaCheck<ImageConfig>("oci-config.json");

/** The fields of a descriptor airpack knows, copied out of a checked one (unknown fields are not carried). */
function known(d: Descriptor): Descriptor {
  const desc: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.platform !== undefined) desc.platform = d.platform;
  if (d.annotations !== undefined) desc.annotations = d.annotations;
  if (d.urls !== undefined) desc.urls = d.urls;
  if (d.artifactType !== undefined) desc.artifactType = d.artifactType;
  return desc;
}

/** A descriptor read from input (docs/schemas/defs.json#/definitions/descriptor). */
export function parseDescriptor(value: unknown, errorLabel: string): Descriptor {
  return known(checkDescriptor(value, errorLabel));
}

/** Check bytes against a descriptor; used for every manifest, index and config we read. */
export function checkBytes(bytes: Uint8Array, desc: { digest: string; size: number }, errorLabel: string): void {
  const actual = { digest: sha256(bytes), size: bytes.length };
  if (actual.size !== desc.size || actual.digest !== desc.digest) {
    throw new DigestMismatchError(errorLabel, desc, actual);
  }
}

/** Detect the type of a manifest document when the descriptor does not say (or to cross-check it). */
export function sniffManifestType(doc: Json): string | undefined {
  if (typeof doc.mediaType === "string") return doc.mediaType;
  if (doc.schemaVersion === 1) return "application/vnd.docker.distribution.manifest.v1+json";
  if (Array.isArray(doc.manifests)) return "application/vnd.oci.image.index.v1+json";
  if (typeof doc.config === "object" && doc.config !== null) return "application/vnd.oci.image.manifest.v1+json";
  return undefined;
}

/**
 * A document that is an index and a manifest at once (CVE-2021-41190): readers that go by the
 * descriptor's media type and readers that go by its keys would see different content. Refused, as
 * containerd and distribution do since.
 */
function refusePolyglot(doc: Json, as: "index" | "manifest", errorLabel: string): void {
  const manifestKeys = doc.config !== undefined || doc.layers !== undefined;
  const ambiguous = doc.manifests !== undefined && manifestKeys;
  const declared = typeof doc.mediaType === "string" ? doc.mediaType : undefined;
  const otherKind =
    as === "index"
      ? declared !== undefined && isManifestType(declared)
      : declared !== undefined && isIndexType(declared);
  if (ambiguous || otherKind) {
    throw new Error(
      `${errorLabel}: read as ${as === "index" ? "an index" : "a manifest"}, but the document ` +
        (ambiguous ? "has both manifests and config/layers" : `says it is ${declared}`) +
        " (an index/manifest polyglot, CVE-2021-41190)",
    );
  }
}

export function parseIndex(bytes: Uint8Array, errorLabel: string): ImageIndex {
  const doc = parseJson(bytes, errorLabel);
  refusePolyglot(doc, "index", errorLabel);
  const checked = checkIndexShape(doc, errorLabel);
  const index: ImageIndex = { schemaVersion: 2, manifests: checked.manifests.map(known) };
  if (checked.mediaType !== undefined) index.mediaType = checked.mediaType;
  if (checked.annotations !== undefined) index.annotations = checked.annotations;
  return index;
}

export function parseManifest(bytes: Uint8Array, errorLabel: string): ImageManifest {
  const doc = parseJson(bytes, errorLabel);
  const type = sniffManifestType(doc);
  if (!(type && isSchema1(type))) refusePolyglot(doc, "manifest", errorLabel);
  if (type && isSchema1(type)) {
    throw new Error(
      `${errorLabel}: Docker schema 1 manifests are not supported (deprecated); re-push the image with a current client`,
    );
  }
  const checked = checkManifestShape(doc, errorLabel);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    config: known(checked.config),
    layers: (checked.layers ?? []).map(known),
  };
  if (checked.mediaType !== undefined) manifest.mediaType = checked.mediaType;
  if (checked.artifactType !== undefined) manifest.artifactType = checked.artifactType;
  if (checked.subject !== undefined) manifest.subject = known(checked.subject);
  if (checked.annotations !== undefined) manifest.annotations = checked.annotations;
  return manifest;
}

export function parseConfig(bytes: Uint8Array, errorLabel: string): ImageConfig {
  return checkConfigShape(parseJson(bytes, errorLabel), errorLabel);
}

const checkLayout = schemaCheck<{ imageLayoutVersion: "1.0.0" }>("oci-layout.json");

/** An OCI layout's oci-layout file: it must say imageLayoutVersion 1.0.0 (docs/schemas/oci-layout.json). */
export function parseOciLayout(bytes: Uint8Array, errorLabel: string): void {
  checkLayout(parseJson(bytes, errorLabel), errorLabel);
}

/** Serialise a JSON document the way airpack writes new manifests (compact, stable key order as given). */
export function encodeJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), "utf8");
}

/**
 * A runnable image by its types, not its shape: an image config, no artifactType, and only layer
 * types. Anything else (an attestation's in-toto statement, a signature, an SBOM) is an artifact.
 */
export function isRunnableImage(manifest: ImageManifest): boolean {
  return (
    (manifest.config.mediaType === MediaType.ociConfig || manifest.config.mediaType === MediaType.dockerConfig) &&
    manifest.artifactType === undefined &&
    manifest.layers.every((l) => layerCompression(l.mediaType) !== undefined)
  );
}
