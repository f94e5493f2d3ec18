import type { Readable } from "node:stream";
import * as tar from "tar-stream";
import {
  imageName,
  checkBytes,
  MAX_JSON_BYTES,
  parseConfig,
  parseIndex,
  parseJson,
  parseManifest,
  type Descriptor,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
} from "../oci/descriptor";
import { DigestStream, isDigest, shortDigest, type Digest } from "../oci/digest";
import { isIndex, isManifest, isNonDistributable } from "../oci/mediatypes";
import { safeTarPath } from "../util/tar-index";
import type { StreamFormat } from "../compression/sniff";
import { BUNDLE_FORMAT_VERSION, METADATA_FILE, type BundleMetadata } from "./format";
import { parseDockerManifest, type DockerManifestEntry } from "../oci/docker-manifest";
import { openTarStream } from "./input";

type Kind = "index" | "manifest" | "config" | "layer" | "extra";

interface Expected {
  desc: Descriptor;
  kind: Kind;
  what: string;
}

/** Receives a bundle's verified contents, in bundle order. */
export interface UnpackSink {
  /** oci-layout, index.json, manifest.json, airpack.json: already parsed and checked. */
  file(name: string, bytes: Uint8Array): Promise<void>;
  /** A manifest, index or config (verified). */
  smallBlob(desc: Descriptor, bytes: Uint8Array): Promise<void>;
  /** A layer; the stream fails at its end if it doesn't match `desc`, and must be consumed. */
  blob(desc: Descriptor, data: Readable): Promise<void>;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

export interface BundleContents {
  format: StreamFormat;
  metadata?: BundleMetadata;
  index: ImageIndex;
  dockerManifest?: DockerManifestEntry[];
  manifests: Map<Digest, ImageManifest>;
  indexes: Map<Digest, ImageIndex>;
  configs: Map<Digest, ImageConfig>;
  blobs: Map<Digest, { size: number; kind: Kind }>;
  /** True when reading stopped at the first layer (inspect). */
  partial: boolean;
  /** Distinct blobs referenced by what was read (all of them once reading finished). */
  referenced: number;
}

export interface ReadOptions {
  /** Stop after the small documents (inspect); layers are not read or verified. */
  stopAtLayers?: boolean;
  signal?: AbortSignal;
}

const BLOB_PATH = /^blobs\/sha256\/([a-f0-9]{64})$/;
const KNOWN_FILES = new Set(["oci-layout", "index.json", "manifest.json", METADATA_FILE, "repositories"]);

async function readAll(stream: AsyncIterable<unknown>, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new Error(`${what}: over the ${limit}-byte limit for JSON documents`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * Stream a bundle: every entry path is checked, every blob is hashed against its name and
 * against the descriptor that references it, and nothing unreferenced or out of order passes.
 */
export async function readBundle(
  input: Readable,
  label: string,
  sink: UnpackSink,
  opts: ReadOptions = {},
): Promise<BundleContents> {
  const { tar: tarStream, format } = await openTarStream(input, label);
  const extract = tar.extract();
  const contents: BundleContents = {
    format,
    index: { schemaVersion: 2, manifests: [] },
    manifests: new Map(),
    indexes: new Map(),
    configs: new Map(),
    blobs: new Map(),
    partial: false,
    referenced: 0,
  };
  const expected = new Map<Digest, Expected>();
  const seenFiles = new Set<string>();
  let sawIndex = false;
  let sawLayout = false;

  const expect = (desc: Descriptor, kind: Kind, what: string): void => {
    const prior = expected.get(desc.digest);
    if (prior && prior.desc.size !== desc.size) {
      throw new Error(`${what}: ${desc.digest} is listed with two sizes (${prior.desc.size} and ${desc.size})`);
    }
    if (!prior || (prior.kind === "extra" && kind !== "extra")) expected.set(desc.digest, { desc, kind, what });
  };

  const onSmallBlob = (digest: Digest, bytes: Buffer, exp: Expected): void => {
    checkBytes(bytes, exp.desc, `${label}: ${exp.what} (${shortDigest(digest)}…)`);
    if (exp.kind === "index" || (exp.kind === "extra" && isIndex(exp.desc.mediaType))) {
      const idx = parseIndex(bytes, `${label}: ${exp.what}`);
      contents.indexes.set(digest, idx);
      if (exp.kind === "index") {
        for (const child of idx.manifests) {
          expect(
            child,
            isIndex(child.mediaType) ? "index" : isManifest(child.mediaType) ? "manifest" : "extra",
            `${exp.what} → ${child.digest}`,
          );
        }
      }
    } else if (exp.kind === "manifest") {
      const m = parseManifest(bytes, `${label}: ${exp.what}`);
      contents.manifests.set(digest, m);
      expect(m.config, "config", `config of ${exp.what}`);
      m.layers.forEach((l, i) => expect(l, "layer", `layer ${i} of ${exp.what}`));
    } else if (exp.kind === "config") {
      const isImageConfig = /container\.image\.v1\+json|image\.config\.v1\+json/.test(exp.desc.mediaType);
      if (isImageConfig) contents.configs.set(digest, parseConfig(bytes, `${label}: ${exp.what}`));
    }
  };

  // Errors raised by the codec or the tar parser (as opposed to our own checks) get rewritten
  // into one line naming the bundle; ours pass through unchanged.
  const streamErrors = new Set<unknown>();
  const feeding = new Promise<void>((resolve, reject) => {
    tarStream.on("error", (err) => {
      streamErrors.add(err);
      // Without this the extractor would wait forever for bytes that never come.
      extract.destroy(err);
      reject(err);
    });
    extract.on("error", (err: unknown) => {
      streamErrors.add(err);
      reject(err);
    });
    extract.on("finish", resolve);
    tarStream.pipe(extract as unknown as NodeJS.WritableStream);
  });
  feeding.catch(() => undefined);
  const onAbort = (): void => {
    tarStream.destroy(new Error(`${label}: interrupted`));
  };
  opts.signal?.addEventListener("abort", onAbort, { once: true });

  try {
    for await (const entry of extract) {
      const h = entry.header;
      const path = safeTarPath(h.name, label);
      if (h.type === "directory") {
        entry.resume();
        continue;
      }
      if (h.type === "symlink" || h.type === "link") {
        throw new Error(
          `${label}: entry "${h.name}" is a ${h.type === "link" ? "hardlink" : "symlink"} to "${h.linkname ?? ""}"; bundles hold only regular files`,
        );
      }
      if (h.type !== "file" && h.type !== "contiguous-file") {
        throw new Error(`${label}: entry "${h.name}" has unsupported type ${String(h.type)}`);
      }
      if (seenFiles.has(path)) throw new Error(`${label}: entry "${path}" appears twice`);
      seenFiles.add(path);
      const size = h.size ?? 0;
      const blobMatch = BLOB_PATH.exec(path);
      if (!blobMatch) {
        if (!KNOWN_FILES.has(path)) {
          throw new Error(`${label}: unexpected entry "${path}" (not part of an OCI layout)`);
        }
        const bytes = await readAll(entry, MAX_JSON_BYTES, `${label}: ${path}`);
        if (path === "oci-layout") {
          const doc = parseJson(bytes, `${label}: oci-layout`);
          if (doc.imageLayoutVersion !== "1.0.0") throw new Error(`${label}: unsupported imageLayoutVersion`);
          sawLayout = true;
        } else if (path === "index.json") {
          contents.index = parseIndex(bytes, `${label}: index.json`);
          for (const d of contents.index.manifests) {
            const name = imageName(d);
            expect(d, isIndex(d.mediaType) ? "index" : isManifest(d.mediaType) ? "manifest" : "extra", `image ${name}`);
          }
          sawIndex = true;
        } else if (path === "manifest.json") {
          contents.dockerManifest = parseDockerManifest(bytes, `${label}: manifest.json`);
        } else if (path === METADATA_FILE) {
          const meta = parseJson(bytes, `${label}: ${METADATA_FILE}`) as unknown as BundleMetadata;
          if (typeof meta.airpackBundleVersion !== "number" || meta.airpackBundleVersion > BUNDLE_FORMAT_VERSION) {
            throw new Error(
              `${label}: bundle format version ${String(meta.airpackBundleVersion)} is newer than this airpack supports; upgrade airpack`,
            );
          }
          contents.metadata = meta;
          for (const d of meta.extraBlobs ?? []) expect(d, "extra", "recorded original index");
        }
        await sink.file(path, bytes);
        continue;
      }
      const digest = `sha256:${blobMatch[1]!}` as Digest;
      if (!isDigest(digest)) throw new Error(`${label}: bad blob name ${path}`);
      const exp = expected.get(digest);
      if (!exp) {
        if (!sawIndex)
          throw new Error(
            `${label}: blob ${shortDigest(digest)}… comes before index.json; not an airpack bundle (use 'airpack pack oci-archive:…' to read other archives)`,
          );
        throw new Error(`${label}: blob ${digest} is not referenced by index.json or any manifest before it`);
      }
      if (exp.desc.size !== size) {
        throw new Error(
          `${label}: ${exp.what}: blob ${shortDigest(digest)}… is ${size} bytes in the tar but ${exp.desc.size} in its descriptor`,
        );
      }
      if (exp.kind === "layer") {
        if (opts.stopAtLayers) {
          contents.partial = true;
          entry.resume();
          break;
        }
        const check = new DigestStream(exp.desc, `${label}: ${exp.what} (${shortDigest(digest)}…)`);
        entry.on("error", (err: Error) => check.destroy(err));
        await sink.blob(exp.desc, entry.pipe(check));
      } else {
        const bytes = await readAll(entry, MAX_JSON_BYTES, `${label}: ${exp.what}`);
        onSmallBlob(digest, bytes, exp);
        await sink.smallBlob(exp.desc, bytes);
      }
      contents.blobs.set(digest, { size, kind: exp.kind });
    }
    contents.referenced = expected.size;
    if (!contents.partial) {
      await feeding;
      if (!sawLayout) throw new Error(`${label}: no oci-layout file; not an OCI layout bundle`);
      if (!sawIndex) throw new Error(`${label}: no index.json; not an OCI layout bundle`);
      for (const [digest, exp] of expected) {
        if (contents.blobs.has(digest)) continue;
        if (exp.kind === "layer" && isNonDistributable(exp.desc.mediaType)) continue;
        throw new Error(
          `${label}: ${exp.what} references blob ${digest}, which is not in the bundle (truncated or incomplete bundle)`,
        );
      }
      for (const e of contents.dockerManifest ?? []) {
        for (const p of [e.Config, ...(e.Layers ?? [])]) {
          const m = typeof p === "string" ? BLOB_PATH.exec(p) : null;
          if (!m || !contents.blobs.has(`sha256:${m[1]!}` as Digest)) {
            throw new Error(`${label}: manifest.json points at ${String(p)}, which is not a blob in the bundle`);
          }
        }
      }
      await sink.commit();
    } else {
      tarStream.destroy();
      input.destroy();
    }
    return contents;
  } catch (err) {
    tarStream.destroy();
    input.destroy();
    await sink.abort();
    if (opts.signal?.aborted) throw new Error(`${label}: interrupted`, { cause: err });
    throw streamErrors.has(err) ? tidyError(err, label, format) : err;
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
  }
}

/** Make codec and tar library errors one readable line that names the bundle. */
function tidyError(err: unknown, label: string, format: StreamFormat): Error {
  const e = err instanceof Error ? err : new Error(String(err));
  if (e.message.startsWith(`${label}:`)) return e;
  const codec = format === "none" ? "tar" : `${format} stream`;
  if (/unexpected end|truncated|premature close/i.test(e.message)) {
    return new Error(`${label}: truncated ${codec} (${e.message}); the bundle is incomplete — re-copy the file`);
  }
  return new Error(`${label}: corrupt ${codec} (${e.message})`);
}
