import type { Readable } from "node:stream";
import type { Descriptor } from "../oci/descriptor";
import type { Digest } from "../oci/digest";
import { parsePushTarget, targetOf } from "../copy/push";
import { createRegistryClient, type RegistryOptions } from "../registry/setup";
import { RegistrySource } from "../transports/registry";
import { openLocalOrRegistrySource, parseSourceSpec } from "../transports/parse";
import type { ImageSource, NamedImage } from "../transports/types";
import { UsageError } from "../util/errors";
import type { BundleMetadata } from "./format";
import { BundleSource } from "./source";

/** Where a delta's relied-on blobs come from: a bundle, an OCI layout, or a registry. */
export interface BaseSpec {
  /** bundle:FILE, FILE (a bundle) or oci:DIR. */
  base?: string;
  /** REGISTRY[/PREFIX] the delta's images were pushed under. */
  baseRegistry?: string;
  registry?: RegistryOptions;
}

/** The images of a delta that need each relied-on blob, for messages. */
export function reliedBy(meta: BundleMetadata | undefined): Map<Digest, string[]> {
  const by = new Map<Digest, string[]>();
  const relied = new Set((meta?.delta?.relies ?? []).map((r) => r.digest));
  for (const img of meta?.images ?? []) {
    for (const l of img.manifests.flatMap((m) => m.layers)) {
      if (!relied.has(l.digest)) continue;
      const names = by.get(l.digest) ?? [];
      if (!names.includes(img.name)) names.push(img.name);
      by.set(l.digest, names);
    }
  }
  return by;
}

/** A registry's blobs, asked in the repository of an image that needs them (as push would put it there). */
class RegistryBlobs implements ImageSource {
  readonly label: string;
  private readonly repos = new Map<string, RegistrySource>();

  constructor(
    text: string,
    private readonly needers: Map<Digest, string[]>,
    opts: RegistryOptions,
  ) {
    const target = parsePushTarget(text);
    this.label = `registry ${text}`;
    const client = createRegistryClient(opts, [target.registry]);
    for (const names of needers.values()) {
      for (const name of names) {
        const repo = `${target.registry}/${targetOf(name, target).repository}`;
        if (!this.repos.has(name)) this.repos.set(name, new RegistrySource(client, repo, `docker://${repo}`));
      }
    }
  }

  private sourceFor(desc: Descriptor): RegistrySource | undefined {
    const name = this.needers.get(desc.digest)?.[0];
    return name ? this.repos.get(name) : undefined;
  }

  images(): Promise<NamedImage[]> {
    return Promise.resolve([]);
  }
  fetchSmall(desc: Descriptor, label: string): Promise<Uint8Array> {
    return Promise.reject(
      new Error(`${label}: ${desc.digest} is asked of the base registry, which serves only layers`),
    );
  }
  async hasBlob(desc: Descriptor): Promise<boolean> {
    return (await this.sourceFor(desc)?.hasBlob(desc)) ?? false;
  }
  blob(desc: Descriptor, label: string, signal?: AbortSignal): Promise<Readable> {
    const source = this.sourceFor(desc);
    if (!source) return Promise.reject(new Error(`${label}: no image of the delta needs ${desc.digest}`));
    return source.blob(desc, label, signal);
  }
  async close(): Promise<void> {}
}

/** Open the base a delta is completed from. */
export async function openBase(spec: BaseSpec, delta: BundleSource): Promise<ImageSource> {
  if (spec.base && spec.baseRegistry) throw new UsageError("give --base or --base-registry, not both");
  if (spec.baseRegistry)
    return new RegistryBlobs(spec.baseRegistry, reliedBy(delta.contents.metadata), spec.registry ?? {});
  const text = spec.base!;
  if (text.startsWith("oci:")) return openLocalOrRegistrySource(parseSourceSpec(text));
  const base = await BundleSource.open(text.replace(/^bundle:/, ""));
  // What the delta won't ask for is read past and checked, not spooled.
  base.expectOnly(delta.baseRequests());
  return base;
}

/**
 * Missing base content, said before anything is written: every relied-on blob the base lacks,
 * with the images that need it.
 */
export async function checkBase(delta: BundleSource, base: ImageSource): Promise<void> {
  const needers = reliedBy(delta.contents.metadata);
  const missing: string[] = [];
  for (const r of delta.contents.metadata?.delta?.relies ?? []) {
    const desc: Descriptor = { mediaType: "application/octet-stream", digest: r.digest, size: r.size };
    if (await base.hasBlob(desc)) continue;
    missing.push(`${r.digest} (${r.size} bytes, needed by ${(needers.get(r.digest) ?? ["?"]).join(", ")})`);
  }
  if (missing.length > 0) {
    throw new Error(
      `${delta.label}: the base ${base.label} lacks ${missing.length} blob(s) the delta relies on: ${missing.join("; ")}; give the base it was made against`,
    );
  }
}
