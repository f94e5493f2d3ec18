/** What pack does to each layer (--layers); kept apart from convert.ts so the CLI loads it cheaply. */
export type LayerMode = "keep" | "uncompressed" | "gzip" | "zstd" | "zstd-to-gzip";

/**
 * The --layers choices. "zstd-to-gzip" (only zstd layers become gzip, every other layer is kept
 * with its digest) is not one of them: it is what `unpack --for docker` asks for.
 */
export const layerModes: readonly LayerMode[] = ["keep", "uncompressed", "gzip", "zstd"];
