import type { Digest } from "../oci/digest";
import { isIndex } from "../oci/mediatypes";
import { parseReference } from "../oci/reference";
import type { Inventory, InventoryManifest } from "./format";

/** One image's layers and configs, as an inventory records it (every platform). */
interface ImageView {
  name: string;
  root: Digest;
  layers: Set<Digest>;
  /** Manifests, indexes and configs: a delta carries all of them. */
  documents: Set<Digest>;
}

export interface ImageDiff {
  /** The name without its registry (docker.io's library/ dropped), which both sides are matched by. */
  image: string;
  status: "added" | "removed" | "changed" | "unchanged";
  oldDigest?: Digest;
  newDigest?: Digest;
  addedLayers: Digest[];
  removedLayers: Digest[];
  /** Layer bytes a delta of NEW against OLD would carry for this image (layers OLD holds nowhere). */
  deltaLayerBytes: number;
}

export interface InventoryDiff {
  images: ImageDiff[];
  totals: {
    added: number;
    removed: number;
    changed: number;
    unchanged: number;
    /** Distinct layers of NEW that OLD holds nowhere, and their bytes. */
    deltaLayers: number;
    deltaLayerBytes: number;
    /** Manifests, indexes and configs of NEW (a delta carries every one). */
    metadataBytes: number;
  };
}

/** "127.0.0.1:5000/library/app:v1" and "docker.io/library/app:v1" both → "app:v1". */
export function imageKey(name: string): string {
  try {
    const ref = parseReference(name);
    const repo = ref.repository.replace(/^library\//, "");
    return ref.tag ? `${repo}:${ref.tag}` : ref.digest ? `${repo}@${ref.digest}` : repo;
  } catch {
    return name;
  }
}

function views(inv: Inventory): Map<string, ImageView> {
  const byDigest = new Map<Digest, InventoryManifest>(inv.manifests.map((m) => [m.digest, m]));
  const children = new Set<Digest>();
  for (const m of inv.manifests) if (isIndex(m.mediaType)) m.refs.forEach((r) => children.add(r));
  const out = new Map<string, ImageView>();
  for (const root of inv.manifests) {
    for (const name of root.names) {
      const key = imageKey(name);
      // A root: not listed by an index reached by the same name.
      const listed = inv.manifests.some(
        (p) => isIndex(p.mediaType) && p.names.includes(name) && p.refs.includes(root.digest),
      );
      if (listed || out.has(key)) continue;
      const view: ImageView = { name, root: root.digest, layers: new Set(), documents: new Set() };
      const todo = [root];
      for (let m = todo.pop(); m; m = todo.pop()) {
        if (view.documents.has(m.digest)) continue;
        view.documents.add(m.digest);
        if (isIndex(m.mediaType)) {
          for (const r of m.refs) {
            const child = byDigest.get(r);
            if (child) todo.push(child);
          }
        } else {
          const [config, ...layers] = m.refs;
          if (config) view.documents.add(config);
          layers.forEach((l) => view.layers.add(l));
        }
      }
      out.set(key, view);
    }
  }
  return out;
}

/** Per image (matched by repository and tag): added, removed, changed; the layers and bytes a delta carries. */
export function diffInventories(oldInv: Inventory, newInv: Inventory): InventoryDiff {
  const oldViews = views(oldInv);
  const newViews = views(newInv);
  const oldBlobs = new Set<string>([...oldInv.blobs.map((b) => b.digest)]);
  const sizes = new Map<Digest, number>(newInv.blobs.map((b) => [b.digest, b.size]));
  for (const m of newInv.manifests) sizes.set(m.digest, m.size);
  const size = (d: Digest): number => sizes.get(d) ?? 0;
  const images: ImageDiff[] = [];
  const carried = new Set<Digest>();
  const documents = new Set<Digest>();
  for (const key of [...new Set([...oldViews.keys(), ...newViews.keys()])].sort()) {
    const o = oldViews.get(key);
    const n = newViews.get(key);
    const added = n ? [...n.layers].filter((l) => !o?.layers.has(l)) : [];
    const removed = o ? [...o.layers].filter((l) => !n?.layers.has(l)) : [];
    const lacking = n ? [...n.layers].filter((l) => !oldBlobs.has(l)) : [];
    lacking.forEach((l) => carried.add(l));
    n?.documents.forEach((d) => documents.add(d));
    images.push({
      image: key,
      status: !o ? "added" : !n ? "removed" : o.root === n.root ? "unchanged" : "changed",
      ...(o ? { oldDigest: o.root } : {}),
      ...(n ? { newDigest: n.root } : {}),
      addedLayers: added,
      removedLayers: removed,
      deltaLayerBytes: lacking.reduce((a, l) => a + size(l), 0),
    });
  }
  const count = (s: ImageDiff["status"]): number => images.filter((i) => i.status === s).length;
  return {
    images,
    totals: {
      added: count("added"),
      removed: count("removed"),
      changed: count("changed"),
      unchanged: count("unchanged"),
      deltaLayers: carried.size,
      deltaLayerBytes: [...carried].reduce((a, l) => a + size(l), 0),
      metadataBytes: [...documents].reduce((a, d) => a + size(d), 0),
    },
  };
}
