import { parseMap, pushImages, parsePushTarget, type PushReport } from "../copy/push";
import { copyToLayout } from "../copy/layout";
import { defaultThreads } from "../compression/codecs";
import { parseReference } from "../oci/reference";
import { createRegistryClient, type RegistryOptions } from "../registry/setup";
import { parseSourceSpec, registryHosts } from "../transports/parse";
import type { ImageSource } from "../transports/types";
import { UsageError } from "../util/errors";
import type { ProgressListener } from "../util/progress";
import { openSource } from "./open";
import { LayoutDirSink } from "./sinks";
import { BundleSource } from "./source";
import { layoutFiles } from "./writer";
import { namingDamagedParts } from "./parts";

export interface CopyOptions {
  /** Any source pack reads (bundle:FILE, oci:DIR, docker://REF, …). */
  source: string;
  /** docker://REGISTRY[/PREFIX], REGISTRY[/PREFIX] or oci:DIR. */
  destination: string;
  /** --map FROM=TO rules and --tag for digest-only images (registry destinations). */
  maps?: string[];
  digestTag?: string;
  registry: RegistryOptions;
  restoreDigests: boolean;
  jobs: number;
  dryRun: boolean;
  force?: boolean;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
}

export type CopyResult =
  | ({ kind: "registry"; destination: string } & PushReport)
  | { kind: "layout"; destination: string; images: { name: string; digest: string }[] };

/**
 * copy SOURCE DEST: the one copy engine between any source and a registry or an OCI layout.
 * `push BUNDLE REGISTRY` is this with a bundle as the source.
 */
export async function copyImages(opts: CopyOptions): Promise<CopyResult> {
  return namingDamagedParts(() => copyFrom(opts), opts.signal);
}

async function copyFrom(opts: CopyOptions): Promise<CopyResult> {
  const spec = parseSourceSpec(opts.source);
  const toLayout = opts.destination.startsWith("oci:");
  const target = toLayout
    ? undefined
    : {
        ...parsePushTarget(opts.destination),
        maps: (opts.maps ?? []).map(parseMap),
        ...(opts.digestTag ? { digestTag: opts.digestTag } : {}),
      };
  const hosts = [...registryHosts([spec]), ...(target ? [target.registry] : [])];
  const client = createRegistryClient(opts.registry, hosts);
  const source: ImageSource =
    spec.transport === "bundle"
      ? await BundleSource.open(spec.target, {
          restoreDigests: opts.restoreDigests,
          ...(opts.signal ? { signal: opts.signal } : {}),
        })
      : await openSource(spec, { registry: client });
  try {
    const images = await source.images();
    const bundle = source instanceof BundleSource ? source : undefined;
    if (toLayout) {
      if (bundle && bundle.relied.size > 0) {
        throw new UsageError(
          `${bundle.label}: a delta bundle; write its images with 'airpack unpack DELTA --base BASE --format oci -o DIR'`,
        );
      }
      if (opts.dryRun) throw new UsageError("--dry-run is for registry destinations");
      const dir = opts.destination.slice("oci:".length);
      if (!dir) throw new UsageError(`${opts.destination}: missing directory after "oci:"`);
      await copyToLayout(source, images, new LayoutDirSink(dir, opts.force === true), {
        files: (plan) => layoutFiles(plan),
        ahead: defaultThreads() + 1,
        ...(bundle ? { beforeCommit: () => bundle.finish(), extraBlobs: bundle.extraBlobs() } : {}),
        ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      return {
        kind: "layout",
        destination: opts.destination,
        images: images.map((i) => ({ name: i.name, digest: i.descriptor.digest })),
      };
    }
    for (const image of images) parseReference(image.name); // every name must make a repository
    const report = await pushImages(source, images, client, target!, {
      jobs: opts.jobs,
      dryRun: opts.dryRun,
      ...(bundle ? { inOrder: true, ahead: defaultThreads() + 1, beforeManifests: () => bundle.finish() } : {}),
      ...(bundle && bundle.relied.size > 0 ? { relied: bundle.relied, reliedHolders: reliedHolders(bundle) } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    return { kind: "registry", destination: opts.destination, ...report };
  } finally {
    await source.close();
  }
}

/** A delta's relied-on blobs and the repositories its inventory saw holding each. */
function reliedHolders(bundle: BundleSource): Map<string, readonly string[]> {
  return new Map((bundle.contents.metadata?.delta?.relies ?? []).map((r) => [r.digest, r.holders ?? []]));
}
