import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { encodeJson, parseJson, type Descriptor } from "../oci/descriptor";
import { digestHex, parseDigest, type Digest } from "../oci/digest";
import type { Compression } from "../oci/mediatypes";
import type { GzipRecipe } from "../recipes/format";
import { writeFileAtomic } from "../util/atomic";

/** What the store knows about a source layer it converted or checked before. */
export interface RecipeRecord {
  /** null: no encoder reproduced the blob, so it is kept as it is. */
  recipe: GzipRecipe | null;
  /** Size of the uncompressed tar (stored under the diff_id). */
  size: number;
}

/**
 * Small JSON records about source layers, one file each under airpack/conversions/ in the store:
 * `<hex>.<target>.json` (the converted blob), `<hex>.diffid.json` (the measured diff_id) and
 * `<hex>.recipe.json`. They make a warm re-pack skip every decompression and identification.
 */
export class ConversionRecords {
  constructor(
    readonly dir: string,
    /** Whether a blob is in the store: a record of a result that was pruned is no use. */
    private readonly present: (desc: Descriptor) => Promise<boolean>,
  ) {}

  private file(source: Digest, kind: string): string {
    return join(this.dir, `${digestHex(source)}.${kind}.json`);
  }

  private async read(source: Digest, kind: string): Promise<Record<string, unknown> | undefined> {
    try {
      return parseJson(await readFile(this.file(source, kind)), "store record");
    } catch {
      return undefined;
    }
  }

  private async write(source: Digest, kind: string, record: object): Promise<void> {
    await writeFileAtomic(this.file(source, kind), encodeJson(record));
  }

  /** The blob a layer was converted to before, if it is still in the store. */
  async converted(source: Digest, target: Compression): Promise<Descriptor | undefined> {
    const doc = await this.read(source, target);
    if (!doc) return undefined;
    try {
      const desc = { mediaType: String(doc.mediaType), digest: parseDigest(doc.digest), size: Number(doc.size) };
      return (await this.present(desc)) ? desc : undefined;
    } catch {
      return undefined;
    }
  }

  async recordConverted(source: Digest, target: Compression, result: Descriptor): Promise<void> {
    await this.write(source, target, result);
  }

  /** A layer's uncompressed digest and size, measured when it was checked against its diff_id. */
  async diffId(source: Digest): Promise<{ digest: Digest; size: number } | undefined> {
    const doc = await this.read(source, "diffid");
    if (!doc) return undefined;
    try {
      return { digest: parseDigest(doc.digest), size: Number(doc.size) };
    } catch {
      return undefined;
    }
  }

  async recordDiffId(source: Digest, diffId: Digest, size: number): Promise<void> {
    await this.write(source, "diffid", { mediaType: "diff_id", digest: diffId, size });
  }

  /** The recipe found for a gzip layer (or that none was), from an earlier identification or bundle. */
  async recipe(source: Digest): Promise<RecipeRecord | undefined> {
    const doc = await this.read(source, "recipe");
    if (!doc || typeof doc.size !== "number") return undefined;
    return { recipe: (doc.recipe ?? null) as GzipRecipe | null, size: doc.size };
  }

  async recordRecipe(source: Digest, record: RecipeRecord): Promise<void> {
    await this.write(source, "recipe", record);
  }
}
