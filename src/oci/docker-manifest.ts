import { parseJson } from "./descriptor";
import { schemaCheck } from "./schema";

/** One image of a docker `manifest.json` (docker save / docker load), paths relative to the archive root. */
export interface DockerManifestEntry {
  Config: string;
  RepoTags: string[];
  Layers: string[];
}

export const DOCKER_MANIFEST_FILE = "manifest.json";

const checkDockerManifest =
  schemaCheck<(Omit<DockerManifestEntry, "RepoTags"> & { RepoTags?: string[] | null })[]>("docker-manifest.json");

/**
 * Parse a docker manifest.json, a JSON array. parseJson only takes objects (its size cap and
 * error wording are what every document gets), so the array is parsed wrapped in one.
 */
export function parseDockerManifest(bytes: Uint8Array, label: string): DockerManifestEntry[] {
  const wrapped = parseJson(Buffer.concat([Buffer.from('{"m":'), Buffer.from(bytes), Buffer.from("}")]), label);
  return checkDockerManifest(wrapped.m, label).map((e) => ({
    Config: e.Config,
    Layers: e.Layers,
    RepoTags: e.RepoTags ?? [],
  }));
}

/**
 * The RepoTags entry for a name: the full normalised reference. docker load shortens
 * docker.io/library/x to x itself; podman keeps a full name but reads a short one of a multi-image
 * archive as localhost/x. Digest-only names get no tag.
 */
export function dockerTag(name: string): string | undefined {
  if (name.includes("@")) return undefined;
  const lastSlash = name.lastIndexOf("/");
  if (name.lastIndexOf(":") <= lastSlash) return undefined;
  return name;
}
