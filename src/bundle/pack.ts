import { setMaxListeners } from "node:events";
import { rename, rm, stat } from "node:fs/promises";
import { copyImage, type CopyOptions, type ImageReport } from "../copy/copy";
import type { Descriptor } from "../oci/descriptor";
import type { Digest } from "../oci/digest";
import { formatPlatform } from "../oci/platform";
import { parseSourceSpec, registryHosts } from "../transports/parse";
import { StoreFirstSource } from "../store/cached";
import { createRegistryClient, type RegistryOptions } from "../registry/setup";
import { Store } from "../store/store";
import type { ImageSource, NamedImage } from "../transports/types";
import type { StreamFormat } from "../compression/sniff";
import { BUNDLE_FORMAT_VERSION, type BundleImage, type BundleMetadata } from "./format";
import { bundleEntries, layoutFiles } from "./writer";
import { ArchiveSink } from "./sinks";
import { checkOutputParent } from "./output";
import { copyToLayout } from "../copy/layout";
import { openSource } from "./open";
import { BundleSource } from "./source";
import { planLayout, type LayoutPlan } from "../transports/plan";
import { PositionalTar } from "./tar-file";
import { toolVersion } from "../version";
import { tempSibling } from "../util/atomic";
import { directIoWanted } from "../util/direct-io";
import type { FileSpot } from "../util/file-writer";
import { progressCounter, type ProgressListener } from "../util/progress";
import { allSettledOrThrow, Limiter, mapPool } from "../util/pool";
import { defaultThreads } from "../compression/codecs";

export interface PackOptions extends CopyOptions {
  sources: string[];
  out: string;
  cacheDir: string;
  compress: StreamFormat;
  compressLevel?: number;
  threads?: number;
  registry?: RegistryOptions;
}

export interface PackResult {
  out: string;
  metadata: BundleMetadata;
  bytesWritten: number;
  layerBytes: number;
  blobs: number;
  foreign: Descriptor[];
  /** What the sources got wrong that the copy worked around. */
  warnings: string[];
}

function toBundleImage(r: ImageReport): BundleImage {
  return {
    name: r.name,
    source: r.source,
    digest: r.descriptor.digest,
    mediaType: r.descriptor.mediaType,
    size: r.descriptor.size,
    sourceDigest: r.sourceDescriptor.digest,
    sourceMediaType: r.sourceDescriptor.mediaType,
    manifests: r.manifests.map((m) => ({
      ...(m.platform ? { platform: formatPlatform(m.platform) } : {}),
      digest: m.descriptor.digest,
      mediaType: m.descriptor.mediaType,
      sourceDigest: m.sourceDigest,
      config: m.config.digest,
      artifact: m.artifact,
      layers: m.layers.map((l) => ({
        mode:
          l.action === "foreign"
            ? "foreign"
            : l.action === "converted" || l.stored.digest !== l.source.digest
              ? "converted"
              : "kept",
        digest: l.stored.digest,
        mediaType: l.stored.mediaType,
        size: l.stored.size,
        ...(l.diffId ? { diffId: l.diffId } : {}),
        ...(l.uncompressedSize !== undefined ? { uncompressedSize: l.uncompressedSize } : {}),
        source: { digest: l.source.digest, mediaType: l.source.mediaType, size: l.source.size },
        ...(l.recipe ? { recipe: l.recipe } : {}),
        ...(l.keptReason ? { kept: l.keptReason } : {}),
      })),
    })),
    ...(r.preserved
      ? { restored: { digest: r.restored.digest, mediaType: r.restored.mediaType, size: r.restored.size } }
      : {}),
    skipped: r.skipped,
  };
}

/** A plain layer copy that may finish after copyAll, given a second destination for its bytes. */
type BackgroundTask = (tee?: FileSpot) => Promise<void>;

/** pack: every source → store (converting layers) → one bundle file or stdout. */
export async function pack(opts: PackOptions): Promise<PackResult> {
  await checkOutputParent(opts.out); // before any download, not after all of them
  const store = await Store.open(opts.cacheDir);
  // A failed background download stops everything else; Ctrl-C (opts.signal) does too.
  const cancel = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, cancel.signal]) : cancel.signal;
  setMaxListeners(256, signal); // one listener per stream in flight
  const downloads = new Limiter(opts.jobs);
  const background: Promise<void>[] = [];
  const scheduled = new Set<Digest>();
  // A plain tar file is written in place: each layer's download goes to the store and to its spot
  // in the bundle at once, so those downloads wait until the plan says where the spots are.
  const inPlace = await writesInPlace(opts);
  const deferred = new Map<Digest, BackgroundTask>();
  const start = (digest: Digest, task: BackgroundTask, tee?: FileSpot): Promise<void> => {
    const arrival = downloads.run(async () => {
      signal.throwIfAborted(); // queued behind a download that failed
      await task(tee);
    });
    arrival.catch(() => cancel.abort());
    store.expect(digest, arrival);
    background.push(arrival);
    return arrival;
  };
  const inBackground = (digest: Digest, task: BackgroundTask): void => {
    if (scheduled.has(digest)) return; // another image brings the same layer
    scheduled.add(digest);
    if (inPlace) deferred.set(digest, task);
    else start(digest, task);
  };
  const startDeferred = (digest: Digest, tee: FileSpot): Promise<void> | undefined => {
    const task = deferred.get(digest);
    deferred.delete(digest);
    return task && start(digest, task, tee);
  };
  let ok = false;
  try {
    const copied = await copyAll(store, { ...opts, signal, background: inBackground });
    const bundle = describeBundle(copied, opts);
    const result = inPlace
      ? await writeBundleInPlace(store, bundle, { ...opts, signal }, new Set(deferred.keys()), startDeferred, () =>
          cancel.abort(),
        )
      : await writeBundle(store, bundle, { ...opts, signal }, Promise.all(background));
    for (const [digest, task] of deferred) start(digest, task); // none expected: every copied layer is in the plan
    await Promise.all(background);
    ok = true;
    return result;
  } finally {
    if (!ok) cancel.abort();
    const settled = await Promise.allSettled(background);
    if (ok && settled.every((r) => r.status === "fulfilled")) await store.close();
  }
}

/** Whether the bundle goes to a regular file as a plain tar (then written in place, see pack()). */
async function writesInPlace(opts: PackOptions): Promise<boolean> {
  if (opts.compress !== "none" || opts.out === "-") return false;
  const existing = await stat(opts.out).catch(() => undefined);
  return existing === undefined || existing.isFile();
}

/** Copy every image of every source into the store, images side by side. */
async function copyAll(store: Store, opts: PackOptions): Promise<{ report: ImageReport; image: NamedImage }[]> {
  const cpu = opts.cpu ?? new Limiter(defaultThreads());
  const specs = opts.sources.map(parseSourceSpec);
  if (specs.some((s) => s.transport === "docker")) store.prepareHashing(); // downloads are hashed there
  const registry = createRegistryClient(opts.registry ?? {}, registryHosts(specs));
  const sources: ImageSource[] = [];
  const work: { source: ImageSource; image: NamedImage; fromBundle: boolean }[] = [];
  const taken = new Map<string, string>();
  try {
    // References resolve side by side (a long -f list against a remote registry is mostly waiting).
    const opened = await mapPool(specs, opts.jobs, async (spec) => {
      const inner = await openSource(spec, { registry });
      const source = new StoreFirstSource(inner, store);
      sources.push(source);
      return { spec, source, images: await source.images(), fromBundle: inner instanceof BundleSource };
    });
    for (const { spec, source, images, fromBundle } of opened) {
      for (const image of images) {
        const prior = taken.get(image.name);
        // Merged bundles often share images: the same name for the same content is taken once.
        if (prior === image.descriptor.digest) continue;
        if (prior !== undefined) throw new Error(`${spec.text}: image name ${image.name} is given twice`);
        taken.set(image.name, image.descriptor.digest);
        work.push({ source, image, fromBundle });
      }
    }
    // One limiter keeps the layer copies of all images together at --jobs. Background downloads
    // (inBackground in pack) have their own --jobs limiter: a copy holding a slot here may wait for
    // one of them, so sharing one limiter could deadlock.
    const transfers = new Limiter(opts.jobs);
    return await mapPool(work, opts.jobs, async ({ source, image, fromBundle }) => {
      const copyOpts: CopyOptions = { ...opts, cpu, transfers };
      // A bundle is read forward once: its layers are copied as they come, not deferred.
      if (fromBundle) delete copyOpts.background;
      return { report: await copyImage(source, store, image, copyOpts), image };
    });
  } finally {
    for (const source of sources) await source.close();
  }
}

interface BundleDescription {
  named: NamedImage[];
  metadata: BundleMetadata;
  extraBlobs: Descriptor[];
  mtime: Date;
  warnings: string[];
}

/** What goes into the bundle besides the images themselves: names, metadata, kept originals. */
function describeBundle(copied: { report: ImageReport; image: NamedImage }[], opts: PackOptions): BundleDescription {
  const reports = copied.map((c) => c.report);
  const named: NamedImage[] = copied.map(({ report, image }) => ({
    name: report.name,
    descriptor: report.descriptor,
    source: image.source,
  }));
  // Original indexes replaced by filtered/converted ones are kept for the record.
  const extraBlobs: Descriptor[] = [];
  const addExtra = (d: Descriptor): void => {
    if (!extraBlobs.some((e) => e.digest === d.digest))
      extraBlobs.push({ mediaType: d.mediaType, digest: d.digest, size: d.size });
  };
  for (const r of reports) {
    if (r.sourceDescriptor.digest !== r.descriptor.digest && r.skipped.length > 0) addExtra(r.sourceDescriptor);
    r.originals.forEach(addExtra);
  }
  const created = process.env.SOURCE_DATE_EPOCH ? new Date(Number(process.env.SOURCE_DATE_EPOCH) * 1000) : new Date();
  const metadata: BundleMetadata = {
    airpackBundleVersion: BUNDLE_FORMAT_VERSION,
    tool: `airpack ${toolVersion()}`,
    created: created.toISOString(),
    layers: opts.layers,
    images: reports.map(toBundleImage),
    extraBlobs,
  };
  return {
    named,
    metadata,
    extraBlobs,
    mtime: new Date(Math.floor(created.getTime() / 1000) * 1000),
    warnings: reports.flatMap((r) => r.warnings),
  };
}

function packResult(opts: PackOptions, bundle: BundleDescription, plan: LayoutPlan, bytes: number): PackResult {
  return {
    out: opts.out,
    metadata: bundle.metadata,
    bytesWritten: bytes,
    layerBytes: plan.layers.reduce((a, l) => a + l.size, 0),
    blobs: plan.small.length + plan.layers.length,
    foreign: plan.foreign,
    warnings: bundle.warnings,
  };
}

/** Stream the bundle from the store; `arrivals` settles when background downloads are all in. */
async function writeBundle(
  store: Store,
  bundle: BundleDescription,
  opts: PackOptions,
  arrivals: Promise<unknown>,
): Promise<PackResult> {
  const sink = new ArchiveSink(opts.out, {
    format: opts.compress,
    ...(opts.compressLevel !== undefined ? { level: opts.compressLevel } : {}),
    ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
    mtime: bundle.mtime,
    dockerManifest: true,
    metadata: true,
    // The store checks what it hands out; a late mismatch still ends stdout without the end marker.
    checkBeforeStdout: false,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const written = copyToLayout(store, bundle.named, sink, {
    extraBlobs: bundle.extraBlobs,
    files: (plan) => layoutFiles(plan, bundle.metadata),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  // A download's own error comes first: the writer only sees the cancellation it causes.
  const [, plan] = await allSettledOrThrow([arrivals, written]);
  const bytes = sink.bytesWritten;
  return packResult(opts, bundle, plan, bytes);
}

/**
 * Write the bundle as a plain tar at known offsets (PositionalTar): layers still downloading are
 * written as they arrive (`startDeferred` starts a download with the layer's spot as second
 * destination), layers already in the store are copied from it, side by side up to --jobs.
 */
async function writeBundleInPlace(
  store: Store,
  bundle: BundleDescription,
  opts: PackOptions,
  coming: ReadonlySet<Digest>,
  startDeferred: (digest: Digest, tee: FileSpot) => Promise<void> | undefined,
  cancel: () => void,
): Promise<PackResult> {
  const plan = await planLayout(store, bundle.named, { extra: bundle.extraBlobs, coming });
  const tmp = tempSibling(opts.out);
  const tar = await PositionalTar.create(tmp, bundleEntries(plan, bundle.metadata), bundle.mtime, directIoWanted());
  try {
    await tar.writeFrame();
    // Biggest first: the last transfers to finish are then short ones, not one big one running alone.
    const bySize = [...plan.layers].sort((a, b) => b.size - a.size);
    await mapPool(bySize, opts.jobs, async (layer) => {
      const errorLabel = `layer ${layer.digest}`;
      const progress = bundleProgress(layer, opts.onProgress);
      const spot = tar.spot(layer.digest, errorLabel, progress);
      try {
        await (startDeferred(layer.digest, spot) ?? store.copyTo(layer, spot, errorLabel, opts.signal));
      } catch (err) {
        cancel(); // the others stop now instead of finishing for a bundle that will be thrown away
        throw err;
      }
    });
    await tar.sync();
    await tar.close();
    await rename(tmp, opts.out);
  } catch (err) {
    await tar.close();
    await rm(tmp, { force: true });
    throw err;
  }
  return packResult(opts, bundle, plan, tar.size);
}

/** Progress events for a layer written into the bundle, as the streamed writer's meter sends them. */
function bundleProgress(
  layer: Descriptor,
  onProgress: ProgressListener | undefined,
): ((bytes: number) => void) | undefined {
  if (!onProgress) return undefined;
  const counter = progressCounter(`tar:${layer.digest}`, "bundle", layer.size, onProgress);
  if (layer.size === 0) counter.done(); // no bytes will come to say so
  let left = layer.size;
  return (bytes) => {
    counter.advance(bytes);
    left -= bytes;
    if (left <= 0) counter.done();
  };
}
