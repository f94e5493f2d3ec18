import { setMaxListeners } from "node:events";
import { rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join, resolve as resolvePath } from "node:path";
import { copyImage, type CopyOptions, type ImageReport } from "../copy/copy";
import type { Descriptor } from "../oci/descriptor";
import type { Digest } from "../oci/digest";
import { formatPlatform } from "../oci/platform";
import { parseSourceSpec, registryHosts } from "../transports/parse";
import { StoreFirstSource } from "../store/cached";
import { createRegistryClient, type RegistryOptions } from "../registry/setup";
import { Store } from "../store/store";
import type { CarriedRecipe, ImageSource, NamedImage } from "../transports/types";
import { MediaType } from "../oci/mediatypes";
import type { StreamFormat } from "../compression/sniff";
import {
  BUNDLE_FORMAT_VERSION,
  DELTA_FORMAT_VERSION,
  type BundleImage,
  type BundleMetadata,
  type DeltaInfo,
  type HaveSet,
} from "./format";
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
import { TrailingHash } from "../util/trailing-hash";
import type { FileSpot } from "../util/file-writer";
import { progressCounter, type ProgressListener } from "../util/progress";
import { allSettledOrThrow, Limiter, mapPool } from "../util/pool";
import { defaultLevels, defaultThreads } from "../compression/codecs";
import { fileErrorReason, UsageError } from "../util/errors";
import type { PartRecord } from "./parts";
import {
  earlierBundleFiles,
  keptParts,
  readResumeRecord,
  resumeRecordPath,
  writeResumeRecord,
  type ResumeRecord,
  writeErrorReason,
  type SplitWriter,
} from "./split";
import { namingDamagedParts, partNumber } from "./parts";

export interface PackOptions extends CopyOptions {
  sources: string[];
  out: string;
  cacheDir: string;
  compress: StreamFormat;
  compressLevel?: number;
  threads?: number;
  registry?: RegistryOptions;
  /** Cut the bundle into parts of this many bytes (split.ts); `out` names the bundle. */
  split?: number;
  /** Go on with a split pack of `out` that stopped on a full disk (its record is in the store). */
  resume?: boolean;
  /** --have: write a delta bundle that leaves out the blobs the site holds. */
  delta?: HaveSet;
  /** Without SOURCE_DATE_EPOCH: date the bundle by its newest image (config `created`), not now. */
  reproducible?: boolean;
}

export interface PackResult {
  out: string;
  metadata: BundleMetadata;
  bytesWritten: number;
  /** Hex sha256 of the bundle's bytes (of all parts together when split). */
  sha256: string;
  /** A split bundle's parts, in order, and its parts.json. */
  parts?: PartRecord[];
  partsFile?: string;
  /** Files of an earlier bundle of the same name removed (its parts, parts.json, or the unsplit file). */
  removed: string[];
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
            : l.action === "relied"
              ? "relied"
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
  // A split bundle read as a source names a damaged part rather than what it did to a blob.
  return namingDamagedParts(() => packBundle(opts), opts.signal);
}

async function packBundle(opts: PackOptions): Promise<PackResult> {
  await checkOutputParent(opts.out); // before any download, not after all of them
  sourceDateEpoch();
  const split = await planSplit(opts);
  if (split) opts = { ...opts, split: split.partSize, ...split.compression };
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
    const bundle = describeBundle(copied, opts, split?.created ?? (await bundleTime(store, copied, opts)));
    const result = inPlace
      ? await writeBundleInPlace(store, bundle, { ...opts, signal }, new Set(deferred.keys()), startDeferred, () =>
          cancel.abort(),
        )
      : await writeBundle(store, bundle, { ...opts, signal }, Promise.all(background), split);
    for (const [digest, task] of deferred) start(digest, task); // none expected: every copied layer is in the plan
    await Promise.all(background);
    if (split) await forgetResume(split.recordPath);
    else if (opts.out !== "-") result.removed = await removeEarlierParts(opts.out);
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
  // A split bundle is streamed: its parts are hashed in order and each is complete before the next.
  if (opts.compress !== "none" || opts.out === "-" || opts.split !== undefined) return false;
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
  const work: { source: ImageSource; image: NamedImage; fromBundle: boolean; delta: boolean }[] = [];
  const taken = new Map<string, string>();
  try {
    // References resolve side by side (a long -f list against a remote registry is mostly waiting).
    const opened = await mapPool(specs, opts.jobs, async (spec) => {
      const inner = await openSource(spec, { registry });
      sources.push(inner);
      const delta = inner instanceof BundleSource && inner.relied.size > 0;
      return { spec, inner, images: await inner.images(), fromBundle: inner instanceof BundleSource, delta };
    });
    for (const { spec, inner, images, fromBundle, delta } of opened) {
      // A delta's relied-on blobs come from the store, filled by the other sources first (see below).
      const source = delta ? inner : new StoreFirstSource(inner, store);
      for (const image of images) {
        const prior = taken.get(image.name);
        // Merged bundles often share images: the same name for the same content is taken once.
        if (prior === image.descriptor.digest) continue;
        if (prior !== undefined) throw new Error(`${spec.text}: image name ${image.name} is given twice`);
        taken.set(image.name, image.descriptor.digest);
        work.push({ source, image, fromBundle, delta });
      }
    }
    // One limiter keeps the layer copies of all images together at --jobs. Background downloads
    // (inBackground in pack) have their own --jobs limiter: a copy holding a slot here may wait for
    // one of them, so sharing one limiter could deadlock.
    const transfers = new Limiter(opts.jobs);
    const copy = (batch: typeof work): Promise<{ report: ImageReport; image: NamedImage }[]> =>
      mapPool(batch, opts.jobs, async ({ source, image, fromBundle }) => {
        const copyOpts: CopyOptions = { ...opts, cpu, transfers, ...(opts.delta ? { have: opts.delta.blobs } : {}) };
        // A bundle is read forward once: its layers are copied as they come, not deferred.
        if (fromBundle) delete copyOpts.background;
        return { report: await copyImage(source, store, image, copyOpts), image };
      });
    const complete = await copy(work.filter((w) => !w.delta));
    const deltas = work.filter((w) => w.delta);
    for (const inner of new Set(deltas.map((w) => w.source as BundleSource))) {
      await completeFromStore(inner, store);
      for (const w of deltas) if (w.source === inner) w.source = new StoreFirstSource(inner, store);
    }
    return [...complete, ...(await copy(deltas))];
  } finally {
    for (const source of sources) await source.close();
  }
}

/**
 * pack bundle:base bundle:delta: the delta's relied-on blobs must be in the store by now, as the
 * other sources put them there: as themselves, or (a digest-preserving base) as the uncompressed
 * blob and the recipe that rebuilds them. Else the list of those missing, before any is read.
 */
async function completeFromStore(delta: BundleSource, store: Store): Promise<void> {
  const diffIds = new Map<string, Digest>();
  for (const l of (delta.contents.metadata?.images ?? []).flatMap((i) => i.manifests.flatMap((m) => m.layers))) {
    if (l.diffId) diffIds.set(l.digest, l.diffId);
  }
  const rebuilt = new Map<string, CarriedRecipe>();
  const missing: string[] = [];
  for (const r of delta.contents.metadata?.delta?.relies ?? []) {
    if (await store.hasBlobNow({ digest: r.digest, size: r.size })) continue;
    const rec = await store.records.recipe(r.digest);
    const diffId = diffIds.get(r.digest);
    if (rec?.recipe && diffId && (await store.hasBlobNow({ digest: diffId, size: rec.size }))) {
      const uncompressed = { mediaType: MediaType.ociLayer, digest: diffId, size: rec.size };
      rebuilt.set(r.digest, { recipe: rec.recipe, uncompressed });
      continue;
    }
    missing.push(r.digest);
  }
  if (missing.length > 0) {
    throw new Error(
      `${delta.label}: a delta; none of the other sources holds ${missing.length} blob(s) it relies on: ${missing.join(", ")}; name its base bundle too (pack bundle:BASE bundle:DELTA …)`,
    );
  }
  const own = delta.recipeFor?.bind(delta);
  delta.recipeFor = (layer) => own?.(layer) ?? rebuilt.get(layer.digest);
}

/** SOURCE_DATE_EPOCH as a time, checked (before any download). */
function sourceDateEpoch(): string | undefined {
  const epoch = process.env.SOURCE_DATE_EPOCH;
  if (epoch === undefined || epoch === "") return undefined;
  if (!/^\d{1,12}$/.test(epoch)) {
    throw new UsageError(
      `SOURCE_DATE_EPOCH=${epoch}: expected whole seconds since 1970 (e.g. $(git log -1 --format=%ct))`,
    );
  }
  return new Date(Number(epoch) * 1000).toISOString();
}

/**
 * The bundle's creation time when it is to be reproducible: SOURCE_DATE_EPOCH (seconds), else with
 * --reproducible the newest image config's `created` (the Unix epoch when none has one). Undefined
 * means now.
 */
async function bundleTime(
  store: Store,
  copied: { report: ImageReport }[],
  opts: PackOptions,
): Promise<string | undefined> {
  const epoch = sourceDateEpoch();
  if (epoch !== undefined) return epoch;
  if (!opts.reproducible) return undefined;
  let newest = 0;
  for (const m of copied.flatMap((c) => c.report.manifests)) {
    if (m.artifact) continue;
    const bytes = await store.fetchSmall(m.config, `config ${m.config.digest}`);
    const created = (JSON.parse(Buffer.from(bytes).toString("utf8")) as { created?: unknown }).created;
    const time = typeof created === "string" ? Date.parse(created) : NaN;
    // Whole seconds, as tar headers hold them; a time before 1970 (Go's zero time) counts as 1970.
    if (Number.isFinite(time)) newest = Math.max(newest, Math.floor(time / 1000) * 1000);
  }
  return new Date(newest).toISOString();
}

interface BundleDescription {
  named: NamedImage[];
  metadata: BundleMetadata;
  extraBlobs: Descriptor[];
  mtime: Date;
  warnings: string[];
}

/** What goes into the bundle besides the images themselves: names, metadata, kept originals. */
function describeBundle(
  copied: { report: ImageReport; image: NamedImage }[],
  opts: PackOptions,
  createdAt?: string,
): BundleDescription {
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
  const created = new Date(createdAt ?? Date.now());
  const delta = opts.delta ? deltaInfo(reports, opts.delta) : undefined;
  const metadata: BundleMetadata = {
    airpackBundleVersion: delta ? DELTA_FORMAT_VERSION : BUNDLE_FORMAT_VERSION,
    tool: `airpack ${toolVersion()}`,
    created: created.toISOString(),
    layers: opts.layers,
    images: reports.map(toBundleImage),
    extraBlobs,
    ...(delta ? { delta } : {}),
  };
  return {
    named,
    metadata,
    extraBlobs,
    mtime: new Date(Math.floor(created.getTime() / 1000) * 1000),
    warnings: reports.flatMap((r) => r.warnings),
  };
}

/** The blobs a delta's images need and leave out (layers the site has), each once. */
function deltaInfo(reports: ImageReport[], have: HaveSet): DeltaInfo {
  const relies = new Map<Digest, number>();
  for (const l of reports.flatMap((r) => r.manifests.flatMap((m) => m.layers))) {
    if (l.action === "relied") relies.set(l.stored.digest, l.stored.size);
  }
  const holdersOf = (digest: Digest): { holders?: string[] } => {
    const holders = have.holders?.get(digest);
    return holders && holders.length > 0 ? { holders } : {};
  };
  return { base: have.base, relies: [...relies].map(([digest, size]) => ({ digest, size, ...holdersOf(digest) })) };
}

/** A delta's layers that are not in it. */
function absentLayers(metadata: BundleMetadata | undefined): Set<string> {
  return new Set((metadata?.delta?.relies ?? []).map((r) => r.digest));
}

function packResult(
  opts: PackOptions,
  bundle: BundleDescription,
  plan: LayoutPlan,
  bytes: number,
  sha256: string,
): PackResult {
  return {
    out: opts.out,
    metadata: bundle.metadata,
    bytesWritten: bytes,
    sha256,
    removed: [],
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
  split?: SplitPlan,
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
    ...(split ? { split: { partSize: split.partSize, done: split.done } } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const written = copyToLayout(store, bundle.named, sink, {
    extraBlobs: bundle.extraBlobs,
    absent: absentLayers(bundle.metadata),
    files: (plan) => layoutFiles(plan, bundle.metadata),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  let plan: LayoutPlan;
  try {
    // A download's own error comes first: the writer only sees the cancellation it causes.
    [, plan] = await allSettledOrThrow([arrivals, written]);
  } catch (err) {
    const writer = sink.splitWriter;
    // The writer's own words first: where the disk filled (and how to go on), which part failed.
    if (split && writer?.stoppedAt && writer.parts.length > 0) throw await recordStop(writer, split, opts, bundle);
    if (writer?.failure) throw writer.failure;
    throw err;
  }
  const out = sink.result!;
  const result = packResult(opts, bundle, plan, out.bytes, out.sha256);
  return {
    ...result,
    ...(out.parts ? { parts: out.parts } : {}),
    ...(out.partsFile ? { partsFile: out.partsFile } : {}),
    removed: out.removed ?? [],
  };
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
  const plan = await planLayout(store, bundle.named, {
    extra: bundle.extraBlobs,
    coming,
    absent: absentLayers(bundle.metadata),
  });
  const tmp = tempSibling(opts.out);
  let sha256: string;
  const tar = await PositionalTar.create(tmp, bundleEntries(plan, bundle.metadata), bundle.mtime, directIoWanted());
  // The bundle's sha256 is read back behind the writers: each stretch once all before it is written.
  const trailing = new TrailingHash(tmp, tar.size);
  try {
    await tar.writeFrame();
    for (const [start, end] of tar.frameRanges()) trailing.written(start, end);
    // Biggest first: the last transfers to finish are then short ones, not one big one running alone.
    const bySize = [...plan.layers].sort((a, b) => b.size - a.size);
    await mapPool(bySize, opts.jobs, async (layer) => {
      const errorLabel = `layer ${layer.digest}`;
      const progress = bundleProgress(layer, opts.onProgress);
      const spot = tar.spot(layer.digest, errorLabel, progress);
      try {
        await (startDeferred(layer.digest, spot) ?? store.copyTo(layer, spot, errorLabel, opts.signal));
        trailing.written(...tar.layerRange(layer.digest));
      } catch (err) {
        cancel(); // the others stop now instead of finishing for a bundle that will be thrown away
        throw err;
      }
    });
    await tar.sync();
    sha256 = await trailing.result();
    await tar.close();
    await rename(tmp, opts.out);
  } catch (err) {
    await trailing.stop();
    await tar.close();
    await rm(tmp, { force: true });
    throw err;
  }
  return packResult(opts, bundle, plan, tar.size, sha256);
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

/** A split pack: its part size, and when resumed, the first run's parts, time and compression. */
interface SplitPlan {
  partSize: number;
  /** The resume record of this output in the store. */
  recordPath: string;
  done?: PartRecord[];
  created?: string;
  compression: { compressLevel?: number; threads?: number };
}

/** A stopped pack of this output is not to be resumed (the store's own errors are said by Store.open). */
async function forgetResume(recordPath: string): Promise<void> {
  await rm(recordPath, { force: true }).catch(() => undefined);
}

/** --split and --resume: the plan, checked against the stopped run's record when resuming. */
async function planSplit(opts: PackOptions): Promise<SplitPlan | undefined> {
  if (opts.split === undefined && !opts.resume) {
    if (opts.out !== "-") await forgetResume(resumeRecordPath(opts.cacheDir, opts.out));
    return undefined;
  }
  if (opts.out === "-") throw new UsageError("--split writes files; name the bundle with -o FILE");
  const existing = await stat(opts.out).catch(() => undefined);
  if (existing?.isDirectory()) {
    throw new UsageError(`-o ${opts.out} is a directory; name the bundle in it: -o ${join(opts.out, "site.tar.xz")}`);
  }
  const recordPath = resumeRecordPath(opts.cacheDir, opts.out);
  // The compression as used, so that a resumed run makes the same bytes (xz -T1 differs from -T2).
  const level = opts.compress === "none" ? undefined : (opts.compressLevel ?? defaultLevels[opts.compress]);
  const threads = opts.compress === "none" ? undefined : (opts.threads ?? defaultThreads());
  if (!opts.resume) {
    await forgetResume(recordPath);
    return {
      partSize: opts.split!,
      recordPath,
      compression: { ...(level !== undefined ? { compressLevel: level } : {}), ...(threads ? { threads } : {}) },
    };
  }
  const rec = await readResumeRecord(recordPath, opts.out);
  if (!rec) {
    throw new UsageError(
      `--resume: no stopped split pack of ${opts.out} is recorded in ${opts.cacheDir} (--resume goes on after a full disk, with the same -o and --cache)`,
    );
  }
  const differs = (what: string, first: unknown, now: unknown): UsageError =>
    new UsageError(
      `--resume: the first run had ${what} ${String(first)}, this one ${String(now)}; run it the same way`,
    );
  if (rec.sources.join("\n") !== opts.sources.join("\n"))
    throw differs("the sources", rec.sources.join(" "), opts.sources.join(" "));
  if (opts.split !== undefined && opts.split !== rec.partSize) throw differs("--split", rec.partSize, opts.split);
  if (rec.compress !== opts.compress) throw differs("--compress", rec.compress, opts.compress);
  if (opts.compressLevel !== undefined && opts.compressLevel !== rec.level)
    throw differs("--level", rec.level, opts.compressLevel);
  if (opts.threads !== undefined && opts.threads !== rec.threads) throw differs("--threads", rec.threads, opts.threads);
  return {
    partSize: rec.partSize,
    recordPath,
    done: rec.parts,
    created: rec.created,
    compression: {
      ...(rec.level !== undefined ? { compressLevel: rec.level } : {}),
      ...(rec.threads !== undefined ? { threads: rec.threads } : {}),
    },
  };
}

/**
 * The disk filled while a split bundle was written: the complete parts stay, the store records how
 * to go on, and the error says what to do. Without the record the parts would be of no use: removed.
 */
async function recordStop(
  writer: SplitWriter,
  split: SplitPlan,
  opts: PackOptions,
  bundle: BundleDescription,
): Promise<Error> {
  const stop = writer.stoppedAt!;
  const reason = writeErrorReason(stop.cause);

  const rec: ResumeRecord = {
    airpackResume: 1,
    out: resolvePath(opts.out),
    sources: opts.sources,
    created: bundle.metadata.created,
    compress: opts.compress,
    ...(opts.compressLevel !== undefined ? { level: opts.compressLevel } : {}),
    ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
    partSize: split.partSize,
    parts: writer.parts,
  };
  try {
    await writeResumeRecord(split.recordPath, rec);
  } catch (err) {
    await writer.removeKept();
    return new Error(
      `${stop.path}: cannot write it (${reason}), nor record in ${opts.cacheDir} how to resume (${fileErrorReason(err)}); the parts were removed: make room and pack again`,
      { cause: stop.cause },
    );
  }
  const n = writer.parts.length;
  const allParts = stop.path === writer.partsFile; // the parts were done, their list was not
  const next = allParts
    ? `all ${n} parts are complete, but not ${basename(stop.path)}: make room for it`
    : `${keptParts(n)} complete and kept: move them to another disk (or make room)`;
  const goOn = allParts ? "to write it" : `to write part ${partNumber(stop.index)} on`;
  return new Error(
    `${stop.path}: cannot write it (${reason}); ${next}, then run the same command with --resume ${goOn}`,
    {
      cause: stop.cause,
    },
  );
}

/** After an unsplit bundle is in place: parts of an earlier split bundle of the same name go. */
async function removeEarlierParts(out: string): Promise<string[]> {
  if (!(await stat(out).catch(() => undefined))?.isFile()) return [];
  const removed: string[] = [];
  for (const name of await earlierBundleFiles(dirname(out), basename(out))) {
    if (name === basename(out)) continue;
    await rm(join(dirname(out), name), { force: true });
    removed.push(name);
  }
  return removed;
}
