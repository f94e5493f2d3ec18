import { rm } from "node:fs/promises";
import type { Readable } from "node:stream";
import { METADATA_FILE, parseMetadata, type BundleMetadata } from "../bundle/format";
import { MAX_JSON_BYTES, type Descriptor } from "../oci/descriptor";
import type { GzipRecipe } from "../recipes/format";
import { regenerateGzipThreaded } from "../recipes/threaded";
import type { Store } from "../store/store";
import { blobPath, OciLayoutSource } from "../transports/layout";
import type { NamedImage } from "../transports/types";
import type { FileTree } from "../util/files";

interface Rebuild {
  recipe: GzipRecipe;
  uncompressed: Descriptor;
}

/**
 * A bundle read in place, offered as it was at its source: images under their restored roots (the
 * original index and manifests are blobs in the bundle), and each recipe layer by its original
 * digest, rebuilt from its uncompressed blob on first request, checked by the store against that
 * digest before anyone sees a byte, and kept in the store for later requests and runs.
 */
export class RestoredTreeSource extends OciLayoutSource {
  private constructor(
    tree: FileTree,
    label: string,
    private readonly meta: BundleMetadata,
    private readonly rebuilds: Map<string, Rebuild>,
  ) {
    super(tree, label);
  }

  static async open(tree: FileTree, label: string): Promise<RestoredTreeSource> {
    const meta = parseMetadata(await tree.readSmall(METADATA_FILE, MAX_JSON_BYTES), `${label}: ${METADATA_FILE}`);
    const rebuilds = new Map<string, Rebuild>();
    for (const img of meta.images) {
      if (!img.restored) continue;
      for (const l of img.manifests.flatMap((m) => m.layers)) {
        if (!l.recipe) continue;
        const uncompressed = { mediaType: l.mediaType, digest: l.digest, size: l.size };
        rebuilds.set(l.source.digest, { recipe: l.recipe, uncompressed });
      }
    }
    return new RestoredTreeSource(tree, label, meta, rebuilds);
  }

  override async images(): Promise<NamedImage[]> {
    const roots = new Map(this.meta.images.filter((i) => i.restored).map((i) => [i.name, i.restored!]));
    return (await super.images()).map((image) => {
      const root = roots.get(image.name);
      return root
        ? { ...image, descriptor: { mediaType: root.mediaType, digest: root.digest, size: root.size } }
        : image;
    });
  }

  override async hasBlob(desc: Descriptor): Promise<boolean> {
    const rebuild = this.rebuilds.get(desc.digest);
    return super.hasBlob(rebuild ? rebuild.uncompressed : desc);
  }

  /** The uncompressed blob a recipe layer is rebuilt from, if `desc` is one. */
  rebuildSource(desc: Descriptor): Descriptor | undefined {
    return this.rebuilds.get(desc.digest)?.uncompressed;
  }

  /** Rebuild a recipe layer into the store (checked there against its digest before the rename). */
  async rebuildInto(store: Store, original: Descriptor): Promise<void> {
    const r = this.rebuilds.get(original.digest);
    if (!r) throw new Error(`${this.label}: ${original.digest} has no recipe`);
    const label = `layer ${original.digest} rebuilt from ${r.uncompressed.digest}`;
    await rm(store.blobFile(original), { force: true }); // a stored copy that failed its check
    const data: Readable = this.tree.open(blobPath(r.uncompressed));
    const regen = regenerateGzipThreaded(r.recipe);
    data.on("error", (err) => regen.destroy(err));
    await store.putBlob(original, data.pipe(regen), label);
  }
}
