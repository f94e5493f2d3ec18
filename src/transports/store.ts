import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, stat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { Readable, type Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createWriteStream } from "node:fs";
import { Annotation, encodeJson, parseIndex, parseJson, type Descriptor } from "../oci/descriptor";
import { DigestStream, digestHex, parseDigest, type Digest } from "../oci/digest";
import { MediaType } from "../oci/mediatypes";
import { DirTree } from "../util/files";
import { writeFileAtomic } from "../util/atomic";
import { allSettledOrThrow } from "../util/pool";
import { blobPath, OciLayoutSource } from "./layout";
import type { ImageSink, NamedImage } from "./types";

/**
 * The content-addressed cache: an OCI image layout directory. Every blob lands in ingest/
 * first and is renamed under its digest only after it was verified, so a crash never leaves
 * a blob under a name it doesn't match.
 */
export class Store extends OciLayoutSource implements ImageSink {
  private readonly tags = new Map<string, Descriptor>();

  private constructor(readonly root: string) {
    super(new DirTree(root), `store ${root}`);
  }

  static async open(root: string): Promise<Store> {
    await mkdir(join(root, "blobs", "sha256"), { recursive: true });
    await mkdir(join(root, "ingest"), { recursive: true });
    await mkdir(join(root, "airpack", "conversions"), { recursive: true });
    const layoutFile = join(root, "oci-layout");
    try {
      await stat(layoutFile);
    } catch {
      await writeFileAtomic(layoutFile, '{"imageLayoutVersion":"1.0.0"}');
    }
    return new Store(root);
  }

  blobFile(desc: Pick<Descriptor, "digest">): string {
    return join(this.root, blobPath(desc));
  }

  override async hasBlob(desc: Pick<Descriptor, "digest" | "size">): Promise<boolean> {
    try {
      return (await stat(this.blobFile(desc))).size === desc.size;
    } catch {
      return false;
    }
  }

  private ingestPath(): string {
    return join(this.root, "ingest", randomBytes(8).toString("hex"));
  }

  /**
   * Store a verified blob. `gate`, when given, is a check running alongside (e.g. the diff_id of
   * the decompressed layer); the blob only becomes visible if it passes too.
   */
  async putBlob(
    desc: Descriptor,
    data: Readable,
    what: string,
    signal?: AbortSignal,
    gate?: Promise<unknown>,
  ): Promise<void> {
    if (await this.hasBlob(desc)) {
      data.destroy();
      await gate;
      return;
    }
    const tmp = this.ingestPath();
    try {
      const written = pipeline(
        data,
        new DigestStream(desc, what),
        createWriteStream(tmp, { flags: "wx" }),
        signal ? { signal } : {},
      );
      await allSettledOrThrow([written, gate ?? Promise.resolve()]);
      await rename(tmp, this.blobFile(desc));
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async putSmall(desc: Descriptor, bytes: Uint8Array, what: string): Promise<void> {
    await this.putBlob(desc, Readable.from([Buffer.from(bytes)]), what);
  }

  /**
   * Store the output of `transforms` applied to `data` under whatever digest it turns out to
   * have. Returns that digest and size.
   */
  async ingest(
    data: Readable,
    transforms: (Transform | NodeJS.ReadWriteStream)[],
    signal?: AbortSignal,
  ): Promise<{ digest: Digest; size: number }> {
    const tmp = this.ingestPath();
    const hasher = new DigestStream();
    try {
      await pipeline([data, ...transforms, hasher, createWriteStream(tmp, { flags: "wx" })], signal ? { signal } : {});
      const result = hasher.digest;
      await rename(tmp, this.blobFile(result));
      return result;
    } finally {
      await rm(tmp, { force: true });
    }
  }

  private conversionFile(source: Digest, mode: string): string {
    return join(this.root, "airpack", "conversions", `${digestHex(source)}.${mode}.json`);
  }

  /** A conversion done before (source layer digest + mode → stored result), if its blob is still here. */
  async cachedConversion(source: Digest, mode: string, needBlob = true): Promise<Descriptor | undefined> {
    try {
      const doc = parseJson(await readFile(this.conversionFile(source, mode)), "conversion cache");
      const desc = { mediaType: String(doc.mediaType), digest: parseDigest(doc.digest), size: Number(doc.size) };
      return !needBlob || (await this.hasBlob(desc)) ? desc : undefined;
    } catch {
      return undefined;
    }
  }

  /** A small JSON record about a source blob (e.g. its recipe), kept beside the conversion cache. */
  async readRecord(source: Digest, kind: string): Promise<Record<string, unknown> | undefined> {
    try {
      return parseJson(await readFile(this.conversionFile(source, kind)), "store record");
    } catch {
      return undefined;
    }
  }

  async writeRecord(source: Digest, kind: string, record: object): Promise<void> {
    await writeFileAtomic(this.conversionFile(source, kind), encodeJson(record));
  }

  async recordConversion(source: Digest, mode: string, result: Descriptor): Promise<void> {
    await writeFileAtomic(this.conversionFile(source, mode), encodeJson(result));
  }

  async tag(image: NamedImage): Promise<void> {
    this.tags.set(image.name, image.descriptor);
  }

  /** Merge this session's names into index.json (atomically). */
  override async close(): Promise<void> {
    if (this.tags.size === 0) return;
    const indexFile = join(this.root, "index.json");
    let existing: Descriptor[];
    try {
      existing = parseIndex(await readFile(indexFile), indexFile).manifests;
    } catch {
      existing = [];
    }
    const kept = existing.filter((d) => !this.tags.has(d.annotations?.[Annotation.containerdName] ?? ""));
    for (const [name, desc] of this.tags) {
      kept.push({
        mediaType: desc.mediaType,
        digest: desc.digest,
        size: desc.size,
        annotations: { [Annotation.containerdName]: name, [Annotation.refName]: name },
      });
    }
    await writeFileAtomic(indexFile, encodeJson({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: kept }));
    this.tags.clear();
  }

  /** Remove stale temp files left by killed runs. */
  async cleanIngest(): Promise<void> {
    const dir = join(this.root, "ingest");
    for (const name of await readdir(dir)) await rm(join(dir, name), { force: true });
  }
}
