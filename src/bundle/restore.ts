import { createReadStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { Annotation, encodeJson, parseJson, type Descriptor } from "../oci/descriptor";
import { DigestStream, shortDigest, type Digest } from "../oci/digest";
import { regenerateGzipThreaded } from "../recipes/threaded";
import { describeRecipe } from "../recipes/identify";
import type { GzipRecipe } from "../recipes/format";
import { defaultThreads } from "../compression/codecs";
import { allSettledOrThrow, Limiter } from "../util/pool";
import { blobPath } from "../transports/layout";
import { streamToFile } from "../util/atomic";
import type { BundleMetadata } from "./format";
import { parseDockerManifest } from "../oci/docker-manifest";
import { METADATA_FILE } from "./format";
import type { UnpackSink } from "./reader";
import { drain } from "../util/streams";

/** Blobs up to this size are spooled and rebuilt in parallel; a bigger single layer streams straight through. */
const SPOOL_LIMIT = 512 * 1024 * 1024;

interface Rebuild {
  original: Descriptor;
  recipe: GzipRecipe;
}

/** How errors about one rebuilt layer name it. */
function rebuildLabel(out: Rebuild): string {
  return `regenerated layer ${shortDigest(out.original.digest)}… (recipe ${describeRecipe(out.recipe)})`;
}

/**
 * Sits in front of an output sink and turns a digest-preserving bundle back into the source's
 * images: the original index and manifests, and each recipe layer regenerated from its
 * uncompressed blob and checked against the original digest before the output takes it.
 */
export class RestoringSink implements UnpackSink {
  private meta?: BundleMetadata;
  /** Uncompressed blob digest → originals to rebuild from it. */
  private readonly rebuilds = new Map<string, Rebuild[]>();
  /** Converted digest → original digest, per converted manifest (docker manifest.json rewrite). */
  private readonly layerMaps: { config: string; converted: string[]; original: string[] }[] = [];
  /** Bundle blobs the restored output must not contain (converted manifests, recipe-only layers). */
  private readonly drop = new Set<string>();
  private readonly produced = new Set<string>();
  private readonly expectedOutputs = new Set<string>();
  private spoolDir?: string;
  /** Output sink calls, one at a time and in bundle order. */
  private readonly output = new Limiter(1);
  /** Regeneration workers across layers. */
  private readonly workers = new Limiter(defaultThreads());
  /** Blobs spooled to temp files at once (temp space stays within a few layers). */
  private readonly spooled = new Limiter(defaultThreads() + 1);
  private readonly background: Promise<unknown>[] = [];
  /** Background rebuilds not settled yet. */
  private running = 0;
  /** Uncompressed blobs with rebuilds that have come by in the bundle. */
  private readonly rebuildSourcesSeen = new Set<string>();
  /** The first background failure: later blobs stop at once, commit() reports it. */
  private failed?: Error;

  constructor(private readonly inner: UnpackSink) {}

  private plan(meta: BundleMetadata): void {
    this.meta = meta;
    const neededAsIs = new Set<string>();
    const recipeOnly = new Set<string>();
    for (const img of meta.images) {
      if (img.restored && img.digest !== img.restored.digest) this.drop.add(img.digest);
      for (const m of img.manifests) {
        if (img.restored && m.digest !== m.sourceDigest) this.drop.add(m.digest);
        this.layerMaps.push({
          config: m.config,
          converted: m.layers.map((l) => l.digest),
          original: m.layers.map((l) => (img.restored ? l.source.digest : l.digest)),
        });
        for (const l of m.layers) {
          if (l.mode === "foreign") continue;
          if (img.restored && l.recipe) {
            const list = this.rebuilds.get(l.digest) ?? [];
            if (!list.some((r) => r.original.digest === l.source.digest)) {
              list.push({
                original: { mediaType: l.source.mediaType, digest: l.source.digest, size: l.source.size },
                recipe: l.recipe,
              });
            }
            this.rebuilds.set(l.digest, list);
            recipeOnly.add(l.digest);
            this.expectedOutputs.add(l.source.digest);
          } else {
            const d = img.restored ? l.source.digest : l.digest;
            neededAsIs.add(d);
            this.expectedOutputs.add(d);
          }
        }
      }
    }
    for (const d of recipeOnly) if (!neededAsIs.has(d)) this.drop.add(d);
  }

  async file(name: string, bytes: Uint8Array): Promise<void> {
    return this.output.run(() => this.rewriteFile(name, bytes));
  }

  private async rewriteFile(name: string, bytes: Uint8Array): Promise<void> {
    if (name === METADATA_FILE) {
      this.plan(parseJson(bytes, METADATA_FILE) as unknown as BundleMetadata);
      return this.inner.file(name, bytes);
    }
    const meta = this.meta;
    if (!meta) return this.inner.file(name, bytes);
    if (name === "index.json") {
      const doc = parseJson(bytes, "index.json") as { manifests: Descriptor[] };
      doc.manifests = doc.manifests.map((entry) => {
        const name = entry.annotations?.[Annotation.containerdName];
        const img = meta.images.find((i) => i.name === name);
        if (!img?.restored) return entry;
        return { ...entry, mediaType: img.restored.mediaType, digest: img.restored.digest, size: img.restored.size };
      });
      return this.inner.file(name, encodeJson(doc));
    }
    if (name === "manifest.json") {
      const entries = parseDockerManifest(bytes, name).map((e) => {
        const converted = e.Layers.map((p) => `sha256:${p.slice("blobs/sha256/".length)}`);
        const map = this.layerMaps.find(
          (m) =>
            `sha256:${e.Config.slice("blobs/sha256/".length)}` === m.config && m.converted.join() === converted.join(),
        );
        return map ? { ...e, Layers: map.original.map((d) => blobPath({ digest: d as Digest })) } : e;
      });
      return this.inner.file(name, encodeJson(entries));
    }
    return this.inner.file(name, bytes);
  }

  async smallBlob(desc: Descriptor, bytes: Uint8Array): Promise<void> {
    if (this.drop.has(desc.digest)) return;
    return this.output.run(() => this.inner.smallBlob(desc, bytes));
  }

  async blob(desc: Descriptor, data: Readable): Promise<void> {
    if (this.failed) {
      data.destroy();
      throw this.failed;
    }
    if (!this.meta) return this.output.run(() => this.inner.blob(desc, data));
    const outputs: (Rebuild | "as-is")[] = [
      ...(this.drop.has(desc.digest) ? [] : (["as-is"] as const)),
      ...(this.rebuilds.get(desc.digest) ?? []).filter((r) => !this.produced.has(r.original.digest)),
    ];
    if (outputs.length === 0) return drain(data);
    const rebuilds = outputs.filter((o): o is Rebuild => o !== "as-is");
    if (rebuilds.length > 0) this.rebuildSourcesSeen.add(desc.digest);
    if (rebuilds.length === 0 || (outputs.length === 1 && (desc.size > SPOOL_LIMIT || this.lastRebuildAlone()))) {
      // Nothing to rebuild, one big layer, or the last rebuild with nothing else running: stream it
      // straight through, in turn (a spool would only add a write and a read of the whole layer).
      return this.output.run(() => this.emit(desc, outputs[0]!, data));
    }
    // Spool the blob so the bundle can be read on while workers rebuild it (one per core, across
    // layers); the rebuilt blobs reach the output in bundle order.
    // Bounded: the reader waits while this many blobs are spooled and not yet written out.
    const release = await this.spooled.acquire();
    this.spoolDir ??= await mkdtemp(join(tmpdir(), "airpack-restore-"));
    const file = join(this.spoolDir, desc.digest.slice(7));
    try {
      await streamToFile(data, file);
    } catch (err) {
      release();
      throw err;
    }
    const rebuilt = rebuilds.map((r) => this.rebuildToFile(r, file));
    const written = this.output.run(async () => {
      for (const out of outputs) {
        if (out === "as-is") await this.emit(desc, out, createReadStream(file));
      }
      for (const [i, r] of rebuilds.entries()) {
        const regenerated = await rebuilt[i]!;
        await this.inner.blob(r.original, createReadStream(regenerated));
        this.produced.add(r.original.digest);
        await rm(regenerated, { force: true });
      }
    });
    this.running++;
    const task = allSettledOrThrow([written, ...rebuilt]).finally(async () => {
      this.running--;
      await rm(file, { force: true });
      release();
    });
    task.catch((err: unknown) => (this.failed ??= err instanceof Error ? err : new Error(String(err))));
    this.background.push(task);
  }

  /** Whether every other blob with rebuilds has come by and been rebuilt: nothing to run alongside. */
  private lastRebuildAlone(): boolean {
    return this.running === 0 && this.rebuildSourcesSeen.size === this.rebuilds.size;
  }

  /** Regenerate one original from a spooled blob into a temp file, checked against its digest. */
  private rebuildToFile(out: Rebuild, file: string): Promise<string> {
    return this.workers.run(async () => {
      const target = join(this.spoolDir!, `${out.original.digest.slice(7)}.rebuilt`);
      const what = rebuildLabel(out);
      await streamToFile(
        createReadStream(file).pipe(regenerateGzipThreaded(out.recipe)).pipe(new DigestStream(out.original, what)),
        target,
      );
      return target;
    });
  }

  private async emit(desc: Descriptor, out: Rebuild | "as-is", data: Readable): Promise<void> {
    if (out === "as-is") {
      this.produced.add(desc.digest);
      return this.inner.blob(desc, data);
    }
    const what = rebuildLabel(out);
    const regen = regenerateGzipThreaded(out.recipe);
    const check = new DigestStream(out.original, what);
    data.on("error", (err) => regen.destroy(err));
    regen.on("error", (err) => check.destroy(err));
    await this.inner.blob(out.original, data.pipe(regen).pipe(check));
    this.produced.add(out.original.digest);
  }

  async commit(): Promise<void> {
    await allSettledOrThrow(this.background.splice(0));
    for (const d of this.expectedOutputs) {
      if (!this.produced.has(d))
        throw new Error(`bundle: layer ${d} could not be restored (its source blob is missing)`);
    }
    await this.cleanup();
    return this.inner.commit();
  }

  async abort(): Promise<void> {
    await Promise.allSettled(this.background.splice(0));
    await this.cleanup();
    return this.inner.abort();
  }

  private async cleanup(): Promise<void> {
    if (this.spoolDir) await rm(this.spoolDir, { recursive: true, force: true });
  }
}
