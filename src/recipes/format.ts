/** The recipe shapes stored in airpack.json (documented in docs/recipe-format.md). */

/** One gzip member: which encoder made it and its exact header. */
export interface GzipMemberRecipe {
  /** Candidate id, e.g. "go-flate-6". */
  encoder: string;
  family: string;
  level: number;
  versions: string;
  /** The exact gzip header bytes (base64). */
  header: string;
}

/**
 * How a gzip blob can be rebuilt from its uncompressed tar: stored in airpack.json per layer. The top
 * level describes the (first) member; a blob of several concatenated members lists them all in
 * `members`, each with the number of uncompressed bytes it holds.
 */
export interface GzipRecipe extends GzipMemberRecipe {
  format: "gzip";
  members?: (GzipMemberRecipe & { size: number })[];
}
