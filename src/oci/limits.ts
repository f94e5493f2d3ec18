/**
 * Limits on what airpack reads from untrusted input (bundles, and the documents any source serves).
 * Each one bounds memory or time whatever the input; docs/bundle-format.md ("Limits") lists them,
 * with what a real bundle uses.
 */

/** Any one JSON document (index.json, airpack.json, a manifest, an index, a config). */
export const MAX_JSON_BYTES = 4 * 1024 * 1024;

/** Nesting of arrays and objects inside one JSON document. */
export const MAX_JSON_DEPTH = 64;

/** All JSON documents of one bundle together: they are kept in memory while the bundle is read. */
export const MAX_JSON_TOTAL_BYTES = 64 * 1024 * 1024;

/** Indexes nested below index.json: what index.json lists is level 1, what an index at level n lists is n + 1. */
export const MAX_INDEX_DEPTH = 16;

/** Distinct blobs one bundle may reference (indexes, manifests, configs, layers, recorded extras). */
export const MAX_BLOBS = 100_000;

/** Tar headers in one bundle (entries, and the pax or GNU long-name headers before them). */
export const MAX_TAR_HEADERS = 2 * MAX_BLOBS + 64;

/** Zero bytes allowed after the end-of-archive marker (padding to a 10 KiB tar record). */
export const MAX_TAR_TRAILER_BYTES = 10 * 1024;

/** A pax extended header or GNU long name (airpack writes neither; names in a bundle are short). */
export const MAX_TAR_META_BYTES = 64 * 1024;

/**
 * A compressed layer whose uncompressed size is recorded nowhere may inflate to at most this many
 * times its own size, plus MAX_LAYER_SLACK. deflate cannot exceed 1032:1, so no valid gzip layer
 * reaches it; a zstd layer can (a file of zeros), and is then refused.
 */
export const MAX_LAYER_RATIO = 1100;
export const MAX_LAYER_SLACK = 1024 * 1024;

/** Members of one multi-member gzip recipe. */
export const MAX_RECIPE_MEMBERS = 4096;

/** The uncompressed bytes a compressed layer of `size` bytes may hold when nothing records how many. */
export function maxUncompressedSize(size: number): number {
  return size * MAX_LAYER_RATIO + MAX_LAYER_SLACK;
}
