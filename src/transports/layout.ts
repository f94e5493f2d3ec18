import { basename } from "node:path";
import type { Readable } from "node:stream";
import { checkBytes, Annotation, MAX_JSON_BYTES, parseIndex, parseOciLayout, type Descriptor } from "../oci/descriptor";
import { digestHex } from "../oci/digest";
import { normalizeName, tryNormalizeName } from "../oci/reference";
import type { FileTree } from "../util/files";
import type { ImageSource, NamedImage } from "./types";
import { verifiedStream } from "./verify";

export function blobPath(desc: Pick<Descriptor, "digest">): string {
  return `blobs/sha256/${digestHex(desc.digest)}`;
}

/**
 * The name an index.json entry gives an image. io.containerd.image.name wins; a ref.name
 * that looks like a full reference is used as is; a bare tag is put under `localhost/<fallbackRepo>`.
 */
export function entryName(desc: Descriptor, fallbackRepo: string): string | undefined {
  const containerd = desc.annotations?.[Annotation.containerdName];
  if (containerd) return normalizeName(containerd);
  const ref = desc.annotations?.[Annotation.refName];
  if (!ref) return undefined;
  if (ref.includes("/") || ref.includes(":") || ref.includes("@")) return normalizeName(ref);
  return normalizeName(`localhost/${fallbackRepo}:${ref}`);
}

/** A repository name derived from a file or directory name: "fixtures/out/my-app.oci.tar" → "my-app". */
export function repoFromPath(path: string): string {
  const base = basename(path.replace(/\/+$/, "")).replace(/(\.oci)?(\.tar)?(\.(gz|xz|zst))?$/i, "");
  const cleaned = base
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-")
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, "");
  return cleaned || "image";
}

/** Reads an OCI image layout held in a directory or a tar (oci:, oci-archive:, Docker 25+ archives). */
export class OciLayoutSource implements ImageSource {
  constructor(
    protected readonly tree: FileTree,
    readonly label: string,
    private readonly selector?: string,
  ) {}

  async readIndex(): Promise<Descriptor[]> {
    if (!(await this.tree.exists("index.json"))) {
      throw new Error(`${this.tree.label}: not an OCI image layout (no index.json)`);
    }
    if (await this.tree.exists("oci-layout")) {
      parseOciLayout(await this.tree.readSmall("oci-layout", 64 * 1024), `${this.tree.label}/oci-layout`);
    }
    const bytes = await this.tree.readSmall("index.json", MAX_JSON_BYTES);
    return parseIndex(bytes, `${this.tree.label}/index.json`).manifests;
  }

  async images(): Promise<NamedImage[]> {
    const entries = await this.readIndex();
    const repo = repoFromPath(this.tree.label);
    const all = entries.map((descriptor, i) => ({
      name: entryName(descriptor, repo) ?? normalizeName(`localhost/${repo}:${i === 0 ? "latest" : `image-${i}`}`),
      descriptor,
      tag: descriptor.annotations?.[Annotation.refName],
    }));
    let chosen = all;
    if (this.selector !== undefined) {
      const sel = this.selector;
      chosen = all.filter(
        (e) =>
          e.tag === sel ||
          e.name === sel ||
          e.descriptor.digest === sel ||
          (sel.includes("/") || sel.includes(":") ? tryNormalizeName(sel) === e.name : false),
      );
      if (chosen.length === 0) {
        const known = all.map((e) => e.tag ?? e.name).join(", ") || "none";
        throw new Error(`${this.label}: no image "${sel}" in index.json (has: ${known})`);
      }
    }
    if (chosen.length === 0) throw new Error(`${this.label}: index.json lists no images`);
    return chosen.map(({ name, descriptor }) => ({ name, descriptor, source: this.label }));
  }

  async fetchSmall(desc: Descriptor, errorLabel: string): Promise<Uint8Array> {
    if (desc.size > MAX_JSON_BYTES)
      throw new Error(`${errorLabel}: ${desc.size} bytes, over the ${MAX_JSON_BYTES}-byte limit`);
    const path = blobPath(desc);
    if (!(await this.tree.exists(path)))
      throw new Error(`${errorLabel}: blob ${desc.digest} is missing from ${this.tree.label}`);
    const bytes = await this.tree.readSmall(path, MAX_JSON_BYTES);
    checkBytes(bytes, desc, errorLabel);
    return bytes;
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    return this.tree.exists(blobPath(desc));
  }

  async blob(desc: Descriptor, errorLabel: string, signal?: AbortSignal): Promise<Readable> {
    const path = blobPath(desc);
    if (!(await this.tree.exists(path)))
      throw new Error(`${errorLabel}: blob ${desc.digest} is missing from ${this.tree.label}`);
    return verifiedStream(this.tree.open(path), desc, errorLabel, signal);
  }

  async close(): Promise<void> {}
}
