import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { isRunnableImage, parseConfig, parseManifest, type Descriptor } from "../oci/descriptor";
import { shortDigest, type Digest } from "../oci/digest";
import { isManifest, layerCompression } from "../oci/mediatypes";
import { decompressLayer } from "../compression/codecs";
import { diffIdCheck } from "../copy/diff-id";
import type { LayoutPlan } from "../transports/plan";
import type { ImageSource, LayoutSink } from "../transports/types";
import { discard, drain } from "../util/streams";

/**
 * verify --deep: what verify checks, and every layer's content against its config's diff_id. A
 * compressed layer (kept gzip or zstd, or one rebuilt from a recipe) is decompressed on the way and
 * stops at the first byte past what airpack.json records for it, or past the ratio bound
 * (ImageSource.uncompressedLimit); an uncompressed layer's digest must be its diff_id.
 */
export class DeepCheckSink implements LayoutSink {
  readonly label = "verify --deep";
  private readonly diffIds = new Map<Digest, { diffId: Digest; what: string }>();

  constructor(private readonly source: ImageSource) {}

  /** Learn each layer's diff_id from the plan's manifests and configs (before anything is streamed). */
  learn(plan: LayoutPlan): void {
    const small = new Map(plan.small.map((s) => [s.desc.digest, s.bytes]));
    for (const { desc, bytes } of plan.small) {
      if (!isManifest(desc.mediaType)) continue;
      const what = `manifest ${shortDigest(desc.digest)}…`;
      const m = parseManifest(bytes, what);
      const configBytes = small.get(m.config.digest);
      if (!isRunnableImage(m) || !configBytes) continue;
      const diffIds = parseConfig(configBytes, `${what} config`).rootfs?.diff_ids ?? [];
      if (diffIds.length !== m.layers.length) {
        throw new Error(`${what}: config lists ${diffIds.length} diff_ids for ${m.layers.length} layers`);
      }
      m.layers.forEach((l, i) => {
        const prior = this.diffIds.get(l.digest);
        if (prior && prior.diffId !== diffIds[i]) {
          throw new Error(
            `layer ${shortDigest(l.digest)}…: ${prior.what} and ${what} give it different diff_ids (${shortDigest(prior.diffId)}… and ${shortDigest(diffIds[i]!)}…)`,
          );
        }
        this.diffIds.set(l.digest, { diffId: diffIds[i]!, what });
      });
    }
  }

  async begin(): Promise<void> {}
  async hasBlob(): Promise<boolean> {
    return false;
  }
  async putSmall(): Promise<void> {}

  async putBlob(desc: Descriptor, data: Readable): Promise<void> {
    const label = `${this.source.label}: layer ${shortDigest(desc.digest)}…`;
    const known = this.diffIds.get(desc.digest);
    const compression = layerCompression(desc.mediaType);
    if (!known || compression === undefined) {
      await drain(data);
      return;
    }
    if (compression === "none") {
      if (desc.digest !== known.diffId) {
        data.destroy();
        throw new Error(
          `${label}: an uncompressed layer whose digest is not its diff_id ${shortDigest(known.diffId)}… (${known.what})`,
        );
      }
      await drain(data);
      return;
    }
    const limit = this.source.uncompressedLimit?.(desc);
    await pipeline(data, decompressLayer(compression, label), diffIdCheck(known.diffId, label, limit), discard());
  }

  async tag(): Promise<void> {}
  async close(): Promise<void> {}
  async abort(): Promise<void> {}
}
