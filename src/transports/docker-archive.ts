import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Writable } from "node:stream";
import { sniffCompression } from "../compression/sniff";
import { checkBytes, encodeJson, MAX_JSON_BYTES, parseConfig, parseJson, type Descriptor } from "../oci/descriptor";
import { DigestStream, sha256, type Digest } from "../oci/digest";
import { layerMediaType, MediaType } from "../oci/mediatypes";
import { normalizeName, tryNormalizeName } from "../oci/reference";
import type { FileTree } from "../util/files";
import { OciLayoutSource, repoFromPath } from "./layout";
import type { ImageSource, NamedImage } from "./types";
import { verifiedStream } from "./verify";
import { parseDockerManifest, type DockerManifestEntry } from "../oci/docker-manifest";

/** A blob that lives at a path in the archive rather than under its digest. */
interface PathBlob {
  path: string;
  desc: Descriptor;
}

/**
 * Reads `docker save` / `podman save` output. Docker 25+ archives are OCI layouts and are read
 * as such (manifest digests preserved); the classic layout gets a synthesised v2s2 manifest.
 */
export class DockerArchiveSource implements ImageSource {
  private readonly byDigest = new Map<string, PathBlob>();
  private readonly small = new Map<string, Uint8Array>();
  private oci?: OciLayoutSource;

  constructor(
    private readonly tree: FileTree,
    readonly label: string,
    private readonly selector?: string,
  ) {}

  async images(): Promise<NamedImage[]> {
    if ((await this.tree.exists("index.json")) && (await this.tree.exists("oci-layout")) && (await this.indexLists())) {
      this.oci = new OciLayoutSource(this.tree, this.label, this.selector);
      return this.oci.images();
    }
    if (!(await this.tree.exists("manifest.json"))) {
      throw new Error(`${this.label}: not a docker archive (no manifest.json)`);
    }
    const entries = parseDockerManifest(
      await this.tree.readSmall("manifest.json", MAX_JSON_BYTES),
      `${this.label}/manifest.json`,
    );
    const out: NamedImage[] = [];
    const repo = repoFromPath(this.tree.label);
    for (const [i, entry] of entries.entries()) {
      const names = entry.RepoTags.map((t) => normalizeName(t));
      if (this.selector !== undefined) {
        const sel = this.selector;
        const want = /^@\d+$/.test(sel) ? Number(sel.slice(1)) === i : names.includes(tryNormalizeName(sel) ?? sel);
        if (!want) continue;
      }
      const descriptor = await this.synthesise(entry, i);
      const tagged =
        names.length > 0 ? names : [normalizeName(`localhost/${repo}:${i === 0 ? "latest" : `image-${i}`}`)];
      // docker-archive:FILE:REF takes that one name, not every tag of the image.
      const selected =
        this.selector === undefined || /^@\d+$/.test(this.selector)
          ? tagged
          : tagged.filter((n) => n === (tryNormalizeName(this.selector!) ?? this.selector));
      for (const name of selected) out.push({ name, descriptor, source: this.label });
    }
    if (out.length === 0) {
      throw new Error(`${this.label}: no image${this.selector ? ` "${this.selector}"` : "s"} in manifest.json`);
    }
    return out;
  }

  /**
   * Whether index.json lists images. Docker 25+ saving an image by ID writes `"manifests": null`
   * there and names nothing: the image is then read from manifest.json, as from a classic archive.
   */
  private async indexLists(): Promise<boolean> {
    const doc = parseJson(await this.tree.readSmall("index.json", MAX_JSON_BYTES), `${this.label}/index.json`);
    const listed = Array.isArray(doc.manifests) && doc.manifests.length > 0;
    return listed || !(await this.tree.exists("manifest.json"));
  }

  private async synthesise(entry: DockerManifestEntry, i: number): Promise<Descriptor> {
    const errorLabel = `${this.label} image ${i}`;
    const configBytes = await this.tree.readSmall(entry.Config, MAX_JSON_BYTES);
    const config = parseConfig(configBytes, `${errorLabel} config`);
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== entry.Layers.length) {
      throw new Error(
        `${errorLabel}: config lists ${diffIds.length} diff_ids but manifest.json lists ${entry.Layers.length} layers`,
      );
    }
    const configDesc: Descriptor = {
      mediaType: MediaType.dockerConfig,
      digest: sha256(configBytes),
      size: configBytes.length,
    };
    this.small.set(configDesc.digest, configBytes);
    const layers: Descriptor[] = [];
    for (const path of entry.Layers) {
      const { digest, size, compression } = await this.measure(path, `${errorLabel} layer ${path}`);
      const desc: Descriptor = { mediaType: "", digest, size };
      desc.mediaType = layerMediaType("docker", compression === "zstd" ? "none" : compression);
      if (compression === "zstd") desc.mediaType = MediaType.ociLayerZstd;
      this.byDigest.set(digest, { path, desc });
      layers.push(desc);
    }
    const anyZstd = layers.some((l) => l.mediaType === MediaType.ociLayerZstd);
    if (anyZstd) {
      configDesc.mediaType = MediaType.ociConfig;
      for (const l of layers)
        l.mediaType = l.mediaType.replace("vnd.docker.image.rootfs.diff.tar", "vnd.oci.image.layer.v1.tar");
    }
    const manifest = {
      schemaVersion: 2,
      mediaType: anyZstd ? MediaType.ociManifest : MediaType.dockerManifest,
      config: configDesc,
      layers,
    };
    const bytes = encodeJson(manifest);
    const desc: Descriptor = { mediaType: manifest.mediaType, digest: sha256(bytes), size: bytes.length };
    this.small.set(desc.digest, bytes);
    return desc;
  }

  /** One streaming pass over a layer file: its sha256, size and compression. */
  private async measure(
    path: string,
    errorLabel: string,
  ): Promise<{ digest: Digest; size: number; compression: "gzip" | "zstd" | "none" }> {
    const size = await this.tree.size(path);
    const hasher = new DigestStream(undefined, errorLabel);
    let head: Buffer | undefined;
    await pipeline(
      this.tree.open(path),
      hasher,
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          if (!head) head = chunk.subarray(0, 16);
          cb();
        },
      }),
    );
    const result = hasher.digest;
    if (result.size !== size) throw new Error(`${errorLabel}: truncated`);
    const kind = sniffCompression(head ?? Buffer.alloc(0));
    if (kind === "xz") throw new Error(`${errorLabel}: xz-compressed layers are not supported`);
    return { ...result, compression: kind };
  }

  async fetchSmall(desc: Descriptor, errorLabel: string): Promise<Uint8Array> {
    if (this.oci) return this.oci.fetchSmall(desc, errorLabel);
    const bytes = this.small.get(desc.digest);
    if (!bytes) throw new Error(`${errorLabel}: ${desc.digest} is not in ${this.label}`);
    checkBytes(bytes, desc, errorLabel);
    return bytes;
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    if (this.oci) return this.oci.hasBlob(desc);
    return this.byDigest.has(desc.digest) || this.small.has(desc.digest);
  }

  async blob(desc: Descriptor, errorLabel: string, signal?: AbortSignal): Promise<Readable> {
    if (this.oci) return this.oci.blob(desc, errorLabel, signal);
    const found = this.byDigest.get(desc.digest);
    if (!found) throw new Error(`${errorLabel}: ${desc.digest} is not in ${this.label}`);
    return verifiedStream(this.tree.open(found.path), desc, errorLabel, signal);
  }

  async close(): Promise<void> {}
}
