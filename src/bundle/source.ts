import { createReadStream, createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, Readable, finished as eos } from "node:stream";
import { finished, pipeline } from "node:stream/promises";
import { checkBytes, imageName, type Descriptor } from "../oci/descriptor";
import { DigestStream, shortDigest, type Digest } from "../oci/digest";
import { isNonDistributable } from "../oci/mediatypes";
import { defaultThreads } from "../compression/codecs";
import { describeRecipe } from "../recipes/identify";
import type { GzipRecipe } from "../recipes/format";
import { regenerateGzipThreaded } from "../recipes/threaded";
import type { CarriedRecipe, ImageSource, NamedImage, UncompressedLimit } from "../transports/types";
import { maxUncompressedSize } from "../oci/limits";
import { makeTempDir, streamToFile } from "../util/atomic";
import { Limiter } from "../util/pool";
import { drain } from "../util/streams";
import { openInput } from "./input";
import { BundleReader, type BundleContents } from "./reader";

/** Layers up to this size are spooled and rebuilt in parallel; a bigger one streams straight through. */
const SPOOL_LIMIT = 512 * 1024 * 1024;

export interface BundleSourceOptions {
  /**
   * Offer the images as they were at their source (default): digest-preserving bundles give back
   * the original index and manifests, and recipe layers are rebuilt byte for byte. false offers
   * the bundle's own form (converted manifests, uncompressed layers).
   */
  restoreDigests?: boolean;
  signal?: AbortSignal;
}

/** A request for a blob stored in the bundle: served live if it is next, else from a spooled copy. */
interface Waiter {
  digest: Digest;
  /** Wants a file (to rebuild from) rather than a stream. */
  spool: boolean;
  resolve: (got: Readable | string) => void;
  reject: (err: unknown) => void;
}

export function bundleLabel(input: string): string {
  return input === "-" ? "bundle <stdin>" : `bundle ${input}`;
}

/**
 * A bundle as an image source, read forward once from a file or stdin and verified as it streams.
 * The small documents come first in a bundle and are kept in memory. Layers are served in bundle
 * order: a layer asked for while an earlier one is still unread makes the reader spool what it
 * passes (checked) to a temp dir. Recipe layers are rebuilt from their uncompressed blob, one
 * worker per core, and checked against the original digest before anyone sees a byte.
 */
export class BundleSource implements ImageSource {
  readonly label: string;
  /** How a layer restored from a recipe can be carried into another digest-preserving store or bundle. */
  recipeFor?: (layer: Descriptor) => CarriedRecipe | undefined;
  private readonly small = new Map<Digest, Uint8Array>();
  private readonly rebuilds = new Map<Digest, CarriedRecipe>();
  /** Uncompressed blobs that recipe layers not asked for yet are rebuilt from. */
  private readonly rebuildSourcesLeft = new Set<Digest>();
  private readonly roots = new Map<string, Descriptor>();
  private readonly foreign = new Set<Digest>();
  private readonly spooled = new Map<Digest, string>();
  /** Uncompressed sizes airpack.json records, by the compressed layer's digest. */
  private readonly recordedSizes = new Map<Digest, number>();
  /**
   * Requests still to come for a stored blob: one per blob served from it (itself, and each layer
   * rebuilt from it). A blob wanted more than once is spooled; the copy goes when this reaches 0.
   */
  private readonly uses = new Map<Digest, number>();
  private readonly queue: Waiter[] = [];
  private readonly workers = new Limiter(defaultThreads());
  private current?: { desc: Descriptor; data: Readable };
  private ended = false;
  private pumping = false;
  private broken?: Error;
  private rebuilding = 0;
  private spoolDir?: Promise<string>;
  private closed = false;
  /** A delta's base (useBase). */
  private base?: ImageSource;

  private constructor(
    private readonly reader: BundleReader,
    private readonly restore: boolean,
    private readonly signal?: AbortSignal,
  ) {
    this.label = reader.label;
  }

  static async open(input: string, opts: BundleSourceOptions = {}): Promise<BundleSource> {
    const reader = await BundleReader.open(openInput(input), bundleLabel(input), opts.signal);
    const source = new BundleSource(reader, opts.restoreDigests !== false, opts.signal);
    try {
      await source.readSmallDocuments();
    } catch (err) {
      await source.close();
      throw err;
    }
    if (source.restore && source.plan()) source.recipeFor = (layer) => source.rebuilds.get(layer.digest);
    for (const img of source.contents.metadata?.images ?? []) {
      for (const l of img.manifests.flatMap((m) => m.layers)) {
        if (l.uncompressedSize !== undefined) source.recordedSizes.set(l.source.digest, l.uncompressedSize);
      }
    }
    return source;
  }

  /**
   * A compressed layer holds what airpack.json recorded for it, exactly; with nothing recorded, at
   * most MAX_LAYER_RATIO times its size (docs/bundle-format.md, "Limits").
   */
  uncompressedLimit(layer: Descriptor): UncompressedLimit {
    const recorded = this.recordedSizes.get(layer.digest);
    return recorded !== undefined
      ? { size: recorded, exact: true }
      : { size: maxUncompressedSize(layer.size), exact: false };
  }

  /** What the reader has seen: metadata, index, manifests, verified blobs. */
  get contents(): BundleContents {
    return this.reader.contents;
  }

  /** Blobs recorded in airpack.json that no index.json entry reaches (kept for the record). */
  extraBlobs(): Descriptor[] {
    return this.restore ? [] : (this.contents.metadata?.extraBlobs ?? []);
  }

  /** Read up to the first layer: airpack.json, index.json, manifests, configs come before layers. */
  private async readSmallDocuments(): Promise<void> {
    while (!this.current && !this.ended) await this.advance();
  }

  /** Restoration plan from airpack.json; false when the bundle has nothing to restore. */
  private plan(): boolean {
    const meta = this.contents.metadata;
    let restores = false;
    // The copy engine asks for each blob once: a stored blob is wanted once per distinct blob served from it.
    const servedFrom = new Map<Digest, Set<Digest>>();
    for (const img of meta?.images ?? []) {
      if (img.restored) {
        restores = true;
        this.roots.set(img.name, {
          mediaType: img.restored.mediaType,
          digest: img.restored.digest,
          size: img.restored.size,
        });
      }
      for (const l of img.manifests.flatMap((m) => m.layers)) {
        if (l.mode === "foreign") this.foreign.add(l.digest);
        const stored = img.restored && !l.recipe ? l.source.digest : l.digest;
        const served = img.restored ? l.source.digest : l.digest;
        servedFrom.set(stored, (servedFrom.get(stored) ?? new Set()).add(served));
        if (img.restored && l.recipe) {
          this.rebuildSourcesLeft.add(l.digest);
          this.rebuilds.set(l.source.digest, {
            recipe: l.recipe,
            uncompressed: { mediaType: l.mediaType, digest: l.digest, size: l.size },
          });
        }
      }
    }
    for (const [stored, served] of servedFrom) this.uses.set(stored, served.size);
    return restores;
  }

  async images(): Promise<NamedImage[]> {
    return this.contents.index.manifests.map((entry) => {
      const name = imageName(entry);
      const root = this.roots.get(name);
      const descriptor: Descriptor = root ?? {
        mediaType: entry.mediaType,
        digest: entry.digest,
        size: entry.size,
        ...(entry.platform ? { platform: entry.platform } : {}),
      };
      return { name, descriptor, source: this.label };
    });
  }

  async fetchSmall(desc: Descriptor, label: string): Promise<Uint8Array> {
    if (!this.small.has(desc.digest) && !this.ended && this.reader.expectedBlob(desc.digest)) {
      // A small document after a layer (not how airpack writes them): read on, spooling what passes.
      await this.queued(desc.digest, false);
    }
    const bytes = this.small.get(desc.digest);
    if (!bytes) throw new Error(`${label}: ${desc.digest} is not in ${this.label}`);
    checkBytes(bytes, desc, label);
    return bytes;
  }

  /** A delta's relied-on blobs: the images need them, the bundle leaves them to its base. */
  get relied(): ReadonlySet<Digest> {
    return this.reader.relied;
  }

  /**
   * A delta's blobs that can't be had without its base: the relied-on ones, and the layers rebuilt
   * from a relied-on uncompressed blob.
   */
  unavailable(): Set<Digest> {
    const out = new Set(this.reader.relied);
    for (const [digest, r] of this.rebuilds) if (this.reader.relied.has(r.uncompressed.digest)) out.add(digest);
    return out;
  }

  /** Complete a delta: its relied-on blobs come from `base` (checked there against their digests). */
  useBase(base: ImageSource): void {
    this.base = base;
  }

  /** A relied-on blob from the base; without one, an error that says to give it. */
  private fromBase(desc: Descriptor, label: string): Promise<Readable> {
    if (this.base) return this.base.blob(desc, label, this.signal);
    return Promise.reject(
      new Error(
        `${label}: ${desc.digest} is not in ${this.label}, a delta bundle that relies on its base for it; give the base (--base BUNDLE|oci:DIR or --base-registry REG)`,
      ),
    );
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    if (this.reader.relied.has(desc.digest)) return this.base ? this.base.hasBlob(desc) : false;
    if (this.small.has(desc.digest) || this.spooled.has(desc.digest)) return true;
    const rebuild = this.rebuilds.get(desc.digest);
    if (rebuild) return this.hasBlob(rebuild.uncompressed);
    const expected = this.reader.expectedBlob(desc.digest);
    if (!expected) return false;
    return !(isNonDistributable(desc.mediaType) && this.foreign.has(desc.digest));
  }

  async blob(desc: Descriptor, label: string): Promise<Readable> {
    const small = this.small.get(desc.digest);
    if (small) {
      checkBytes(small, desc, label);
      return Readable.from([Buffer.from(small)]);
    }
    const rebuild = this.rebuilds.get(desc.digest);
    if (rebuild) return this.rebuilt(desc, rebuild);
    if (this.reader.relied.has(desc.digest)) return this.fromBase(desc, label);
    if (!this.reader.expectedBlob(desc.digest)) throw new Error(`${label}: ${desc.digest} is not in ${this.label}`);
    return (await this.queued(desc.digest, false)) as Readable;
  }

  /** Rebuild an original layer from its recipe, checked against the original digest. */
  private async rebuilt(original: Descriptor, r: CarriedRecipe): Promise<Readable> {
    const label = rebuildLabel(original, r.recipe);
    this.rebuildSourcesLeft.delete(r.uncompressed.digest);
    // The last rebuild, with no other running and no other request for its blob.
    const last =
      this.rebuildSourcesLeft.size === 0 && this.rebuilding === 0 && (this.uses.get(r.uncompressed.digest) ?? 1) <= 1;
    const relied = this.reader.relied.has(r.uncompressed.digest);
    if (r.uncompressed.size > SPOOL_LIMIT || last || relied) {
      // One big layer, or nothing else to do meanwhile: stream it through (a spool would only add
      // a write and a read of the whole layer). A delta's relied-on blob streams from its base.
      const data = relied
        ? await this.fromBase(r.uncompressed, label)
        : ((await this.queued(r.uncompressed.digest, false)) as Readable);
      this.used(r.uncompressed.digest);
      const regen = regenerateGzipThreaded(r.recipe);
      const check = new DigestStream(original, label);
      data.on("error", (err) => regen.destroy(err));
      regen.on("error", (err) => check.destroy(labelled(err, label)));
      return data.pipe(regen).pipe(check);
    }
    // Spool the uncompressed blob so the bundle can be read on while workers rebuild it.
    const file = (await this.queued(r.uncompressed.digest, true)) as string;
    this.rebuilding++;
    try {
      const target = join(await this.spoolDirectory(), `${original.digest.slice(7)}.rebuilt`);
      // One pipeline, so that an error anywhere (a worker's too) fails this rebuild, and only it.
      await this.workers.run(async () => {
        try {
          await pipeline(
            createReadStream(file),
            regenerateGzipThreaded(r.recipe),
            new DigestStream(original, label),
            createWriteStream(target, { flags: "wx", mode: 0o644 }),
          );
        } catch (err) {
          await rm(target, { force: true });
          throw labelled(err, label);
        }
      });
      const out = createReadStream(target);
      out.once("close", () => void rm(target, { force: true }));
      return out;
    } finally {
      this.rebuilding--;
      this.used(r.uncompressed.digest);
    }
  }

  /**
   * One request served for a stored blob: its spooled copy goes when no more are expected, once
   * `reading` (a stream of it, if any) is closed.
   */
  private used(digest: Digest, reading?: Readable): void {
    const left = (this.uses.get(digest) ?? 1) - 1;
    this.uses.set(digest, left);
    const file = this.spooled.get(digest);
    if (left > 0 || !file) return;
    this.spooled.delete(digest);
    if (reading) reading.once("close", () => void rm(file, { force: true }));
    else void rm(file, { force: true });
  }

  private queued(digest: Digest, spool: boolean): Promise<Readable | string> {
    if (this.broken) return Promise.reject(this.broken);
    return new Promise((resolve, reject) => {
      this.queue.push({ digest, spool, resolve, reject });
      void this.pump();
    });
  }

  /** Serve waiting requests from spooled copies or the entry at hand, reading on as needed. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.queue.length > 0) {
        this.serveSpooled();
        const head = this.queue[0];
        if (!head) break;
        if (!this.current) {
          if (this.ended) {
            const why = this.reader.contents.blobs.has(head.digest)
              ? "was read already (a bundle is read forward once)"
              : "is not in the bundle";
            this.failAll(new Error(`${this.label}: blob ${head.digest} ${why}`));
            break;
          }
          await this.advance();
          continue;
        }
        const entry = this.current;
        this.current = undefined;
        const wantedTwice =
          this.queue.filter((w) => w.digest === entry.desc.digest).length > 1 ||
          (this.uses.get(entry.desc.digest) ?? 1) > 1;
        if (entry.desc.digest === head.digest && !head.spool && !wantedTwice) {
          this.queue.shift();
          head.resolve(handedOver(entry.data));
          // The tar can't move on until this entry is read to its end (and so checked).
          await finished(entry.data);
          continue;
        }
        // Someone else (or nobody yet) wants it: keep a checked copy and read on.
        await this.spoolEntry(entry);
      }
    } catch (err) {
      this.broken = err instanceof Error ? err : new Error(String(err));
      this.failAll(this.broken);
    } finally {
      this.pumping = false;
    }
  }

  private serveSpooled(): void {
    for (let i = 0; i < this.queue.length;) {
      const w = this.queue[i]!;
      const small = this.small.get(w.digest);
      if (small) {
        this.queue.splice(i, 1);
        w.resolve(Readable.from([Buffer.from(small)]));
        continue;
      }
      const file = this.spooled.get(w.digest);
      if (file === undefined) {
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      if (w.spool) {
        w.resolve(file);
      } else {
        const out = createReadStream(file);
        this.used(w.digest, out);
        w.resolve(out);
      }
    }
  }

  private failAll(err: unknown): void {
    for (const w of this.queue.splice(0)) w.reject(err);
  }

  /**
   * The caller will not ask for this blob (a push target has it already): when the bundle comes to
   * it, it is read past and checked, not spooled.
   */
  skip(desc: Descriptor): void {
    const r = this.restore ? this.rebuilds.get(desc.digest) : undefined;
    // One use of the stored blob: each blob served from it counts once (see `uses`).
    this.used(r ? r.uncompressed.digest : desc.digest);
  }

  /**
   * As a delta's base: exactly these requests will come (a digest listed twice is asked twice), so
   * every other stored blob is read past and checked, and each wanted one is spooled only if it must be.
   */
  expectOnly(requests: Digest[]): void {
    for (const key of this.uses.keys()) this.uses.set(key, 0);
    for (const d of requests) {
      const stored = this.restore ? (this.rebuilds.get(d)?.uncompressed.digest ?? d) : d;
      this.uses.set(stored, (this.uses.get(stored) ?? 0) + 1);
    }
  }

  /** What a delta will ask of its base: each relied-on blob once, and each delta layer rebuilt from one. */
  baseRequests(): Digest[] {
    const out = [...this.reader.relied];
    for (const r of this.rebuilds.values())
      if (this.reader.relied.has(r.uncompressed.digest)) out.push(r.uncompressed.digest);
    return out;
  }

  private async spoolEntry(entry: { desc: Descriptor; data: Readable }): Promise<void> {
    if ((this.uses.get(entry.desc.digest) ?? 1) <= 0) {
      await drain(entry.data);
      return;
    }
    const file = join(await this.spoolDirectory(), entry.desc.digest.slice(7));
    await streamToFile(entry.data, file);
    this.spooled.set(entry.desc.digest, file);
  }

  /** One spool folder, made once even when asked for side by side, and none once closed. */
  private spoolDirectory(): Promise<string> {
    if (this.closed) return Promise.reject(new Error(`${this.label}: closed`));
    this.spoolDir ??= makeTempDir("airpack-bundle-");
    return this.spoolDir;
  }

  /** Read the next entry: small documents are kept, a layer becomes the entry at hand. */
  private async advance(): Promise<void> {
    const entry = await this.reader.next();
    if (!entry) {
      this.ended = true;
      return;
    }
    if (entry.type === "small") this.small.set(entry.desc.digest, entry.bytes);
    else if (entry.type === "layer") this.current = { desc: entry.desc, data: entry.data };
  }

  /**
   * Read the rest of the bundle, checking every blob nobody asked for, and the bundle's
   * completeness at its end. An unpack commits only after this.
   */
  async finish(): Promise<void> {
    while (this.pumping || this.queue.length > 0) await new Promise((r) => setImmediate(r));
    if (this.broken) throw this.broken;
    for (;;) {
      if (this.current) {
        const { data } = this.current;
        this.current = undefined;
        await drain(data);
      }
      if (this.ended) return;
      await this.advance();
    }
  }

  /** Stop after the small documents (inspect without --full). */
  stopAtLayers(): BundleContents {
    this.reader.stopAtLayers();
    return this.contents;
  }

  async close(): Promise<void> {
    this.current?.data.destroy();
    this.current = undefined;
    if (!this.ended) this.reader.stop();
    this.closed = true;
    this.failAll(new Error(`${this.label}: closed`));
    const spool = await this.spoolDir?.catch(() => undefined);
    if (spool) await rm(spool, { recursive: true, force: true });
    await this.base?.close();
  }
}

/** A worker's error ("recipe: …") as one that says which layer it was rebuilding. */
function labelled(err: unknown, label: string): Error {
  const e = err instanceof Error ? err : new Error(String(err));
  return e.message.startsWith(label) || e.message.startsWith("bundle ")
    ? e
    : new Error(`${label}: ${e.message}`, { cause: e });
}

function rebuildLabel(original: Descriptor, recipe: GzipRecipe): string {
  return `regenerated layer ${shortDigest(original.digest)}… (recipe ${describeRecipe(recipe)})`;
}

/**
 * An entry's data as the consumer gets it. A consumer that lets go early (the store has the blob
 * already) destroys its side only: the entry is read on to its end, still checked, so that the tar
 * can move on.
 */
function handedOver(entry: Readable): Readable {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  // A stream asked for ahead may fail before its consumer listens: the error waits in it (pipeline
  // and finished() report it) rather than crash the process.
  out.on("error", () => undefined);
  // An error, or a close before the end (the bundle failed under it), reaches the consumer.
  eos(entry, (err) => {
    if (err) out.destroy(err);
  });
  out.once("close", () => {
    if (entry.readableEnded) return;
    entry.unpipe(out);
    entry.resume();
  });
  return entry.pipe(out);
}
