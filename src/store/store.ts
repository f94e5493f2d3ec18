import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, stat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { Readable, type Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Annotation, encodeJson, parseIndex, type Descriptor } from "../oci/descriptor";
import { DigestStream, type Digest } from "../oci/digest";
import { MediaType } from "../oci/mediatypes";
import { DirTree } from "../util/files";
import { writeFileAtomic } from "../util/atomic";
import { trackTempPath } from "../util/leftovers";
import { ReadAheadStream } from "../util/read-ahead";
import { BlockWriteStream, feedWriter, FileWriteStream, isBlockFeed, type FileSpot } from "../util/file-writer";
import { HashThread, inlineHasher } from "../util/hash-thread";
import { BlockPool, WRITE_BLOCK } from "../util/block-pool";
import { directIoWanted } from "../util/direct-io";
import { allSettledOrThrow } from "../util/pool";
import { blobPath, OciLayoutSource } from "../transports/layout";
import type { ImageSink, NamedImage } from "../transports/types";
import { ConversionRecords } from "./records";

const signalOption = (signal: AbortSignal | undefined): { signal?: AbortSignal } => (signal ? { signal } : {});

/** What a store write may do besides storing the blob. */
export interface StoreWriteExtras {
  /** A check running alongside (e.g. the diff_id of the decompressed layer); the blob only becomes visible if it passes too. */
  gate?: Promise<unknown> | undefined;
  /** A second place for the same bytes (from the stored copy if the blob was here already). */
  tee?: FileSpot | undefined;
  /** Told how many bytes each write brought (progress display). */
  onBytes?: ((bytes: number) => void) | undefined;
}

/**
 * The content-addressed cache: an OCI image layout directory. Every blob lands in ingest/
 * first and is renamed under its digest only after it was verified, so a crash never leaves
 * a blob under a name it doesn't match.
 */
export class Store extends OciLayoutSource implements ImageSink {
  private readonly tags = new Map<string, Descriptor>();
  /** Digests written and verified by this process (their files were renamed into place after the check). */
  private readonly verified = new Set<string>();
  /** Blob writes in progress, so two layers with the same digest download it once. */
  private readonly writing = new Map<string, Promise<void>>();
  /** Work on one source layer at a time (see exclusive()). */
  private readonly layerWork = new Map<string, Promise<unknown>>();
  /** Blobs announced by background downloads (see expect()). */
  private readonly expected = new Map<string, Promise<void>>();
  private readonly hashThread = new HashThread();
  /** Write blocks shared by every blob this process writes (see BlockPool). */
  readonly blocks = new BlockPool();

  /** What earlier runs learnt about source layers (conversions, diff_ids, recipes). */
  readonly records: ConversionRecords;

  private constructor(readonly root: string) {
    super(new DirTree(root), `store ${root}`);
    this.records = new ConversionRecords(join(root, "airpack", "conversions"), (desc) => this.hasBlob(desc));
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

  /**
   * Start the hash thread now, so it is up (~20 ms of start-up on another core) by the time the
   * first big download arrives, rather than delaying it.
   */
  prepareHashing(): void {
    this.hashThread.start();
  }

  blobFile(desc: Pick<Descriptor, "digest">): string {
    return join(this.root, blobPath(desc));
  }

  /** Whether the blob is here; a download of it still running in this process is waited for first. */
  override async hasBlob(desc: Pick<Descriptor, "digest" | "size">): Promise<boolean> {
    await this.arrival(desc.digest);
    return this.hasBlobNow(desc);
  }

  private async arrival(digest: string): Promise<void> {
    await this.expected.get(digest)?.catch(() => undefined);
    await this.writing.get(digest)?.catch(() => undefined);
  }

  /** Whether the blob is here now, without waiting for downloads in progress (the downloads' own check). */
  async hasBlobNow(desc: Pick<Descriptor, "digest" | "size">): Promise<boolean> {
    try {
      return (await stat(this.blobFile(desc))).size === desc.size;
    } catch {
      return false;
    }
  }

  /**
   * Announce a blob that a background task is bringing in: hasBlob() and blob() readers wait for
   * it, so a bundle can be written while later layers are still downloading.
   */
  expect(digest: Digest, arrival: Promise<void>): void {
    this.expected.set(digest, arrival);
    const forget = (): void => {
      if (this.expected.get(digest) === arrival) this.expected.delete(digest);
    };
    arrival.then(forget, forget);
  }

  /**
   * Run `task` once no other task for `key` (a source layer digest) is running in this process.
   * Two images sharing a layer then bring it in once: the second finds it stored. A source read
   * forward once (a bundle) could not give the same layer twice.
   */
  async exclusive<T>(key: string, task: () => Promise<T>): Promise<T> {
    for (let prior = this.layerWork.get(key); prior; prior = this.layerWork.get(key)) {
      await prior.catch(() => undefined);
    }
    const run = task();
    this.layerWork.set(key, run);
    try {
      return await run;
    } finally {
      if (this.layerWork.get(key) === run) this.layerWork.delete(key);
    }
  }

  private ingestPath(): string {
    return trackTempPath(join(this.root, "ingest", randomBytes(8).toString("hex")));
  }

  /** Store a blob, hashing it on the way in (see StoreWriteExtras for the rest). */
  async putBlob(
    desc: Descriptor,
    data: Readable,
    errorLabel: string,
    signal?: AbortSignal,
    extras: StoreWriteExtras = {},
  ): Promise<void> {
    await this.write(desc, data, errorLabel, { ...extras, hash: true, signal });
  }

  /**
   * Store a stream from ImageSource.blob(), which by contract errors at its end unless it matched
   * `desc`; hashing it again here would only double the CPU cost of a download.
   */
  async putVerifiedBlob(
    desc: Descriptor,
    data: Readable,
    errorLabel: string,
    signal?: AbortSignal,
    extras: StoreWriteExtras = {},
  ): Promise<void> {
    await this.write(desc, data, errorLabel, { ...extras, hash: false, signal });
  }

  private async write(
    desc: Descriptor,
    data: Readable,
    errorLabel: string,
    opts: StoreWriteExtras & { hash: boolean; signal: AbortSignal | undefined },
  ): Promise<void> {
    const running = opts.gate ? undefined : this.writing.get(desc.digest);
    const alreadyHere = async (): Promise<void> => {
      if (opts.tee) await this.copyHeld(desc, opts.tee, errorLabel, opts.signal);
    };
    if (running) {
      // Another layer of this run brings the same blob: wait for that one (and share its failure).
      data.destroy();
      await running;
      await alreadyHere();
      return;
    }
    if (await this.hasBlobNow(desc)) {
      // A gate (the diff_id check) reads the same stream: it must see it to its end, not a cut.
      if (!opts.gate) data.destroy();
      await alreadyHere();
      await opts.gate;
      return;
    }
    const tmp = this.ingestPath();
    const done = (async () => {
      try {
        // Blobs are hashed in the writer over the blocks it writes anyway: big ones on the hash thread,
        // small ones (configs) here, without waiting for the thread to start. A registry download of
        // any size fills the writer's blocks itself (registry.ts feedInto; one download path for
        // every blob). Small blobs from a plain stream get a DigestStream. Only big ones bypass the
        // page cache.
        const big = desc.size >= WRITE_BLOCK;
        const feed = opts.hash && isBlockFeed(data);
        const checkedInWriter = opts.hash && (big || feed);
        const stages = opts.hash && !checkedInWriter ? [data, new DigestStream(desc, errorLabel)] : [data];
        const file = new FileWriteStream(tmp, {
          flags: "wx",
          direct: big && directIoWanted(),
          ...(opts.tee ? { mirror: opts.tee } : {}),
          pool: this.blocks,
          ...(checkedInWriter ? { hashThread: big ? this.hashThread : inlineHasher, expect: desc, errorLabel } : {}),
          ...(opts.onBytes ? { onBytes: opts.onBytes } : {}),
        });
        // The writer's size and digest check is what bounds a feed.
        const written = feed ? feedWriter(data, file) : pipeline([...stages, file], signalOption(opts.signal));
        await allSettledOrThrow([written, opts.gate ?? Promise.resolve()]);
        await rename(tmp, this.blobFile(desc));
        this.verified.add(desc.digest);
      } finally {
        await rm(tmp, { force: true });
      }
    })();
    this.writing.set(desc.digest, done);
    try {
      await done;
    } finally {
      this.writing.delete(desc.digest);
    }
  }

  /** Blobs this process verified while writing them are read back without hashing them again. */
  override async blob(desc: Descriptor, errorLabel: string, signal?: AbortSignal): Promise<Readable> {
    await this.arrival(desc.digest);
    return this.blobNow(desc, errorLabel, signal);
  }

  /** Like blob(), without waiting for a download of it in progress (see hasBlobNow()). */
  async blobNow(desc: Descriptor, errorLabel: string, signal?: AbortSignal): Promise<Readable> {
    if (!this.verified.has(desc.digest)) return super.blob(desc, errorLabel, signal);
    return new ReadAheadStream(this.blobFile(desc), 0, desc.size, { direct: directIoWanted() });
  }

  /**
   * Write a stored blob into `spot` (its place in a bundle), read around the page cache and checked
   * on the hash thread on the way (unless this process wrote and checked it already). A mismatch
   * fails the copy; the caller throws the spot's file away.
   */
  async copyTo(desc: Descriptor, spot: FileSpot, errorLabel: string, signal?: AbortSignal): Promise<void> {
    await this.arrival(desc.digest);
    await this.copyHeld(desc, spot, errorLabel, signal);
  }

  /** copyTo() without waiting for a download in progress (for that download's own use). */
  private async copyHeld(desc: Descriptor, spot: FileSpot, errorLabel: string, signal?: AbortSignal): Promise<void> {
    const checked = this.verified.has(desc.digest);
    const data = new ReadAheadStream(this.blobFile(desc), 0, desc.size, { direct: directIoWanted() });
    const writer = new BlockWriteStream(spot.target, {
      start: spot.start,
      end: "tar",
      pool: this.blocks,
      errorLabel,
      ...(checked ? { expect: { size: desc.size } } : { expect: desc, hashThread: this.hashThread }),
      ...(spot.onBytes ? { onBytes: spot.onBytes } : {}),
    });
    await pipeline(data, writer, signalOption(signal));
  }

  async putSmall(desc: Descriptor, bytes: Uint8Array, errorLabel: string): Promise<void> {
    await this.putBlob(desc, Readable.from([Buffer.from(bytes)]), errorLabel);
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
      const file = new FileWriteStream(tmp, { flags: "wx", pool: this.blocks });
      await pipeline([data, ...transforms, hasher, file], signalOption(signal));
      const result = hasher.digest;
      await rename(tmp, this.blobFile(result));
      this.verified.add(result.digest);
      return result;
    } finally {
      await rm(tmp, { force: true });
    }
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
