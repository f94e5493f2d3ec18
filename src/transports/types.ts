import type { Readable } from "node:stream";
import type { Descriptor } from "../oci/descriptor";
import type { GzipRecipe } from "../recipes/format";

/** A top-level image a source offers: a normalised name and the descriptor of its index or manifest. */
export interface NamedImage {
  /** Full normalised reference, e.g. docker.io/library/alpine:3.20. */
  name: string;
  descriptor: Descriptor;
  /** Where it came from, for messages and metadata, e.g. "oci:fixtures/out/oci:mixed". */
  source: string;
  /** What the source noticed while resolving it (e.g. a tag that now points elsewhere than its pin). */
  warnings?: string[];
}

/** The uncompressed size of a compressed layer: recorded (exact), or at most `size` (a bound). */
export interface UncompressedLimit {
  size: number;
  exact: boolean;
}

/** A gzip layer a source can rebuild from an uncompressed blob it holds (digest-preserving bundles). */
export interface CarriedRecipe {
  recipe: GzipRecipe;
  /** The uncompressed layer the recipe rebuilds the original from; its digest is the diff_id. */
  uncompressed: Descriptor;
}

/**
 * Everything airpack reads images from implements this: the registry (transports/registry.ts), OCI
 * layout dirs and oci-archive files (layout.ts), docker-archive files (docker-archive.ts), the store
 * (store/store.ts) and bundles (bundle/source.ts). Returned bytes and streams are verified against
 * the descriptor: a stream errors at its end if digest or size differ. `label` in the methods names
 * the thing in error messages, e.g. "docker.io/library/alpine:3.20 layer sha256:ab12…".
 */
export interface ImageSource {
  readonly label: string;
  /** The images selected by this source's reference (a tag, or all images when none was given). */
  images(): Promise<NamedImage[]>;
  /** A manifest, index or config: small, verified, size-capped. */
  fetchSmall(desc: Descriptor, label: string): Promise<Uint8Array>;
  /** A blob stream that fails at the end on digest/size mismatch. */
  blob(desc: Descriptor, label: string, signal?: AbortSignal): Promise<Readable>;
  /**
   * The blob's bytes without the check, only for a sink that makes it itself before anyone can
   * see them (Store.putBlob). Sources where checking costs nothing extra leave it out.
   */
  blobUnchecked?(desc: Descriptor, label: string, signal?: AbortSignal): Promise<Readable>;
  /** Whether the blob is available (non-distributable layers may be absent). */
  hasBlob(desc: Descriptor): Promise<boolean>;
  /**
   * For a gzip layer the source would rebuild from a recipe: the recipe and the uncompressed blob,
   * so a digest-preserving copy can take those instead of rebuilding and identifying it again.
   */
  recipeFor?(layer: Descriptor): CarriedRecipe | undefined;
  /**
   * Untrusted sources (bundles): how many uncompressed bytes a compressed layer may hold, so that
   * decompressing it stops at the first byte over (a size recorded for it, else a ratio bound).
   */
  uncompressedLimit?(layer: Descriptor): UncompressedLimit;
  /** A hint from a copy that will not read this blob (the sink has it), for forward-only sources. */
  skip?(desc: Descriptor): void;
  close(): Promise<void>;
}

/**
 * Everything airpack writes images to. The store (store/store.ts) takes images one blob at a time
 * and names them with tag(); layout outputs (LayoutSink) are told the whole layout first.
 */
export interface ImageSink {
  readonly label: string;
  /** Whether the blob is already there, complete, so a copy can skip it. */
  hasBlob(desc: Descriptor): Promise<boolean>;
  /**
   * Write a blob from ImageSource.blob() (verified by the source as it streams); it becomes
   * visible only once the stream ended cleanly.
   */
  putBlob(desc: Descriptor, data: Readable, label: string, signal?: AbortSignal): Promise<void>;
  putSmall(desc: Descriptor, bytes: Uint8Array, label: string): Promise<void>;
  /** Record a name for a root descriptor. */
  tag(image: NamedImage): Promise<void>;
  /** Commit point: names written, temp files renamed into place or removed. */
  close(): Promise<void>;
}

/** The top-level files of an OCI layout, known before any blob is written (see transports/plan.ts). */
export interface LayoutFiles {
  indexJson: Uint8Array;
  /** docker's manifest.json; empty when no image can be loaded by docker. */
  dockerManifest: Uint8Array | undefined;
  /** airpack.json, for bundles. */
  metadata?: Uint8Array;
}

/**
 * A sink that writes one OCI layout in one go: an archive (streamed in order, so index.json must
 * come first) or a directory. Blobs arrive in layout order; tag() is not used (names are in index.json).
 */
export interface LayoutSink extends ImageSink {
  begin(files: LayoutFiles): Promise<void>;
  /** Throw away everything written; nothing that looks complete is left behind. */
  abort(): Promise<void>;
}
