import type { FileSpot } from "../util/file-writer";
import type { Descriptor } from "../oci/descriptor";
import type { Digest } from "../oci/digest";
import type { Family } from "../oci/mediatypes";
import type { GzipRecipe } from "../recipes/format";
import type { Limiter } from "../util/pool";
import type { ProgressListener } from "../util/progress";
import type { LayerMode } from "./layer-modes";

/** The options and result of one layer's copy (layer.ts), shared with the recipe step (preserve.ts). */

export interface ConvertOptions {
  mode: LayerMode;
  /** With mode "uncompressed": keep what is needed to rebuild the original gzip blob byte for byte. */
  preserveDigests?: boolean;
  /**
   * Also decompress layers copied as they are and check them against their diff_ids (--verify-diff-ids).
   * Converted layers are always checked; this is the extra pass skopeo and crane don't make.
   */
  verifyDiffIds?: boolean;
  /** Bounds CPU-heavy work (encoder identification) to the number of cores. */
  cpu?: Limiter;
  /**
   * Run a plain copy (no check or conversion that decides the result) in the background: the
   * result is known from the descriptor, so the caller can go on while the bytes arrive. The
   * task may be given a second destination for the bytes (e.g. the layer's place in a bundle).
   */
  background?: (digest: Digest, task: (tee?: FileSpot) => Promise<void>) => void;
  /** The manifest family the converted layer will live in. */
  family: Family;
  /** Blobs the site has (pack --have: digest → size): such a layer is relied on, never fetched. */
  have?: ReadonlyMap<Digest, number>;
  level?: number;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
}

export interface LayerResult {
  descriptor: Descriptor;
  action: "copied" | "converted" | "cached" | "foreign" | "relied";
  /** Size of the uncompressed tar, when known. */
  uncompressedSize?: number;
  /** How to rebuild the original blob from the stored (uncompressed) one. */
  recipe?: GzipRecipe;
  /** Why the original blob was kept although a conversion was asked for. */
  keptReason?: string;
}
