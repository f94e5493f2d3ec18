/** Every media type airpack understands, in one table (regclient style). */

export const MediaType = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  ociForeignLayer: "application/vnd.oci.image.layer.nondistributable.v1.tar",
  ociForeignLayerGzip: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  ociForeignLayerZstd: "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
  ociEmpty: "application/vnd.oci.empty.v1+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestV1: "application/vnd.docker.distribution.manifest.v1+json",
  dockerManifestV1Signed: "application/vnd.docker.distribution.manifest.v1+prettyjws",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerForeignLayerGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
} as const;

export type Compression = "gzip" | "zstd" | "none";
export type Family = "oci" | "docker";
export type Kind = "index" | "manifest" | "config" | "layer";

export interface MediaTypeInfo {
  kind: Kind;
  family: Family;
  compression?: Compression;
  /** Foreign / non-distributable layers: the blob may legally be absent. */
  nonDistributable?: boolean;
}

const table: Record<string, MediaTypeInfo> = {
  [MediaType.ociIndex]: { kind: "index", family: "oci" },
  [MediaType.ociManifest]: { kind: "manifest", family: "oci" },
  [MediaType.ociConfig]: { kind: "config", family: "oci" },
  [MediaType.ociLayer]: { kind: "layer", family: "oci", compression: "none" },
  [MediaType.ociLayerGzip]: { kind: "layer", family: "oci", compression: "gzip" },
  [MediaType.ociLayerZstd]: { kind: "layer", family: "oci", compression: "zstd" },
  [MediaType.ociForeignLayer]: { kind: "layer", family: "oci", compression: "none", nonDistributable: true },
  [MediaType.ociForeignLayerGzip]: { kind: "layer", family: "oci", compression: "gzip", nonDistributable: true },
  [MediaType.ociForeignLayerZstd]: { kind: "layer", family: "oci", compression: "zstd", nonDistributable: true },
  [MediaType.dockerManifestList]: { kind: "index", family: "docker" },
  [MediaType.dockerManifest]: { kind: "manifest", family: "docker" },
  [MediaType.dockerConfig]: { kind: "config", family: "docker" },
  [MediaType.dockerLayer]: { kind: "layer", family: "docker", compression: "none" },
  [MediaType.dockerLayerGzip]: { kind: "layer", family: "docker", compression: "gzip" },
  [MediaType.dockerForeignLayerGzip]: {
    kind: "layer",
    family: "docker",
    compression: "gzip",
    nonDistributable: true,
  },
};

export function mediaTypeInfo(mediaType: string): MediaTypeInfo | undefined {
  return table[mediaType];
}

export function isIndex(mediaType: string): boolean {
  return table[mediaType]?.kind === "index";
}

export function isManifest(mediaType: string): boolean {
  return table[mediaType]?.kind === "manifest";
}

export function isSchema1(mediaType: string): boolean {
  return mediaType === MediaType.dockerManifestV1 || mediaType === MediaType.dockerManifestV1Signed;
}

/** Layer compression, or undefined when the type is not a known layer type. */
export function layerCompression(mediaType: string): Compression | undefined {
  const info = table[mediaType];
  return info?.kind === "layer" ? info.compression : undefined;
}

export function isNonDistributable(mediaType: string): boolean {
  return table[mediaType]?.nonDistributable === true;
}

/**
 * The media type for a layer of `family` stored with `compression`.
 * Docker v2s2 has no zstd layer type; callers must switch the manifest to OCI first.
 */
export function layerMediaType(family: Family, compression: Compression, nonDistributable = false): string {
  if (family === "docker") {
    if (nonDistributable) {
      if (compression === "gzip") return MediaType.dockerForeignLayerGzip;
      throw new Error(`docker v2s2 has no ${compression} foreign layer type`);
    }
    if (compression === "gzip") return MediaType.dockerLayerGzip;
    if (compression === "none") return MediaType.dockerLayer;
    throw new Error("docker v2s2 has no zstd layer type; convert the manifest to OCI");
  }
  if (nonDistributable) {
    return compression === "gzip"
      ? MediaType.ociForeignLayerGzip
      : compression === "zstd"
        ? MediaType.ociForeignLayerZstd
        : MediaType.ociForeignLayer;
  }
  return compression === "gzip"
    ? MediaType.ociLayerGzip
    : compression === "zstd"
      ? MediaType.ociLayerZstd
      : MediaType.ociLayer;
}

/** The OCI equivalent of a docker media type (used when a v2s2 image must become OCI). */
export function toOciMediaType(mediaType: string): string {
  const info = table[mediaType];
  if (!info || info.family === "oci") return mediaType;
  switch (info.kind) {
    case "index":
      return MediaType.ociIndex;
    case "manifest":
      return MediaType.ociManifest;
    case "config":
      return MediaType.ociConfig;
    case "layer":
      return layerMediaType("oci", info.compression ?? "none", info.nonDistributable);
  }
}
