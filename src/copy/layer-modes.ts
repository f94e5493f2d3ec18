/** What pack does to each layer (--layers); kept apart from convert.ts so the CLI loads it cheaply. */
export type LayerMode = "keep" | "uncompressed" | "gzip" | "zstd";

export const layerModes: readonly LayerMode[] = ["keep", "uncompressed", "gzip", "zstd"];
