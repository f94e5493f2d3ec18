import { MAX_INDEX_DEPTH } from "../oci/limits";
import type { Readable } from "node:stream";
import { parseIndex, parseManifest, type Descriptor } from "../oci/descriptor";
import { shortDigest } from "../oci/digest";
import { isIndex, isManifest, isNonDistributable } from "../oci/mediatypes";
import { parseReference } from "../oci/reference";
import type { RegistryClient } from "../registry/client";
import { planLayout } from "../transports/plan";
import { RegistrySink, UploadLostError } from "../transports/registry-sink";
import type { ImageSource, NamedImage } from "../transports/types";
import { mapPool } from "../util/pool";
import { UsageError } from "../util/errors";
import { metered, type ProgressListener } from "../util/progress";

/** Where `push` puts images: a registry and a path below it. */
export interface PushTarget {
  registry: string;
  prefix: string;
  /** `--map FROM=TO` rules, first match wins; `*` in FROM is the rest of the name, put where TO has `*`. */
  maps?: { from: string; to: string }[];
  /** `--tag`: the tag for images named by digest only (they are pushed untagged otherwise). */
  digestTag?: string;
}

/** `--map 'docker.io/library/*=mirror/*'`: FROM is a full name without tag, TO a path below the registry. */
export function parseMap(text: string): { from: string; to: string } {
  const eq = text.indexOf("=");
  const from = text.slice(0, eq).trim();
  const to = text.slice(eq + 1).trim();
  const stars = (x: string): number => x.split("*").length - 1;
  if (eq <= 0 || !to || stars(from) > 1 || stars(to) > 1 || (stars(to) === 1 && stars(from) === 0)) {
    throw new UsageError(`--map ${text}: expected FROM=TO, e.g. 'docker.io/library/*=mirror/*' (one * at most)`);
  }
  return { from, to };
}

function applyMaps(full: string, maps: { from: string; to: string }[]): string | undefined {
  for (const { from, to } of maps) {
    const star = from.indexOf("*");
    if (star < 0) {
      if (full === from) return to;
      continue;
    }
    const head = from.slice(0, star);
    const tail = from.slice(star + 1);
    if (full.length >= head.length + tail.length && full.startsWith(head) && full.endsWith(tail)) {
      return to.replace("*", full.slice(head.length, full.length - tail.length));
    }
  }
  return undefined;
}

/** "REGISTRY[/PREFIX]" or "docker://REGISTRY[/PREFIX]". */
export function parsePushTarget(text: string): PushTarget {
  const t = text.replace(/^docker:\/\//, "").replace(/\/+$/, "");
  const slash = t.indexOf("/");
  const registry = slash < 0 ? t : t.slice(0, slash);
  const prefix = slash < 0 ? "" : t.slice(slash + 1);
  if (!/^[a-zA-Z0-9.-]+(:\d+)?$|^\[[0-9a-fA-F:]+\](:\d+)?$/.test(registry)) {
    throw new UsageError(`${text}: not a registry (expected HOST[:PORT][/PREFIX], e.g. registry.local:5000/mirror)`);
  }
  if (prefix && !prefix.split("/").every((c) => /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/.test(c))) {
    throw new UsageError(`${text}: the path below the registry must be lower-case letters, digits and . _ - /`);
  }
  return { registry, prefix };
}

/** An image's repository and tag at the target: its path below its source host, under the prefix. */
export function targetOf(name: string, target: PushTarget): { repository: string; tag?: string } {
  const ref = parseReference(name);
  const mapped = applyMaps(`${ref.registry}/${ref.repository}`, target.maps ?? []);
  const repository = mapped ?? (target.prefix ? `${target.prefix}/${ref.repository}` : ref.repository);
  if (!/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(repository)) {
    throw new UsageError(`${name}: --map makes "${repository}", which is not a repository name`);
  }
  const tag = ref.tag ?? (ref.digest ? target.digestTag : undefined);
  return { repository, ...(tag ? { tag } : {}) };
}

export interface PushOptions {
  jobs: number;
  /** Forward-only sources (bundles): blobs are asked in layout order, `ahead` at a time. */
  inOrder?: boolean;
  ahead?: number;
  dryRun?: boolean;
  /**
   * A delta's relied-on blobs: not in the source, so each must be in the registry already (or in
   * another repository of it, to mount from); else the push fails before it sends anything.
   */
  relied?: ReadonlySet<string>;
  /** Repositories (HOST/REPO) said to hold a relied-on blob: a repository lacking it mounts it from one. */
  reliedHolders?: ReadonlyMap<string, readonly string[]>;
  /** Called once every blob is up and before any manifest: a bundle checks its last bytes here. */
  beforeManifests?: () => Promise<void>;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
}

export interface PushedImage {
  name: string;
  target: string;
  digest: string;
  tag?: string;
}

export interface PushReport {
  images: PushedImage[];
  blobs: { uploaded: number; uploadedBytes: number; mounted: number; present: number; total: number };
  manifests: { put: number; present: number };
  /** With --dry-run: what would be sent. */
  plan: { kind: "blob" | "manifest" | "tag"; target: string; digest: string; size: number; present: boolean }[];
}

interface ImageNodes {
  image: NamedImage;
  sink: RegistrySink;
  tag?: string;
  /** Manifests and indexes, children before parents. */
  documents: { desc: Descriptor; bytes: Uint8Array }[];
  configs: { desc: Descriptor; bytes: Uint8Array }[];
  layers: Set<string>;
}

/**
 * Push images from any source to a registry: blobs first (HEAD skips what is there, a blob pushed
 * to another repository in this run is mounted), then manifests by digest, children first, then
 * tags. A tag is only written once everything it reaches is in the registry, so a push that dies
 * halfway leaves no tag on an incomplete image, and running it again sends only what is missing.
 */
export async function pushImages(
  source: ImageSource,
  images: NamedImage[],
  client: RegistryClient,
  target: PushTarget,
  opts: PushOptions,
): Promise<PushReport> {
  const sinks = new Map<string, RegistrySink>();
  const sinkFor = (repository: string): RegistrySink => {
    let s = sinks.get(repository);
    if (!s) sinks.set(repository, (s = new RegistrySink(client, target.registry, repository)));
    return s;
  };
  const nodes: ImageNodes[] = [];
  for (const image of images) {
    const { repository, tag } = targetOf(image.name, target);
    nodes.push(await walkImage(source, image, sinkFor(repository), tag));
  }
  const report: PushReport = {
    images: [],
    blobs: { uploaded: 0, uploadedBytes: 0, mounted: 0, present: 0, total: 0 },
    manifests: { put: 0, present: 0 },
    plan: [],
  };
  // Layers in the order the source holds them (a bundle is read forward once).
  const plan = await planLayout(source, images);
  const layerDescs = plan.layers;
  report.blobs.total = layerDescs.length;

  // Which repositories lack each layer (HEAD, side by side); a holder is remembered for mounts.
  const where = new Map<string, RegistrySink>();
  const missingOf = await mapPool(layerDescs, opts.jobs, async (layer) => {
    const wanting = [...new Set(nodes.filter((n) => n.layers.has(layer.digest)).map((n) => n.sink))];
    const missing: RegistrySink[] = [];
    for (const sink of wanting) {
      const has = await sink.hasBlob(layer);
      if (has) {
        where.set(layer.digest, sink);
        report.blobs.present++;
      } else missing.push(sink);
      report.plan.push({ kind: "blob", target: sink.label, digest: layer.digest, size: layer.size, present: has });
    }
    return missing;
  });
  const toSend = layerDescs.filter((layer, i) => {
    const send = !opts.dryRun && missingOf[i]!.length > 0;
    // Not sent: a forward-only source reads past it (and checks it) instead of keeping a copy.
    if (!send) source.skip?.(layer);
    return send;
  });
  const missingFor = new Map(layerDescs.map((l, i) => [l.digest, missingOf[i]!]));
  if (opts.relied) {
    await findHolders(layerDescs, missingFor, where, opts, target, sinkFor);
    checkRelied(layerDescs, missingFor, where, nodes, opts.relied, target);
  }

  const sendLayer = async (layer: Descriptor, data: () => Promise<Readable>): Promise<void> => {
    let from = where.get(layer.digest);
    for (const sink of missingFor.get(layer.digest) ?? []) {
      if (from && (await sink.mount(layer, from.repository))) continue;
      const label = `layer ${shortDigest(layer.digest)}… of ${sink.label}`;
      for (let attempt = 1; ; attempt++) {
        const stream = metered(await data(), `push:${layer.digest}`, sink.label, layer.size, opts.onProgress);
        try {
          await sink.putBlob(layer, stream, label, opts.signal);
          break;
        } catch (err) {
          stream.destroy();
          // A lost session means sending the blob again from its start: a source read once can't.
          if (!(err instanceof UploadLostError) || attempt >= 3) throw err;
          if (opts.inOrder)
            throw new UploadLostError(`${err.message}; run the push again (it sends only what is missing)`);
        }
      }
      from = sink;
      where.set(layer.digest, sink);
    }
  };

  if (opts.inOrder) {
    // In the source's order, streams opened `ahead` so recipe layers rebuild side by side.
    const opened: Promise<Readable>[] = [];
    const ahead = Math.max(1, opts.ahead ?? 1);
    const open = (i: number): Promise<Readable> => {
      const layer = toSend[i]!;
      if (!opened[i]) {
        opened[i] = source.blob(layer, `layer ${layer.digest}`, opts.signal);
        opened[i].catch(() => undefined);
      }
      return opened[i];
    };
    for (const [i, layer] of toSend.entries()) {
      for (let j = i + 1; j < Math.min(toSend.length, i + ahead); j++) open(j);
      let reads = 0;
      await sendLayer(layer, () => {
        if (reads++ > 0) {
          throw new Error(
            `${source.label}: layer ${layer.digest} can be read once, and ${target.registry} refused to mount it`,
          );
        }
        return open(i);
      });
    }
  } else {
    await mapPool(toSend, opts.jobs, (layer) =>
      sendLayer(layer, () => source.blob(layer, `layer ${layer.digest}`, opts.signal)),
    );
  }

  // Configs: small, one PUT each.
  for (const n of nodes) {
    for (const c of n.configs) {
      const has = await n.sink.hasBlob(c.desc);
      report.plan.push({ kind: "blob", target: n.sink.label, digest: c.desc.digest, size: c.desc.size, present: has });
      if (has || opts.dryRun) continue;
      await n.sink.putSmall(c.desc, c.bytes, `${n.image.name} config`);
    }
  }
  if (!opts.dryRun) await opts.beforeManifests?.();

  for (const n of nodes) {
    for (const d of n.documents) {
      const has = await n.sink.hasManifest(d.desc);
      report.plan.push({
        kind: "manifest",
        target: n.sink.label,
        digest: d.desc.digest,
        size: d.desc.size,
        present: has,
      });
      if (has) {
        report.manifests.present++;
        n.sink.known(d.desc, d.bytes);
        continue;
      }
      if (opts.dryRun) continue;
      await n.sink.putSmall(d.desc, d.bytes, n.image.name);
      report.manifests.put++;
    }
  }
  for (const n of nodes) {
    if (n.tag) {
      report.plan.push({
        kind: "tag",
        target: `${n.sink.label}:${n.tag}`,
        digest: n.image.descriptor.digest,
        size: n.image.descriptor.size,
        present: false,
      });
      if (!opts.dryRun) await n.sink.tag({ ...n.image, tag: n.tag });
    }
    report.images.push({
      name: n.image.name,
      target: n.tag ? `${n.sink.label}:${n.tag}` : `${n.sink.label}@${n.image.descriptor.digest}`,
      digest: n.image.descriptor.digest,
      ...(n.tag ? { tag: n.tag } : {}),
    });
  }
  for (const sink of sinks.values()) {
    report.blobs.uploaded += sink.counts.uploaded;
    report.blobs.uploadedBytes += sink.counts.uploadedBytes;
    report.blobs.mounted += sink.counts.mounted;
  }
  return report;
}

/** For a relied-on blob the image's repositories lack: another repository of the target that has it (HEAD), to mount from. */
async function findHolders(
  layers: Descriptor[],
  missingFor: Map<string, RegistrySink[]>,
  where: Map<string, RegistrySink>,
  opts: PushOptions,
  target: PushTarget,
  sinkFor: (repository: string) => RegistrySink,
): Promise<void> {
  for (const layer of layers) {
    if (!opts.relied?.has(layer.digest) || where.has(layer.digest) || !missingFor.get(layer.digest)?.length) continue;
    for (const holder of opts.reliedHolders?.get(layer.digest) ?? []) {
      const slash = holder.indexOf("/");
      if (slash < 0 || holder.slice(0, slash) !== target.registry) continue;
      const sink = sinkFor(holder.slice(slash + 1));
      if (await sink.hasBlob(layer)) {
        where.set(layer.digest, sink);
        break;
      }
    }
  }
}

/** Every relied-on blob a repository lacks, with no other repository of the registry to mount it from: the list. */
function checkRelied(
  layers: Descriptor[],
  missingFor: Map<string, RegistrySink[]>,
  where: Map<string, RegistrySink>,
  nodes: ImageNodes[],
  relied: ReadonlySet<string>,
  target: PushTarget,
): void {
  const lacking: string[] = [];
  for (const layer of layers) {
    if (!relied.has(layer.digest) || where.has(layer.digest)) continue;
    const sinks = missingFor.get(layer.digest) ?? [];
    if (sinks.length === 0) continue;
    const images = nodes.filter((n) => n.layers.has(layer.digest)).map((n) => n.image.name);
    lacking.push(
      `${layer.digest} (${layer.size} bytes, for ${images.join(", ")} in ${sinks.map((s) => s.label).join(", ")})`,
    );
  }
  if (lacking.length > 0) {
    throw new Error(
      `${target.registry}: lacks ${lacking.length} blob(s) the delta relies on, nothing was pushed: ${lacking.join("; ")}; push the base first (or a full bundle)`,
    );
  }
}

/** Every document, config and layer an image reaches, children first. */
async function walkImage(
  source: ImageSource,
  image: NamedImage,
  sink: RegistrySink,
  tag: string | undefined,
): Promise<ImageNodes> {
  const out: ImageNodes = { image, sink, documents: [], configs: [], layers: new Set(), ...(tag ? { tag } : {}) };
  const seen = new Set<string>();
  // Each document once (a diamond of indexes is walked linearly), and no deeper than the bundle
  // reader allows (children are pushed before the index that lists them, so this recurses).
  const walk = async (desc: Descriptor, label: string, depth = 1): Promise<void> => {
    if (seen.has(desc.digest)) return;
    seen.add(desc.digest);
    if (depth > MAX_INDEX_DEPTH) {
      throw new Error(
        `${image.name}: indexes nest more than ${MAX_INDEX_DEPTH} levels deep (the limit), at ${desc.digest}`,
      );
    }
    const bytes = await source.fetchSmall(desc, label);
    if (isIndex(desc.mediaType)) {
      for (const child of parseIndex(bytes, label).manifests) await walk(child, `${label} ${child.digest}`, depth + 1);
    } else if (isManifest(desc.mediaType)) {
      const m = parseManifest(bytes, label);
      out.configs.push({ desc: m.config, bytes: await source.fetchSmall(m.config, `${label} config`) });
      for (const layer of m.layers) {
        if (isNonDistributable(layer.mediaType) && !(await source.hasBlob(layer))) continue;
        out.layers.add(layer.digest);
      }
    }
    const plain: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
    out.documents.push({ desc: plain, bytes });
  };
  await walk(image.descriptor, image.name);
  return out;
}
