import { Annotation, encodeJson, isRunnableImage, parseIndex, parseManifest, type Descriptor } from "../oci/descriptor";
import { isIndex, isManifest, isNonDistributable, MediaType } from "../oci/mediatypes";
import { hostPlatform, isAttestationPlatform, platformMatches } from "../oci/platform";
import { blobPath } from "./layout";
import type { ImageSource, NamedImage } from "./types";
import { dockerTag, type DockerManifestEntry } from "../oci/docker-manifest";
import { nameForDigest } from "../oci/reference";
import { MAX_INDEX_DEPTH } from "../oci/limits";

/** Everything a layout tar needs, small documents first so readers can plan before layers. */
export interface LayoutPlan {
  indexJson: Buffer;
  dockerManifest: DockerManifestEntry[];
  small: { desc: Descriptor; bytes: Uint8Array }[];
  layers: Descriptor[];
  /** Foreign layers whose blobs are not included. */
  foreign: Descriptor[];
}

export interface PlanOptions {
  extra?: Descriptor[];
  /** Blobs on their way into the source (downloads that start once the plan is made). */
  coming?: ReadonlySet<string>;
  /** Leave out names whose root holds no runnable image (signatures, SBOMs, attestations on their own). */
  imagesOnly?: boolean;
  /**
   * Layers the layout leaves out (a delta bundle's relied-on blobs): not in `layers`, and docker's
   * manifest.json names no image that needs one, so docker load never loads half an image.
   */
  absent?: ReadonlySet<string>;
}

/**
 * Walk the named images in `source` and list every blob an OCI layout of them must hold. Names
 * whose root holds a runnable image come first in index.json: `ctr images import` stops at the
 * first name it can't unpack, so an artifact ahead of an image would keep the image from unpacking.
 */
export async function planLayout(
  source: ImageSource,
  images: NamedImage[],
  { extra = [], coming = new Set(), imagesOnly = false, absent = new Set() }: PlanOptions = {},
): Promise<LayoutPlan> {
  const plan: LayoutPlan = { indexJson: Buffer.alloc(0), dockerManifest: [], small: [], layers: [], foreign: [] };
  const seen = new Set<string>();
  const manifests = new Map<string, { config: Descriptor; layers: Descriptor[] }>();

  const addSmall = async (desc: Descriptor, errorLabel: string): Promise<Uint8Array> => {
    const bytes = await source.fetchSmall(desc, errorLabel);
    if (!seen.has(desc.digest)) {
      seen.add(desc.digest);
      plan.small.push({ desc, bytes });
    }
    return bytes;
  };
  /** Whether the root holds a runnable image (each document looked at once, however often it is listed). */
  const runnable = async (root: Descriptor, rootLabel: string): Promise<boolean> => {
    const looked = new Set<string>();
    const todo: Visit[] = [{ desc: root, label: rootLabel, depth: 1 }];
    for (let v = todo.pop(); v; v = todo.pop()) {
      if (looked.has(v.desc.digest)) continue;
      looked.add(v.desc.digest);
      const bytes = await source.fetchSmall(v.desc, v.label);
      if (isIndex(v.desc.mediaType)) {
        todo.push(...children(parseIndex(bytes, v.label).manifests, v).reverse());
      } else if (isManifest(v.desc.mediaType) && isRunnableImage(parseManifest(bytes, v.label))) return true;
    }
    return false;
  };
  /**
   * Every document below `root` into the plan, parents before children in list order (depth first),
   * each walked once: an index that lists the same child many times, on many levels, costs one visit
   * per distinct document, not one per path.
   */
  const walked = new Set<string>();
  const walk = async (root: Descriptor, rootLabel: string): Promise<void> => {
    const todo: Visit[] = [{ desc: root, label: rootLabel, depth: 1 }];
    for (let v = todo.pop(); v; v = todo.pop()) {
      const { desc, label: errorLabel } = v;
      if (walked.has(desc.digest)) continue;
      walked.add(desc.digest);
      const bytes = await addSmall(desc, errorLabel);
      if (isIndex(desc.mediaType)) {
        todo.push(...children(parseIndex(bytes, errorLabel).manifests, v).reverse());
        continue;
      }
      if (!isManifest(desc.mediaType)) continue;
      const m = parseManifest(bytes, errorLabel);
      manifests.set(desc.digest, { config: m.config, layers: m.layers });
      await addSmall(m.config, `${errorLabel} config`);
      for (const layer of m.layers) {
        if (seen.has(layer.digest) || absent.has(layer.digest)) continue;
        if (isNonDistributable(layer.mediaType) && !coming.has(layer.digest) && !(await source.hasBlob(layer))) {
          plan.foreign.push(layer);
          continue;
        }
        seen.add(layer.digest);
        plan.layers.push(layer);
      }
    }
  };

  const classified = await Promise.all(
    images.map(async (image) => ({ image, runnable: await runnable(image.descriptor, image.name) })),
  );
  const ordered = [
    ...classified.filter((c) => c.runnable),
    ...(imagesOnly ? [] : classified.filter((c) => !c.runnable)),
  ].map((c) => c.image);
  const entries: Descriptor[] = [];
  for (const image of ordered) {
    await walk(image.descriptor, image.name);
    const name = nameForDigest(image.name, image.descriptor.digest);
    entries.push({
      mediaType: image.descriptor.mediaType,
      digest: image.descriptor.digest,
      size: image.descriptor.size,
      annotations: { [Annotation.containerdName]: name, [Annotation.refName]: name },
    });
  }
  for (const desc of extra) await addSmall(desc, `extra blob ${desc.digest}`);
  plan.indexJson = encodeJson({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: entries });
  plan.dockerManifest = await dockerEntries(source, ordered, manifests, [
    ...plan.foreign.map((f) => f.digest),
    ...absent,
  ]);
  return plan;
}

interface Visit {
  desc: Descriptor;
  label: string;
  /** Levels below index.json (its entries are 1). */
  depth: number;
}

/** An index's entries as visits one level down; an index nested deeper than the limit is refused. */
function children(list: Descriptor[], parent: Visit): Visit[] {
  const depth = parent.depth + 1;
  if (depth > MAX_INDEX_DEPTH) {
    throw new Error(`${parent.label}: indexes nest more than ${MAX_INDEX_DEPTH} levels deep (the limit)`);
  }
  return list.map((child) => ({ desc: child, label: `${parent.label} ${child.digest}`, depth }));
}

/** docker load reads one platform per tag: pick the host's, else the first image manifest. */
async function dockerEntries(
  source: ImageSource,
  images: NamedImage[],
  manifests: Map<string, { config: Descriptor; layers: Descriptor[] }>,
  missing: string[],
): Promise<DockerManifestEntry[]> {
  const byManifest = new Map<string, DockerManifestEntry>();
  const foreignDigests = new Set(missing);
  const host = hostPlatform();
  // The host's image manifest, else the first one; an index inside an index is looked into.
  const pick = async (desc: Descriptor, errorLabel: string): Promise<Descriptor | undefined> => {
    if (!isIndex(desc.mediaType)) return manifests.has(desc.digest) ? desc : undefined;
    const children = parseIndex(await source.fetchSmall(desc, errorLabel), errorLabel).manifests.filter(
      (c) => !isAttestationPlatform(c.platform),
    );
    const hostFirst = [...children.filter((c) => platformMatches(host, c.platform)), ...children];
    for (const child of hostFirst) {
      const found = await pick(child, errorLabel);
      if (found) return found;
    }
    return undefined;
  };
  for (const image of images) {
    const chosen = await pick(image.descriptor, image.name);
    if (!chosen) continue;
    const m = manifests.get(chosen.digest);
    if (!m) continue;
    if (m.config.mediaType !== MediaType.ociConfig && m.config.mediaType !== MediaType.dockerConfig) continue;
    if (m.layers.some((l) => foreignDigests.has(l.digest))) continue;
    const entry = byManifest.get(chosen.digest) ?? {
      Config: blobPath(m.config),
      RepoTags: [],
      Layers: m.layers.map((l) => blobPath(l)),
    };
    const tag = dockerTag(image.name);
    if (tag) entry.RepoTags.push(tag);
    byManifest.set(chosen.digest, entry);
  }
  return [...byManifest.values()];
}
