import type { Readable } from "node:stream";
import type { Descriptor } from "../oci/descriptor";

/** A top-level image a source offers: a normalised name and the descriptor of its index or manifest. */
export interface NamedImage {
  /** Full normalised reference, e.g. docker.io/library/alpine:3.20. */
  name: string;
  descriptor: Descriptor;
  /** Where it came from, for messages and metadata, e.g. "oci:fixtures/out/oci:mixed". */
  source: string;
}

/**
 * Everything airpack reads images from implements this: OCI layout dirs, oci-archive and
 * docker-archive files, bundles and registries. Returned bytes and streams are verified
 * against the descriptor (a stream errors at its end if digest or size differ).
 */
export interface ImageSource {
  readonly label: string;
  /** The images selected by this source's reference (a tag, or all images when none was given). */
  images(): Promise<NamedImage[]>;
  /** A manifest, index or config: small, verified, size-capped. */
  fetchSmall(desc: Descriptor, what: string): Promise<Uint8Array>;
  /** A blob stream that fails at the end on digest/size mismatch. */
  blob(desc: Descriptor, what: string, signal?: AbortSignal): Promise<Readable>;
  /**
   * The blob's bytes without the check, only for a sink that makes it itself before anyone can
   * see them (Store.putBlob). Sources where checking costs nothing extra leave it out.
   */
  blobUnchecked?(desc: Descriptor, what: string, signal?: AbortSignal): Promise<Readable>;
  /** Whether the blob is available (non-distributable layers may be absent). */
  hasBlob(desc: Descriptor): Promise<boolean>;
  close(): Promise<void>;
}

/** Everything airpack writes images to. */
export interface ImageSink {
  hasBlob(desc: Descriptor): Promise<boolean>;
  /** Store a blob; the sink verifies digest and size before making it visible. */
  putBlob(desc: Descriptor, data: Readable, what: string, signal?: AbortSignal): Promise<void>;
  putSmall(desc: Descriptor, bytes: Uint8Array, what: string): Promise<void>;
  /** Record a name for a root descriptor. */
  tag(image: NamedImage): Promise<void>;
  /** Commit point: index.json written, temp files removed. */
  close(): Promise<void>;
}
