import type { LayerMode } from "../copy/layer-modes";
import type { UnpackFormat } from "./unpack";

/** The importers `unpack --for` writes for. */
export type UnpackTarget = "docker" | "containerd" | "podman" | "k3s";

export const unpackTargets: readonly UnpackTarget[] = ["docker", "containerd", "podman", "k3s"];

/**
 * What one importer takes, as measured with the real tools (docs/peers.md): the archive format
 * and layer form `--for` picks, and which explicit --format / --layers it still takes.
 */
export interface TargetForm {
  /** How errors name the importer. */
  importer: string;
  format: UnpackFormat;
  /** undefined: layers as they are in the bundle (digests kept). */
  layers?: LayerMode;
  formats: readonly UnpackFormat[];
  layerModes: readonly LayerMode[];
  /** Why a format it does not take is refused. */
  formatReason: string;
  /** Why a layer mode it does not take is refused. */
  layersReason?: string;
}

const ANY_LAYERS: readonly LayerMode[] = ["keep", "uncompressed", "gzip", "zstd"];

export const TARGETS: Readonly<Record<UnpackTarget, TargetForm>> = {
  // docker 20.10: reads manifest.json only, and its layer decompressor knows gzip, bzip2 and xz
  // but not zstd (ApplyLayer … archive/tar: invalid tar header). Only zstd layers are converted.
  docker: {
    importer: "docker load (20.10)",
    format: "docker-archive",
    layers: "zstd-to-gzip",
    formats: ["docker-archive"],
    layerModes: ["zstd-to-gzip", "gzip", "uncompressed"],
    formatReason: "it reads docker's manifest.json, which only docker-archive has",
    layersReason:
      "refuses zstd layers; leave --layers out (then only zstd layers are converted) or take gzip or uncompressed",
  },
  // ctr 1.6: a plain tar; with oci-layout present it reads index.json only; zstd layers unpack.
  containerd: {
    importer: "ctr images import (1.6)",
    format: "oci-archive",
    formats: ["oci-archive", "docker-archive"],
    layerModes: ANY_LAYERS,
    formatReason: "it reads a tar of an OCI layout",
  },
  // podman 4.3: an oci-archive with several images loads nothing; the docker-archive path loads
  // them all, zstd layers included.
  podman: {
    importer: "podman load (4.3)",
    format: "docker-archive",
    formats: ["docker-archive"],
    layerModes: ANY_LAYERS,
    formatReason: "it loads an oci-archive only when it holds one image; docker-archive loads any number",
  },
  // k3s: containerd's importer with all platforms, from .tar, .tar.gz or .tar.zst; the bundle's
  // index already lists only what is inside it.
  k3s: {
    importer: "k3s (containerd's importer, all platforms)",
    format: "oci-archive",
    formats: ["oci-archive", "docker-archive"],
    layerModes: ANY_LAYERS,
    formatReason: "it reads a tar of an OCI layout",
  },
};
