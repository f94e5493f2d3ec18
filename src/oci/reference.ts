/** Docker-style image references: alpine:3.20 → docker.io/library/alpine:3.20. */

import { isDigest, type Digest } from "./digest";

export interface Reference {
  /** Registry host as written by the user after normalisation, e.g. docker.io, ghcr.io, localhost:5000. */
  registry: string;
  /** Repository path, e.g. library/alpine. */
  repository: string;
  tag?: string;
  digest?: Digest;
}

export const DOCKER_HUB = "docker.io";
export const DOCKER_HUB_API = "registry-1.docker.io";

const pathComponent = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const tagPattern = /^[\w][\w.-]{0,127}$/;
const hostPattern =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$/;

export function parseReference(input: string): Reference {
  const text = input.trim();
  if (text.length === 0 || text.length > 512) throw new Error(`invalid reference "${input}"`);
  let rest = text;
  let digest: Digest | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) throw new Error(`invalid reference "${input}": bad digest "${d}" (expected sha256:<64 hex>)`);
    digest = d;
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!tagPattern.test(tag)) throw new Error(`invalid reference "${input}": bad tag "${tag}"`);
  }
  let registry = DOCKER_HUB;
  let repository = rest;
  const slash = rest.indexOf("/");
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes(".") || first.includes(":") || first === "localhost" || first !== first.toLowerCase()) {
      registry = first;
      repository = rest.slice(slash + 1);
    }
  }
  if (registry === "index.docker.io" || registry === DOCKER_HUB_API) registry = DOCKER_HUB;
  if (!hostPattern.test(registry)) throw new Error(`invalid reference "${input}": bad registry host "${registry}"`);
  if (registry === DOCKER_HUB && !repository.includes("/")) repository = `library/${repository}`;
  if (repository.length === 0 || !repository.split("/").every((c) => pathComponent.test(c))) {
    throw new Error(
      `invalid reference "${input}": repository names are lower-case letters, digits and separators (. _ __ -)`,
    );
  }
  if (!tag && !digest) tag = "latest";
  const ref: Reference = { registry, repository };
  if (tag) ref.tag = tag;
  if (digest) ref.digest = digest;
  return ref;
}

/** Full normalised name, e.g. docker.io/library/alpine:3.20 or ghcr.io/x/y@sha256:… */
export function formatReference(ref: Reference): string {
  let s = `${ref.registry}/${ref.repository}`;
  if (ref.tag) s += `:${ref.tag}`;
  if (ref.digest) s += `@${ref.digest}`;
  return s;
}

/** Name without digest, used for RepoTags and containerd image names. */
export function formatTagged(ref: Reference): string {
  return `${ref.registry}/${ref.repository}:${ref.tag ?? "latest"}`;
}

/**
 * The name an image gets where it is written. A digest-only name (repo@sha256:…) must name what it
 * points at, so it takes the digest actually written (a converted or platform-filtered root differs
 * from the pin); names with a tag keep the tag, as docker and containerd do.
 */
export function nameForDigest(name: string, digest: Digest): string {
  let ref: Reference;
  try {
    ref = parseReference(name);
  } catch {
    return name;
  }
  if (!ref.digest || ref.tag) return name;
  return `${ref.registry}/${ref.repository}@${digest}`;
}

/** The digest a digest-only name pins, or undefined for tagged names. */
export function pinnedDigest(name: string): Digest | undefined {
  try {
    const ref = parseReference(name);
    return ref.tag ? undefined : ref.digest;
  } catch {
    return undefined;
  }
}

/** Normalise a user-written image name, e.g. for a --tag option. */
export function normalizeName(input: string): string {
  return formatReference(parseReference(input));
}

/** normalizeName, or undefined when the input is not a valid reference. */
export function tryNormalizeName(input: string): string | undefined {
  try {
    return normalizeName(input);
  } catch {
    return undefined;
  }
}
