import { readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { planLayout } from "../transports/plan";
import { imageName } from "../oci/descriptor";
import type { Store } from "./store";
import type { NamedImage } from "../transports/types";

export interface StoreListing {
  root: string;
  images: { name: string; digest: string; mediaType: string }[];
  blobs: number;
  bytes: number;
}

async function blobFiles(store: Store): Promise<{ hex: string; size: number }[]> {
  const dir = join(store.root, "blobs", "sha256");
  const out: { hex: string; size: number }[] = [];
  for (const hex of await readdir(dir).catch(() => [] as string[])) {
    const s = await stat(join(dir, hex)).catch(() => undefined);
    if (s?.isFile()) out.push({ hex, size: s.size });
  }
  return out;
}

async function namedImages(store: Store): Promise<NamedImage[]> {
  const entries = await store.readIndex().catch(() => []);
  return entries.map((d) => ({
    name: imageName(d),
    descriptor: d,
    source: store.label,
  }));
}

/** airpack cache ls */
export async function listStore(store: Store): Promise<StoreListing> {
  const blobs = await blobFiles(store);
  const images = await namedImages(store);
  return {
    root: store.root,
    images: images.map((i) => ({ name: i.name, digest: i.descriptor.digest, mediaType: i.descriptor.mediaType })),
    blobs: blobs.length,
    bytes: blobs.reduce((a, b) => a + b.size, 0),
  };
}

/**
 * airpack cache prune: delete blobs no named image reaches (originals replaced by conversions,
 * platforms no longer wanted), stale temp files, and conversion records whose result is gone.
 * With `all`, empty the store.
 */
export async function pruneStore(store: Store, all: boolean): Promise<{ removed: number; bytes: number }> {
  const blobs = await blobFiles(store);
  const keep = new Set<string>();
  if (!all) {
    const plan = await planLayout(store, await namedImages(store));
    for (const { desc } of plan.small) keep.add(desc.digest.slice(7));
    for (const layer of plan.layers) keep.add(layer.digest.slice(7));
  }
  let removed = 0;
  let bytes = 0;
  for (const b of blobs) {
    if (keep.has(b.hex)) continue;
    await rm(join(store.root, "blobs", "sha256", b.hex), { force: true });
    removed++;
    bytes += b.size;
  }
  await store.cleanIngest();
  const conversions = join(store.root, "airpack", "conversions");
  for (const name of await readdir(conversions).catch(() => [] as string[])) {
    if (all) await rm(join(conversions, name), { force: true });
  }
  if (all) await rm(join(store.root, "index.json"), { force: true });
  return { removed, bytes };
}
