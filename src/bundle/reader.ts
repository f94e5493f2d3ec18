import type { Readable } from "node:stream";
import * as tar from "tar-stream";
import {
  checkBytes,
  imageName,
  MAX_JSON_BYTES,
  parseConfig,
  parseIndex,
  parseOciLayout,
  parseManifest,
  type Descriptor,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
} from "../oci/descriptor";
import { DigestStream, isDigest, shortDigest, type Digest } from "../oci/digest";
import { isIndex, isManifest, isNonDistributable } from "../oci/mediatypes";
import { parseDockerManifest, type DockerManifestEntry } from "../oci/docker-manifest";
import { safeTarPath } from "../util/tar-index";
import type { StreamFormat } from "../compression/sniff";
import { MAX_BLOBS, MAX_INDEX_DEPTH, MAX_JSON_TOTAL_BYTES } from "../oci/limits";
import { METADATA_FILE, parseMetadata } from "./format";
import type { BundleMetadata } from "./format";
import { openTarStream } from "./input";
import { quote } from "../quote";

/** An entry as tar-stream's extractor yields it. */
type TarEntry = ReturnType<typeof tar.extract> extends AsyncIterable<infer E> ? E : never;

type Kind = "index" | "manifest" | "config" | "layer" | "extra";

interface Expected {
  desc: Descriptor;
  kind: Kind;
  label: string;
  /** Indexes and manifests: the longest path from index.json to it (index.json's entries are 1). */
  depth?: number;
}

export interface BundleContents {
  format: StreamFormat;
  metadata?: BundleMetadata;
  index: ImageIndex;
  dockerManifest?: DockerManifestEntry[];
  manifests: Map<Digest, ImageManifest>;
  indexes: Map<Digest, ImageIndex>;
  configs: Map<Digest, ImageConfig>;
  /** Blobs read and verified so far. */
  blobs: Map<Digest, { size: number; kind: Kind }>;
  /** True when reading stopped at the first layer (inspect). */
  partial: boolean;
  /** Distinct blobs referenced by what was read (all of them once reading finished). */
  referenced: number;
}

/** One verified entry of a bundle, in bundle order. */
export type BundleEntry =
  | { type: "file"; path: string; bytes: Uint8Array }
  | { type: "small"; desc: Descriptor; bytes: Uint8Array }
  /** A layer: the stream fails at its end unless it matched `desc`, and must be consumed before next(). */
  | { type: "layer"; desc: Descriptor; label: string; data: Readable };

const BLOB_PATH = /^blobs\/sha256\/([a-f0-9]{64})$/;
const KNOWN_FILES = new Set(["oci-layout", "index.json", "manifest.json", METADATA_FILE, "repositories"]);

async function readAll(stream: AsyncIterable<unknown>, limit: number, label: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new Error(`${label}: over the ${limit}-byte limit for JSON documents`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Indexes and manifests have a place in the graph's depth; other blobs do not. */
function depthOf(desc: Descriptor, depth: number): number | undefined {
  return isIndex(desc.mediaType) || isManifest(desc.mediaType) ? depth : undefined;
}

function kindOf(desc: Descriptor): Kind {
  return isIndex(desc.mediaType) ? "index" : isManifest(desc.mediaType) ? "manifest" : "extra";
}

/**
 * A bundle read entry by entry: every entry path is checked, every blob is hashed against its
 * name and against the descriptor that references it, and nothing unreferenced or out of order
 * passes. The last next() (the one that returns undefined) checks that nothing referenced is missing.
 */
export class BundleReader {
  readonly contents: BundleContents;
  private readonly expected = new Map<Digest, Expected>();
  private readonly seenFiles = new Set<string>();
  /** What each index read so far lists (to carry a depth that grows down to its children). */
  private readonly children = new Map<Digest, Descriptor[]>();
  /** Bytes of JSON held (every document of a bundle is kept while it is read). */
  private jsonBytes = 0;
  /** A delta's relied-on blobs (airpack.json `delta.relies`): referenced, and rightly not in the bundle. */
  readonly relied = new Set<Digest>();
  private sawIndex = false;
  private sawLayout = false;
  private done = false;
  /** Errors raised by the codec or the tar parser (as opposed to our own checks), to be tidied. */
  private readonly streamErrors = new Set<unknown>();
  private readonly entries: AsyncIterator<TarEntry>;
  private readonly feeding: Promise<void>;
  private readonly onAbort = (): void => {
    this.tarStream.destroy(new Error(`${this.label}: interrupted`));
  };

  private constructor(
    private readonly input: Readable,
    private readonly tarStream: Readable,
    format: StreamFormat,
    readonly label: string,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.contents = {
      format,
      index: { schemaVersion: 2, manifests: [] },
      manifests: new Map(),
      indexes: new Map(),
      configs: new Map(),
      blobs: new Map(),
      partial: false,
      referenced: 0,
    };
    const extract = tar.extract();
    this.feeding = new Promise<void>((resolve, reject) => {
      tarStream.on("error", (err) => {
        this.streamErrors.add(err);
        // Without this the extractor would wait forever for bytes that never come.
        extract.destroy(err);
        reject(err);
      });
      extract.on("error", (err: unknown) => {
        this.streamErrors.add(err);
        reject(err);
      });
      extract.on("finish", resolve);
      tarStream.pipe(extract as unknown as NodeJS.WritableStream);
    });
    this.feeding.catch(() => undefined);
    this.entries = extract[Symbol.asyncIterator]();
    signal?.addEventListener("abort", this.onAbort, { once: true });
  }

  static async open(input: Readable, label: string, signal?: AbortSignal): Promise<BundleReader> {
    const { tar: tarStream, format } = await openTarStream(input, label);
    return new BundleReader(input, tarStream, format, label, signal);
  }

  /** Whether `digest` is referenced by what was read so far, and as what. */
  expectedBlob(digest: Digest): Descriptor | undefined {
    return this.expected.get(digest)?.desc;
  }

  /** The next verified entry, or undefined at the end of a complete bundle. */
  async next(): Promise<BundleEntry | undefined> {
    if (this.done) return undefined;
    try {
      for (;;) {
        const step = await this.entries.next();
        if (step.done) {
          await this.finish();
          return undefined;
        }
        const entry = await this.accept(step.value);
        if (entry) return entry;
      }
    } catch (err) {
      throw this.failure(err);
    }
  }

  /** Stop reading (inspect, or a consumer that has all it needs). */
  stop(): void {
    this.done = true;
    this.signal?.removeEventListener("abort", this.onAbort);
    this.tarStream.destroy();
    this.input.destroy();
  }

  /** Turn an error met while reading into the one the user sees, and stop. */
  failure(err: unknown): Error {
    this.stop();
    if (this.signal?.aborted) return new Error(`${this.label}: interrupted`, { cause: err });
    if (this.streamErrors.has(err)) return tidyError(err, this.label, this.contents.format);
    return err instanceof Error ? err : new Error(String(err));
  }

  private expect(desc: Descriptor, kind: Kind, label: string, depth?: number): void {
    const prior = this.expected.get(desc.digest);
    if (prior && prior.desc.size !== desc.size) {
      throw new Error(`${label}: ${desc.digest} is listed with two sizes (${prior.desc.size} and ${desc.size})`);
    }
    if (!prior || (prior.kind === "extra" && kind !== "extra")) {
      if (!prior && this.expected.size >= MAX_BLOBS) {
        throw new Error(`${this.label}: more than ${MAX_BLOBS} distinct blobs referenced (the limit for one bundle)`);
      }
      this.expected.set(desc.digest, { desc, kind, label, ...(prior?.depth ? { depth: prior.depth } : {}) });
    }
    if (depth !== undefined) this.deepen(desc.digest, depth, label);
  }

  /**
   * Record that an index or manifest sits `depth` levels below index.json, and carry a deeper
   * position down to what it lists (iteratively; each digest deepens at most MAX_INDEX_DEPTH times).
   */
  private deepen(digest: Digest, depth: number, label: string): void {
    const todo: [Digest, number, string][] = [[digest, depth, label]];
    for (let item = todo.pop(); item; item = todo.pop()) {
      const [d, n, what] = item;
      const exp = this.expected.get(d);
      if (!exp || (exp.depth ?? 0) >= n) continue;
      if (n > MAX_INDEX_DEPTH) {
        throw new Error(
          `${this.label}: ${what.split(" → ")[0]!}: indexes nest more than ${MAX_INDEX_DEPTH} levels deep below index.json ` +
            `(the limit), at ${shortDigest(d)}…`,
        );
      }
      exp.depth = n;
      for (const child of this.children.get(d) ?? []) todo.push([child.digest, n + 1, `${what} → ${child.digest}`]);
    }
  }

  private async accept(entry: TarEntry): Promise<BundleEntry | undefined> {
    const { label } = this;
    const h = entry.header;
    const path = safeTarPath(h.name, label);
    if (h.type === "directory") {
      if (this.seenFiles.has(`${path}/`)) throw new Error(`${label}: directory entry "${path}/" appears twice`);
      this.seenFiles.add(`${path}/`);
      entry.resume();
      return undefined;
    }
    if (h.type === "symlink" || h.type === "link") {
      throw new Error(
        `${label}: entry "${h.name}" is a ${h.type === "link" ? "hardlink" : "symlink"} to "${h.linkname ?? ""}"; bundles hold only regular files`,
      );
    }
    if (h.type !== "file" && h.type !== "contiguous-file") {
      throw new Error(
        `${label}: entry ${quote(h.name)} is a ${h.type ?? "tar entry of an unknown type"}; bundles hold only regular files`,
      );
    }
    if (this.seenFiles.has(path)) throw new Error(`${label}: entry "${path}" appears twice`);
    this.seenFiles.add(path);
    const size = h.size ?? 0;
    const blobMatch = BLOB_PATH.exec(path);
    if (!blobMatch) {
      if (!KNOWN_FILES.has(path)) throw new Error(`${label}: unexpected entry "${path}" (not part of an OCI layout)`);
      this.holdJson(size, `${label}: ${path}`);
      const bytes = await readAll(entry, MAX_JSON_BYTES, `${label}: ${path}`);
      this.acceptFile(path, bytes);
      return { type: "file", path, bytes };
    }
    const digest = `sha256:${blobMatch[1]!}` as Digest;
    if (!isDigest(digest)) throw new Error(`${label}: bad blob name ${path}`);
    const exp = this.expected.get(digest);
    if (!exp) {
      if (!this.sawIndex)
        throw new Error(
          `${label}: blob ${shortDigest(digest)}… comes before index.json; not an airpack bundle (use 'airpack pack oci-archive:…' to read other archives)`,
        );
      throw new Error(`${label}: blob ${digest} is not referenced by index.json or any manifest before it`);
    }
    if (exp.desc.size !== size) {
      throw new Error(
        `${label}: ${exp.label}: blob ${shortDigest(digest)}… is ${size} bytes in the tar but ${exp.desc.size} in its descriptor`,
      );
    }
    this.contents.blobs.set(digest, { size, kind: exp.kind });
    if (exp.kind === "layer") {
      const entryLabel = `${label}: ${exp.label} (${shortDigest(digest)}…)`;
      const check = new DigestStream(exp.desc, entryLabel);
      entry.on("error", (err: Error) => check.destroy(this.streamErrors.has(err) ? this.failure(err) : err));
      return { type: "layer", desc: exp.desc, label: entryLabel, data: entry.pipe(check) };
    }
    this.holdJson(size, `${label}: ${exp.label}`);
    const bytes = await readAll(entry, MAX_JSON_BYTES, `${label}: ${exp.label}`);
    this.acceptSmallBlob(digest, bytes, exp);
    return { type: "small", desc: exp.desc, bytes };
  }

  /** A JSON document of `size` bytes is about to be read and kept: refused, before a byte is read, over the limits. */
  private holdJson(size: number, what: string): void {
    if (size > MAX_JSON_BYTES) {
      throw new Error(`${what}: ${size} bytes, over the ${MAX_JSON_BYTES}-byte limit for JSON documents`);
    }
    this.jsonBytes += size;
    if (this.jsonBytes > MAX_JSON_TOTAL_BYTES) {
      throw new Error(
        `${this.label}: its JSON documents come to more than ${MAX_JSON_TOTAL_BYTES} bytes (the limit for one bundle)`,
      );
    }
  }

  /** oci-layout, index.json, manifest.json and airpack.json: parsed, checked, and what they reference expected. */
  private acceptFile(path: string, bytes: Buffer): void {
    const { label, contents } = this;
    if (path === "oci-layout") {
      parseOciLayout(bytes, `${label}: oci-layout`);
      this.sawLayout = true;
    } else if (path === "index.json") {
      contents.index = parseIndex(bytes, `${label}: index.json`);
      const delta = contents.metadata?.delta;
      if (delta) {
        // A delta lists its images in airpack.json only (which comes first), so importers load none.
        if (contents.index.manifests.length > 0) {
          throw new Error(
            `${label}: index.json of a delta bundle lists images; a delta's images are in airpack.json only`,
          );
        }
        contents.index = { ...contents.index, manifests: delta.index ?? [] };
      }
      for (const d of contents.index.manifests) this.expect(d, kindOf(d), `image ${imageName(d)}`, depthOf(d, 1));
      this.sawIndex = true;
    } else if (path === "manifest.json") {
      contents.dockerManifest = parseDockerManifest(bytes, `${label}: manifest.json`);
    } else if (path === METADATA_FILE) {
      const meta = parseMetadata(bytes, `${label}: ${METADATA_FILE}`);
      if (meta.delta && this.sawIndex)
        throw new Error(`${label}: airpack.json of a delta bundle comes after index.json`);
      contents.metadata = meta;
      for (const r of meta.delta?.relies ?? []) this.relied.add(r.digest);
      for (const d of meta.extraBlobs ?? []) this.expect(d, "extra", "recorded original index");
    }
  }

  private acceptSmallBlob(digest: Digest, bytes: Buffer, exp: Expected): void {
    const { label, contents } = this;
    checkBytes(bytes, exp.desc, `${label}: ${exp.label} (${shortDigest(digest)}…)`);
    if (exp.kind === "index" || (exp.kind === "extra" && isIndex(exp.desc.mediaType))) {
      const idx = parseIndex(bytes, `${label}: ${exp.label}`);
      contents.indexes.set(digest, idx);
      if (exp.kind === "index") {
        this.children.set(digest, idx.manifests);
        const depth = (exp.depth ?? 1) + 1;
        for (const child of idx.manifests) {
          this.expect(child, kindOf(child), `${exp.label} → ${child.digest}`, depthOf(child, depth));
        }
      }
    } else if (exp.kind === "manifest") {
      const m = parseManifest(bytes, `${label}: ${exp.label}`);
      contents.manifests.set(digest, m);
      this.expect(m.config, "config", `config of ${exp.label}`);
      m.layers.forEach((l, i) => this.expect(l, "layer", `layer ${i} of ${exp.label}`));
    } else if (exp.kind === "config") {
      const isImageConfig = /container\.image\.v1\+json|image\.config\.v1\+json/.test(exp.desc.mediaType);
      if (isImageConfig) {
        // Kept for inspect (platform, layers): not the whole document, which can be megabytes of history.
        const { architecture, os, variant, rootfs } = parseConfig(bytes, `${label}: ${exp.label}`);
        contents.configs.set(digest, {
          ...(architecture !== undefined ? { architecture } : {}),
          ...(os !== undefined ? { os } : {}),
          ...(variant !== undefined ? { variant } : {}),
          ...(rootfs !== undefined ? { rootfs } : {}),
        });
      }
    }
  }

  /** At the end of the tar: everything referenced must have come by. */
  private async finish(): Promise<void> {
    const { label, contents } = this;
    await this.feeding;
    this.done = true;
    this.signal?.removeEventListener("abort", this.onAbort);
    contents.referenced = this.expected.size;
    if (!this.sawLayout) throw new Error(`${label}: no oci-layout file; not an OCI layout bundle`);
    if (!this.sawIndex) throw new Error(`${label}: no index.json; not an OCI layout bundle`);
    for (const [digest, exp] of this.expected) {
      if (contents.blobs.has(digest)) continue;
      if (exp.kind === "layer" && this.relied.has(digest) && exp.desc.size === this.reliedSize(digest)) continue;
      if (exp.kind === "layer" && isNonDistributable(exp.desc.mediaType)) continue;
      throw new Error(
        `${label}: ${exp.label} references blob ${digest}, which is not in the bundle (truncated or incomplete bundle)`,
      );
    }
    for (const e of contents.dockerManifest ?? []) {
      for (const p of [e.Config, ...e.Layers]) {
        const m = BLOB_PATH.exec(p);
        if (!m || !contents.blobs.has(`sha256:${m[1]!}` as Digest)) {
          throw new Error(`${label}: manifest.json points at ${p}, which is not a blob in the bundle`);
        }
      }
    }
  }

  private reliedSize(digest: Digest): number | undefined {
    return this.contents.metadata?.delta?.relies.find((r) => r.digest === digest)?.size;
  }

  /** inspect: what was read before the first layer. */
  stopAtLayers(): void {
    this.contents.partial = true;
    this.contents.referenced = this.expected.size;
    this.stop();
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
