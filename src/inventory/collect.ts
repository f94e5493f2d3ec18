import { createReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import { createHash } from "node:crypto";
import { pipeline } from "node:stream/promises";
import { isRunnableImage, parseIndex, parseManifest, type Descriptor } from "../oci/descriptor";
import type { Digest } from "../oci/digest";
import { isIndex, isManifest, isNonDistributable } from "../oci/mediatypes";
import { MAX_INDEX_DEPTH } from "../oci/limits";
import { listRepositories, listTags } from "../registry/listing";
import type { RegistryClient } from "../registry/client";
import { createRegistryClient, type RegistryOptions } from "../registry/setup";
import { RegistrySource } from "../transports/registry";
import { openLocalOrRegistrySource, parseSourceSpec } from "../transports/parse";
import type { ImageSource, NamedImage } from "../transports/types";
import { Store } from "../store/store";
import { BundleSource } from "../bundle/source";
import type { DeltaBase, HaveSet } from "../bundle/format";
import { mapPool } from "../util/pool";
import { parsePushTarget } from "../copy/push";
import { parseReference } from "../oci/reference";
import { UsageError } from "../util/errors";
import {
  INVENTORY_VERSION,
  readInventoryFile,
  type Inventory,
  type InventoryManifest,
  type InventorySource,
} from "./format";

export interface CollectOptions {
  registry?: RegistryOptions;
  /** The store `store` names. */
  cacheDir: string;
  /** Requests (tags, manifests) in flight at once. */
  jobs: number;
}

/** What a SOURCE of `airpack inventory` names. */
export type InventorySpec =
  | { kind: "registry"; registry: string; prefix: string; text: string }
  | { kind: "bundle" | "oci" | "store"; path: string; text: string };

/**
 * bundle:FILE, oci:DIR, store or store:DIR, docker://REGISTRY[/PREFIX]; a bare argument is a bundle
 * when such a file exists, else REGISTRY[/PREFIX].
 */
export async function parseInventorySpec(text: string, cacheDir: string): Promise<InventorySpec> {
  if (text === "store") return { kind: "store", path: cacheDir, text };
  for (const kind of ["bundle", "oci", "store"] as const) {
    if (text.startsWith(`${kind}:`)) {
      const path = text.slice(kind.length + 1);
      if (!path) throw new UsageError(`${text}: missing path after "${kind}:"`);
      return { kind, path, text };
    }
  }
  if (!text.startsWith("docker://") && (await stat(text).catch(() => undefined))?.isFile()) {
    return { kind: "bundle", path: text, text };
  }
  let target;
  try {
    target = parsePushTarget(text);
  } catch {
    throw new UsageError(`${text}: not a registry (HOST[:PORT][/PREFIX]), bundle:FILE, oci:DIR or store`);
  }
  return { kind: "registry", registry: target.registry, prefix: target.prefix, text };
}

/** Blobs and manifests seen so far, each once. */
class Collector {
  readonly blobs = new Map<Digest, number>();
  readonly manifests = new Map<Digest, InventoryManifest>();

  blob(desc: Pick<Descriptor, "digest" | "size">): void {
    this.blobs.set(desc.digest, desc.size);
  }

  manifest(desc: Descriptor, name: string, refs: Digest[]): InventoryManifest {
    const prior = this.manifests.get(desc.digest);
    if (prior) {
      if (!prior.names.includes(name)) prior.names.push(name);
      return prior;
    }
    const m = { digest: desc.digest, size: desc.size, mediaType: desc.mediaType, names: [name], refs };
    this.manifests.set(desc.digest, m);
    return m;
  }

  inventory(sources: InventorySource[]): Inventory {
    const byDigest = <T extends { digest: string }>(a: T, b: T): number => (a.digest < b.digest ? -1 : 1);
    return {
      airpackInventory: INVENTORY_VERSION,
      created: new Date().toISOString(),
      sources,
      blobs: [...this.blobs].map(([digest, size]) => ({ digest, size })).sort(byDigest),
      manifests: [...this.manifests.values()].map((m) => ({ ...m, names: m.names.sort() })).sort(byDigest),
    };
  }
}

/**
 * Every document below an image into the collector, each once. `checkBlobs`: a layer counts only
 * if the source has it (a layout or bundle may lack foreign or relied-on layers); a registry has
 * every blob its manifests reference (it refuses manifests whose blobs are missing).
 */
async function walkImage(source: ImageSource, image: NamedImage, into: Collector, checkBlobs: boolean): Promise<void> {
  const todo: { desc: Descriptor; depth: number }[] = [{ desc: image.descriptor, depth: 1 }];
  for (let v = todo.pop(); v; v = todo.pop()) {
    const { desc, depth } = v;
    if (into.manifests.get(desc.digest)?.names.includes(image.name)) continue;
    if (depth > MAX_INDEX_DEPTH) throw new Error(`${image.name}: indexes nest more than ${MAX_INDEX_DEPTH} deep`);
    const label = `${image.name} ${desc.digest}`;
    if (!isIndex(desc.mediaType) && !isManifest(desc.mediaType)) {
      into.blob(desc); // an artifact's own document type
      continue;
    }
    const bytes = await source.fetchSmall(desc, label);
    if (isIndex(desc.mediaType)) {
      const children = parseIndex(bytes, label).manifests;
      into.manifest(
        desc,
        image.name,
        children.map((c) => c.digest),
      );
      todo.push(...children.map((c) => ({ desc: c, depth: depth + 1 })));
      continue;
    }
    const m = parseManifest(bytes, label);
    into.manifest(desc, image.name, [m.config.digest, ...m.layers.map((l) => l.digest)]);
    into.blob(m.config);
    const runnable = isRunnableImage(m);
    for (const layer of m.layers) {
      const check = checkBlobs || (runnable && isNonDistributable(layer.mediaType));
      if (!check || (await source.hasBlob(layer))) into.blob(layer);
    }
  }
}

async function collectRegistry(
  spec: Extract<InventorySpec, { kind: "registry" }>,
  client: RegistryClient,
  into: Collector,
  jobs: number,
): Promise<void> {
  const all = await listRepositories(client, spec.registry);
  const repos = all.filter((r) => !spec.prefix || r === spec.prefix || r.startsWith(`${spec.prefix}/`));
  const tagged = (
    await mapPool(repos, jobs, async (repo) =>
      (await listTags(client, spec.registry, repo)).map((tag) => `${spec.registry}/${repo}:${tag}`),
    )
  ).flat();
  await mapPool(tagged, jobs, async (ref) => {
    const source = new RegistrySource(client, ref, `docker://${ref}`);
    for (const image of await source.images()) await walkImage(source, image, into, false);
  });
}

/** A bundle as the site holds it: the originals it restores, and the blobs it stores them as. */
async function collectBundle(path: string, into: Collector): Promise<void> {
  const source = await BundleSource.open(path);
  try {
    for (const image of await source.images()) await walkImage(source, image, into, true);
    for (const img of source.contents.metadata?.images ?? []) {
      for (const l of img.manifests.flatMap((m) => m.layers)) {
        if (l.mode === "converted" && (await source.hasBlob(l))) into.blob(l);
      }
    }
  } finally {
    await source.close();
  }
}

async function collectLayout(source: ImageSource, into: Collector): Promise<void> {
  try {
    for (const image of await source.images()) await walkImage(source, image, into, true);
  } finally {
    await source.close();
  }
}

/** inventory SOURCE…: one inventory of everything the sources hold. */
export async function takeInventory(texts: string[], opts: CollectOptions): Promise<Inventory> {
  const specs = await Promise.all(texts.map((t) => parseInventorySpec(t, opts.cacheDir)));
  const hosts = specs.flatMap((s) => (s.kind === "registry" ? [s.registry] : []));
  const client = createRegistryClient(opts.registry ?? {}, hosts);
  const into = new Collector();
  const sources: InventorySource[] = [];
  for (const spec of specs) {
    if (spec.kind === "registry") {
      await collectRegistry(spec, client, into, opts.jobs);
      sources.push({ kind: "registry", location: spec.prefix ? `${spec.registry}/${spec.prefix}` : spec.registry });
    } else if (spec.kind === "bundle") {
      await collectBundle(spec.path, into);
      sources.push({ kind: "bundle", location: spec.path });
    } else {
      const source =
        spec.kind === "store"
          ? await Store.open(spec.path)
          : await openLocalOrRegistrySource(parseSourceSpec(`oci:${spec.path}`));
      await collectLayout(source, into);
      sources.push({ kind: spec.kind, location: spec.path });
    }
  }
  return into.inventory(sources);
}

/** Hex sha256 of a file's bytes, streamed. */
export async function fileSha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(path), hash);
  return hash.digest("hex");
}

async function startsWithBrace(path: string): Promise<boolean> {
  const fh = await open(path, "r").catch(() => undefined);
  if (!fh) return false;
  try {
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(64), 0, 64, 0);
    return bytesRead > 0 && buffer.subarray(0, bytesRead).toString("latin1").trimStart().startsWith("{");
  } finally {
    await fh.close();
  }
}

/** What a site holds, as --have or --base names it: an inventory file, a bundle or oci:DIR. */
export async function readSiteHoldings(
  text: string,
  opts: CollectOptions,
): Promise<{ inventory: Inventory; base: DeltaBase }> {
  if (text.startsWith("oci:")) {
    const inventory = await takeInventory([text], opts);
    const dir = text.slice("oci:".length);
    return { inventory, base: { kind: "oci", name: dir, sha256: await fileSha256(`${dir}/index.json`) } };
  }
  const path = text.replace(/^bundle:/, "");
  if (!text.startsWith("bundle:") && (await startsWithBrace(path))) {
    const { inventory, bytes } = await readInventoryFile(path);
    return {
      inventory,
      base: { kind: "inventory", name: path, sha256: createHash("sha256").update(bytes).digest("hex") },
    };
  }
  if (!(await stat(path).catch(() => undefined))?.isFile()) {
    throw new UsageError(`${text}: no such file (give an inventory file, a bundle or oci:DIR)`);
  }
  const inventory = await takeInventory([`bundle:${path}`], opts);
  return { inventory, base: { kind: "bundle", name: path, sha256: await fileSha256(path) } };
}

/** --have …: the blobs every named holding has, together, and what they were. */
export async function haveSet(texts: string[], opts: CollectOptions): Promise<HaveSet> {
  const blobs = new Map<Digest, number>();
  const holders = new Map<Digest, string[]>();
  const base: DeltaBase[] = [];
  for (const text of texts) {
    const held = await readSiteHoldings(text, opts);
    base.push(held.base);
    for (const b of held.inventory.blobs) blobs.set(b.digest, b.size);
    if (!held.inventory.sources.some((s) => s.kind === "registry")) continue;
    // A registry's repositories that hold each blob: push mounts a relied-on blob from one of them.
    for (const m of held.inventory.manifests) {
      for (const name of m.names) {
        const repo = repositoryOf(name);
        for (const ref of m.refs) {
          const list = holders.get(ref) ?? [];
          if (repo && !list.includes(repo) && list.length < MAX_HOLDERS) holders.set(ref, [...list, repo]);
        }
      }
    }
  }
  return { base, blobs, holders };
}

/** Repositories named per relied-on blob in a delta (enough to find one that holds it). */
const MAX_HOLDERS = 4;

/** "host:5000/team/app:v1" → "host:5000/team/app". */
function repositoryOf(name: string): string | undefined {
  try {
    const ref = parseReference(name);
    return `${ref.registry}/${ref.repository}`;
  } catch {
    return undefined;
  }
}

/** diff OLD NEW: an inventory file as it is, anything else (bundle, oci:DIR, registry) inventoried now. */
export async function inventoryOf(text: string, opts: CollectOptions): Promise<Inventory> {
  if (!text.startsWith("bundle:") && !text.startsWith("oci:") && (await startsWithBrace(text))) {
    return (await readInventoryFile(text)).inventory;
  }
  return takeInventory([text], opts);
}
