import type { Readable } from "node:stream";
import { checkBytes, MAX_JSON_BYTES, parseJson, sniffManifestType, type Descriptor } from "../oci/descriptor";
import { sha256, shortDigest } from "../oci/digest";
import { isIndex, isManifest, isSchema1, MediaType } from "../oci/mediatypes";
import { formatReference, formatTagged, parseReference, type Reference } from "../oci/reference";
import { headerValue, resumableBlob, statusError, type RegistryClient } from "../registry/client";
import { readBody } from "../registry/http";
import type { ImageSource, NamedImage } from "./types";
import { verifiedStream } from "./verify";

export const MANIFEST_ACCEPT = [
  MediaType.ociIndex,
  MediaType.ociManifest,
  MediaType.dockerManifestList,
  MediaType.dockerManifest,
].join(", ");

/** docker:// — one image reference on a registry. */
export class RegistrySource implements ImageSource {
  readonly ref: Reference;
  private readonly fetched = new Map<string, Uint8Array>();

  constructor(
    private readonly client: RegistryClient,
    reference: string,
    readonly label: string,
  ) {
    this.ref = parseReference(reference);
  }

  private get repoLabel(): string {
    return `${this.ref.registry}/${this.ref.repository}`;
  }

  /** GET a manifest by tag or digest; checks Docker-Content-Digest and the requested digest. */
  private async getManifest(reference: string, errorLabel: string): Promise<{ bytes: Buffer; desc: Descriptor }> {
    const res = await this.client.send(
      this.ref.registry,
      this.ref.repository,
      `${this.ref.repository}/manifests/${reference}`,
      {
        headers: { accept: MANIFEST_ACCEPT },
      },
    );
    if (res.status !== 200) throw await statusError(res, errorLabel);
    const bytes = await readBody(res, MAX_JSON_BYTES);
    const digest = sha256(bytes);
    const header = headerValue(res, "docker-content-digest");
    if (header && header.startsWith("sha256:") && header !== digest) {
      throw new Error(
        `${errorLabel}: manifest digest mismatch (registry says ${shortDigest(header)}…, content is ${shortDigest(digest)}…)`,
      );
    }
    if (reference.startsWith("sha256:") && reference !== digest) {
      throw new Error(
        `${errorLabel}: manifest digest mismatch (asked for ${shortDigest(reference)}…, got ${shortDigest(digest)}…)`,
      );
    }
    const doc = parseJson(bytes, errorLabel);
    const contentType = (headerValue(res, "content-type") ?? "").split(";")[0]!.trim();
    const mediaType = sniffManifestType(doc) ?? contentType;
    if (isSchema1(mediaType) || isSchema1(contentType) || doc.schemaVersion === 1) {
      throw new Error(
        `${errorLabel}: Docker schema 1 manifests are not supported (deprecated); re-push the image with a current client`,
      );
    }
    const desc: Descriptor = {
      mediaType: isIndex(mediaType) || isManifest(mediaType) ? mediaType : contentType || mediaType,
      digest,
      size: bytes.length,
    };
    this.fetched.set(digest, bytes);
    return { bytes, desc };
  }

  async images(): Promise<NamedImage[]> {
    const errorLabel = formatReference(this.ref);
    const { desc } = await this.getManifest(this.ref.digest ?? this.ref.tag ?? "latest", errorLabel);
    // With tag+digest the digest wins (it was checked above); the tag names it.
    const name = this.ref.tag ? formatTagged(this.ref) : formatReference(this.ref);
    const moved = this.ref.tag && this.ref.digest ? await this.tagNowAt(this.ref.tag) : undefined;
    const warnings =
      moved && moved !== desc.digest
        ? [
            `${errorLabel}: the tag ${this.ref.tag} now points at ${shortDigest(moved)}…; ` +
              `packing the pinned ${shortDigest(desc.digest)}… under the name ${name}`,
          ]
        : [];
    return [{ name, descriptor: desc, source: this.label, ...(warnings.length ? { warnings } : {}) }];
  }

  /** Where a tag points now (HEAD), or undefined when the registry doesn't say. */
  private async tagNowAt(tag: string): Promise<string | undefined> {
    const res = await this.client.send(
      this.ref.registry,
      this.ref.repository,
      `${this.ref.repository}/manifests/${tag}`,
      { method: "HEAD", headers: { accept: MANIFEST_ACCEPT } },
    );
    res.body.resume();
    return res.status === 200 ? headerValue(res, "docker-content-digest") : undefined;
  }

  async fetchSmall(desc: Descriptor, errorLabel: string): Promise<Uint8Array> {
    if (desc.size > MAX_JSON_BYTES)
      throw new Error(`${errorLabel}: ${desc.size} bytes, over the ${MAX_JSON_BYTES}-byte limit`);
    const cached = this.fetched.get(desc.digest);
    if (cached) {
      checkBytes(cached, desc, errorLabel);
      return cached;
    }
    // Manifests and indexes come from /manifests/; configs and other JSON from /blobs/.
    if (isIndex(desc.mediaType) || isManifest(desc.mediaType) || isSchema1(desc.mediaType)) {
      const { bytes } = await this.getManifest(desc.digest, errorLabel);
      checkBytes(bytes, desc, errorLabel);
      return bytes;
    }
    const res = await this.client.send(
      this.ref.registry,
      this.ref.repository,
      `${this.ref.repository}/blobs/${desc.digest}`,
      {},
    );
    if (res.status !== 200)
      throw await statusError(res, `${errorLabel} (${shortDigest(desc.digest)}… in ${this.repoLabel})`);
    const bytes = await readBody(res, MAX_JSON_BYTES);
    checkBytes(bytes, desc, errorLabel);
    return bytes;
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    const res = await this.client.send(
      this.ref.registry,
      this.ref.repository,
      `${this.ref.repository}/blobs/${desc.digest}`,
      { method: "HEAD" },
    );
    res.body.resume();
    return res.status === 200;
  }

  async blob(desc: Descriptor, errorLabel: string, signal?: AbortSignal): Promise<Readable> {
    return verifiedStream(await this.blobUnchecked(desc, errorLabel, signal), desc, errorLabel, signal);
  }

  /** The download as it comes (resumed on a cut); Store.putBlob checks it on its hash thread. */
  async blobUnchecked(desc: Descriptor, errorLabel: string, signal?: AbortSignal): Promise<Readable> {
    return resumableBlob(
      this.client,
      this.ref.registry,
      this.ref.repository,
      desc.digest,
      desc.size,
      errorLabel,
      signal,
    );
  }

  async close(): Promise<void> {}
}
