import { join } from "node:path";
import type { Readable } from "node:stream";
import { parseIndex, parseManifest, type Descriptor } from "../oci/descriptor";
import { isIndex, isManifest } from "../oci/mediatypes";
import { parseReference } from "../oci/reference";
import type { ImageSource, NamedImage } from "../transports/types";

/** What one repository serves: its tags and every digest its images reach. */
export interface ServedRepository {
  /** Source host of its images, for containerd's `?ns=` mirror parameter. */
  host: string;
  tags: Map<string, Descriptor>;
  manifests: Map<string, Descriptor>;
  blobs: Map<string, Descriptor>;
}

/** Every repository served, by name (two source hosts may share a path, told apart by `?ns=`), and where each blob's file is. */
export interface Catalog {
  repositories: Map<string, ServedRepository[]>;
  /** Where each digest's bytes are: a layout's blob file, or a spot in a plain .tar bundle. */
  files: Map<string, BlobLocation>;
}

export interface BlobLocation {
  path: string;
  start: number;
  /** Bytes [from, to] (inclusive) of the blob, for blobs not stored as they are (a compressed bundle's). */
  read?: (from: number, to: number) => Readable;
  /** For bytes not checked yet: settles once they hashed to their digest (memoized), rejects if not. */
  check?: () => Promise<void>;
}

/** Finds a blob's bytes. */
export type Locate = (desc: Descriptor) => BlobLocation;

/** Limits on a served graph, so a hostile index can't make the walk explode. */
const MAX_NODES = 100_000;

/**
 * Build the catalog from verified images: a repository is an image's path below its source host
 * (docker.io/library/alpine:3.20 → library/alpine), as containerd asks a mirror for it.
 */
export async function addToCatalog(
  catalog: Catalog,
  locate: Locate,
  source: ImageSource,
  images: NamedImage[],
  prefix: string,
): Promise<void> {
  for (const image of images) {
    const ref = parseReference(image.name);
    const name = prefix ? `${prefix}/${ref.repository}` : ref.repository;
    const list = catalog.repositories.get(name) ?? [];
    let repo = list.find((r) => r.host === ref.registry);
    if (!repo) {
      repo = { host: ref.registry, tags: new Map(), manifests: new Map(), blobs: new Map() };
      list.push(repo);
      catalog.repositories.set(name, list);
    }
    if (ref.tag) repo.tags.set(ref.tag, image.descriptor);
    // Iterative, each digest once.
    const todo: Descriptor[] = [image.descriptor];
    while (todo.length > 0) {
      const desc = todo.pop()!;
      if (repo.manifests.has(desc.digest) || repo.blobs.has(desc.digest)) continue;
      if (repo.manifests.size + repo.blobs.size > MAX_NODES)
        throw new Error(`${image.name}: more than ${MAX_NODES} documents and blobs`);
      const plain = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
      catalog.files.set(desc.digest, locate(plain));
      if (isIndex(desc.mediaType)) {
        repo.manifests.set(desc.digest, plain);
        todo.push(...parseIndex(await source.fetchSmall(desc, image.name), image.name).manifests);
      } else if (isManifest(desc.mediaType)) {
        repo.manifests.set(desc.digest, plain);
        const m = parseManifest(await source.fetchSmall(desc, image.name), image.name);
        for (const blob of [m.config, ...m.layers]) {
          if (!(await source.hasBlob(blob))) continue; // a foreign layer the bundle doesn't carry
          repo.blobs.set(blob.digest, blob);
          catalog.files.set(blob.digest, locate(blob));
        }
      }
    }
  }
}

/** Blobs of an OCI layout directory. */
export function inLayoutDir(dir: string): Locate {
  return (desc) => ({ path: join(dir, "blobs", "sha256", desc.digest.slice("sha256:".length)), start: 0 });
}
