import { parseDigest, sha256, DigestMismatchError, type Digest } from "./digest";
import { isSchema1 } from "./mediatypes";
import { parsePlatform, type Platform } from "./platform";

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
  rootfs?: { type: string; diff_ids: Digest[] };
  [key: string]: unknown;
}

/** Cap on any JSON document read from untrusted input (manifests, configs, index.json). */
export const MAX_JSON_BYTES = 4 * 1024 * 1024;

export const Annotation = {
  refName: "org.opencontainers.image.ref.name",
  containerdName: "io.containerd.image.name",
} as const;

/** How an index.json entry is named: containerd's full name, else the OCI ref name, else its digest. */
export function imageName(entry: Pick<Descriptor, "digest" | "annotations">): string {
  return entry.annotations?.[Annotation.containerdName] ?? entry.annotations?.[Annotation.refName] ?? entry.digest;
}

type Json = Record<string, unknown>;

export function parseJson(bytes: Uint8Array, what: string, limit = MAX_JSON_BYTES): Json {
  if (bytes.length > limit) {
    throw new Error(`${what}: JSON document is ${bytes.length} bytes, over the ${limit}-byte limit`);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch (err) {
    throw new Error(`${what}: not valid JSON (${(err as Error).message})`, { cause: err });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`${what}: expected a JSON object`);
  }
  return value as Json;
}

function stringMap(value: unknown, what: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`${what}: annotations must be an object`);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") throw new Error(`${what}: annotation ${k} is not a string`);
    out[k] = v;
  }
  return out;
}

export function parseDescriptor(value: unknown, what: string): Descriptor {
  if (typeof value !== "object" || value === null) throw new Error(`${what}: descriptor is not an object`);
  const v = value as Json;
  if (typeof v.mediaType !== "string" || v.mediaType.length === 0) {
    throw new Error(`${what}: descriptor has no mediaType`);
  }
  const size = v.size;
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    throw new Error(`${what}: descriptor has an invalid size`);
  }
  const desc: Descriptor = { mediaType: v.mediaType, digest: parseDigest(v.digest, what), size };
  if (v.platform !== undefined) desc.platform = parsePlatform(v.platform, what);
  const annotations = stringMap(v.annotations, what);
  if (annotations) desc.annotations = annotations;
  if (Array.isArray(v.urls)) desc.urls = v.urls.filter((u): u is string => typeof u === "string");
  if (typeof v.artifactType === "string") desc.artifactType = v.artifactType;
  return desc;
}

/** Check bytes against a descriptor; used for every manifest, index and config we read. */
export function checkBytes(bytes: Uint8Array, desc: { digest: string; size: number }, what: string): void {
  const actual = { digest: sha256(bytes), size: bytes.length };
  if (actual.size !== desc.size || actual.digest !== desc.digest) {
    throw new DigestMismatchError(what, desc, actual);
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

export function parseIndex(bytes: Uint8Array, what: string): ImageIndex {
  const doc = parseJson(bytes, what);
  if (doc.schemaVersion !== 2) throw new Error(`${what}: unsupported schemaVersion ${String(doc.schemaVersion)}`);
  if (!Array.isArray(doc.manifests)) throw new Error(`${what}: index has no manifests array`);
  const index: ImageIndex = {
    schemaVersion: 2,
    manifests: doc.manifests.map((m, i) => parseDescriptor(m, `${what} manifests[${i}]`)),
  };
  if (typeof doc.mediaType === "string") index.mediaType = doc.mediaType;
  const annotations = stringMap(doc.annotations, what);
  if (annotations) index.annotations = annotations;
  return index;
}

export function parseManifest(bytes: Uint8Array, what: string): ImageManifest {
  const doc = parseJson(bytes, what);
  const type = sniffManifestType(doc);
  if (type && isSchema1(type)) {
    throw new Error(
      `${what}: Docker schema 1 manifests are not supported (deprecated); re-push the image with a current client`,
    );
  }
  if (doc.schemaVersion !== 2) throw new Error(`${what}: unsupported schemaVersion ${String(doc.schemaVersion)}`);
  if (!Array.isArray(doc.layers) && doc.layers !== undefined) throw new Error(`${what}: layers is not an array`);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    config: parseDescriptor(doc.config, `${what} config`),
    layers: ((doc.layers as unknown[] | undefined) ?? []).map((l, i) => parseDescriptor(l, `${what} layers[${i}]`)),
  };
  if (typeof doc.mediaType === "string") manifest.mediaType = doc.mediaType;
  if (typeof doc.artifactType === "string") manifest.artifactType = doc.artifactType;
  if (doc.subject !== undefined) manifest.subject = parseDescriptor(doc.subject, `${what} subject`);
  const annotations = stringMap(doc.annotations, what);
  if (annotations) manifest.annotations = annotations;
  return manifest;
}

export function parseConfig(bytes: Uint8Array, what: string): ImageConfig {
  const doc = parseJson(bytes, what) as ImageConfig;
  const rootfs = doc.rootfs as unknown;
  if (rootfs !== undefined) {
    const r = rootfs as Json;
    if (!Array.isArray(r.diff_ids)) throw new Error(`${what}: rootfs.diff_ids is not an array`);
    r.diff_ids.forEach((d, i) => parseDigest(d, `${what} rootfs.diff_ids[${i}]`));
  }
  return doc;
}

/** Serialise a JSON document the way airpack writes new manifests (compact, stable key order as given). */
export function encodeJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), "utf8");
}
