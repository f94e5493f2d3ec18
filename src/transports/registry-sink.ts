import { Readable } from "node:stream";
import type { Descriptor } from "../oci/descriptor";
import { shortDigest } from "../oci/digest";
import { isIndex, isManifest } from "../oci/mediatypes";
import { headerValue, RegistryError, statusError, type RegistryClient } from "../registry/client";
import { NetworkError, type HttpResponse } from "../registry/http";
import type { ImageSink, NamedImage } from "./types";

/** Upload chunk: the most a blob upload holds in memory (a retry sends the same chunk again). */
export const UPLOAD_CHUNK = 8 << 20;

/** The registry no longer knows a blob's upload session: the blob must be sent again from its start. */
export class UploadLostError extends RegistryError {}

export interface UploadCounts {
  uploaded: number;
  uploadedBytes: number;
  mounted: number;
  present: number;
}

/**
 * docker:// as a destination: one repository on a registry (distribution API push). Blobs go up as
 * POST, then PATCH chunks with Content-Range, then PUT ?digest= (a blob of one chunk is one PUT);
 * manifests are PUT by digest, and tag() PUTs the root under its tag, which callers do last.
 */
export class RegistrySink implements ImageSink {
  readonly label: string;
  private readonly manifests = new Map<string, { mediaType: string; bytes: Uint8Array }>();
  readonly counts: UploadCounts = { uploaded: 0, uploadedBytes: 0, mounted: 0, present: 0 };
  /** AIRPACK_UPLOAD_CHUNK bytes per PATCH (tests use small ones to exercise chunked uploads). */
  private readonly chunkSize = Math.max(1024, Number(process.env.AIRPACK_UPLOAD_CHUNK) || UPLOAD_CHUNK);

  constructor(
    private readonly client: RegistryClient,
    readonly registry: string,
    readonly repository: string,
  ) {
    this.label = `${registry}/${repository}`;
  }

  private send(path: string | URL, init: Parameters<RegistryClient["send"]>[3]): Promise<HttpResponse> {
    return this.client.send(this.registry, this.repository, path, { actions: "pull,push", ...init });
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    const res = await this.send(`${this.repository}/blobs/${desc.digest}`, { method: "HEAD" });
    res.body.resume();
    return res.status === 200;
  }

  async hasManifest(desc: Descriptor): Promise<boolean> {
    const res = await this.send(`${this.repository}/manifests/${desc.digest}`, {
      method: "HEAD",
      headers: { accept: desc.mediaType },
    });
    res.body.resume();
    return res.status === 200;
  }

  /** Cross-repository mount from `from` on the same registry; false when the registry won't. */
  async mount(desc: Descriptor, from: string): Promise<boolean> {
    const q = new URLSearchParams({ mount: desc.digest, from });
    const res = await this.send(`${this.repository}/blobs/uploads/?${q}`, {
      method: "POST",
      body: Buffer.alloc(0),
      extraScope: `repository:${from}:pull`,
    });
    res.body.resume();
    if (res.status === 201) {
      this.counts.mounted++;
      return true;
    }
    // 202: the registry opened an ordinary upload instead; let it go.
    const location = headerValue(res, "location");
    if (res.status === 202 && location) {
      const cancel = await this.send(new URL(location, res.url), { method: "DELETE" }).catch(() => undefined);
      cancel?.body.resume();
    }
    return false;
  }

  async putBlob(desc: Descriptor, data: Readable, label: string, signal?: AbortSignal): Promise<void> {
    let location = await this.startUpload(label, signal);
    let sent = 0;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = async (last: boolean): Promise<void> => {
      const chunk = Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      if (last) {
        const url = new URL(location);
        url.searchParams.set("digest", desc.digest);
        const res = await this.send(url, {
          method: "PUT",
          body: chunk,
          headers: { "content-type": "application/octet-stream" },
          ...(signal ? { signal } : {}),
        });
        if (res.status !== 201) throw await statusError(res, `${label}: upload to ${this.label}`);
        res.body.resume();
        return;
      }
      location = await this.patch(location, chunk, sent, label, signal);
      sent += chunk.length;
    };
    for await (const piece of data) {
      const buf = piece as Buffer;
      pending.push(buf);
      pendingBytes += buf.length;
      if (pendingBytes >= this.chunkSize) await flush(false);
    }
    // The source checked digest and size as the stream ended: only now is the blob committed.
    await flush(true);
    this.counts.uploaded++;
    this.counts.uploadedBytes += desc.size;
  }

  /**
   * One chunk, sent once (a resend to a session that took it would be refused). When the
   * connection drops, the session is asked how far it got (GET: `Range: 0-N`) and the rest is sent.
   */
  private async patch(
    location: string,
    chunk: Buffer,
    sent: number,
    label: string,
    signal: AbortSignal | undefined,
  ): Promise<string> {
    let offset = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await this.send(new URL(location), {
          method: "PATCH",
          body: chunk.subarray(offset),
          once: true,
          headers: {
            "content-type": "application/octet-stream",
            "content-range": `${sent + offset}-${sent + chunk.length - 1}`,
          },
          ...(signal ? { signal } : {}),
        });
        if (res.status === 202) {
          res.body.resume();
          return this.nextLocation(res, location);
        }
        if (res.status !== 416 || attempt >= 4) throw await statusError(res, `${label}: upload to ${this.label}`);
        res.body.resume();
      } catch (err) {
        if (!(err instanceof NetworkError) || attempt >= 4) throw err;
      }
      const status = await this.send(new URL(location), { method: "GET", ...(signal ? { signal } : {}) });
      status.body.resume();
      if (status.status !== 204) {
        // distribution: each answer carries the session's next state; one lost answer loses the session.
        throw new UploadLostError(
          `${label}: ${this.label} lost the upload session (HTTP ${status.status} on asking how far it got)`,
        );
      }
      location = this.nextLocation(status, location);
      const have = Number(/^(?:bytes=)?0-(\d+)$/.exec(headerValue(status, "range") ?? "")?.[1] ?? -1) + 1;
      if (have < sent + offset || have > sent + chunk.length) {
        throw new UploadLostError(
          `${label}: ${this.label} holds ${have} bytes of the upload, expected ${sent}…${sent + chunk.length}`,
        );
      }
      offset = have - sent;
      if (offset === chunk.length) return location;
    }
  }

  private async startUpload(label: string, signal?: AbortSignal): Promise<string> {
    const res = await this.send(`${this.repository}/blobs/uploads/`, {
      method: "POST",
      body: Buffer.alloc(0),
      ...(signal ? { signal } : {}),
    });
    if (res.status !== 202) throw await statusError(res, `${label}: starting an upload to ${this.label}`);
    res.body.resume();
    return this.nextLocation(res, undefined);
  }

  private nextLocation(res: HttpResponse, previous: string | undefined): string {
    const location = headerValue(res, "location");
    if (!location) {
      if (previous) return previous;
      throw new RegistryError(`${this.label}: upload answer without a Location header`);
    }
    try {
      return new URL(location, res.url).toString();
    } catch {
      throw new RegistryError(`${this.label}: upload answer with a bad Location header ${JSON.stringify(location)}`);
    }
  }

  /** A config or other small blob as one PUT; a manifest or index by its digest. */
  async putSmall(desc: Descriptor, bytes: Uint8Array, label: string): Promise<void> {
    if (isManifest(desc.mediaType) || isIndex(desc.mediaType)) {
      this.manifests.set(desc.digest, { mediaType: desc.mediaType, bytes });
      await this.putManifest(desc.digest, desc.mediaType, bytes, label);
      return;
    }
    await this.putBlob(desc, Readable.from([Buffer.from(bytes)]), label);
  }

  private async putManifest(reference: string, mediaType: string, bytes: Uint8Array, label: string): Promise<void> {
    const res = await this.send(`${this.repository}/manifests/${reference}`, {
      method: "PUT",
      body: Buffer.from(bytes),
      headers: { "content-type": mediaType },
    });
    if (res.status !== 201 && res.status !== 200) throw await statusError(res, `${label}: manifest to ${this.label}`);
    res.body.resume();
    const digest = headerValue(res, "docker-content-digest");
    if (reference.startsWith("sha256:") && digest && digest !== reference) {
      throw new RegistryError(
        `${label}: ${this.label} stored the manifest as ${shortDigest(digest)}…, not ${shortDigest(reference)}…`,
      );
    }
  }

  /** The root's tag, last: the image is complete in the registry before any tag points at it. */
  async tag(image: NamedImage & { tag?: string }): Promise<void> {
    if (!image.tag) return;
    const root = this.manifests.get(image.descriptor.digest);
    if (!root) throw new Error(`${image.name}: its manifest was not pushed to ${this.label} before its tag`);
    await this.putManifest(image.tag, root.mediaType, root.bytes, image.name);
  }

  /** Remember a manifest the registry already had, so tag() can send it. */
  known(desc: Descriptor, bytes: Uint8Array): void {
    this.manifests.set(desc.digest, { mediaType: desc.mediaType, bytes });
  }

  async close(): Promise<void> {}
}
