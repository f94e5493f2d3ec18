import type { Readable } from "node:stream";
import type { Descriptor } from "../oci/descriptor";
import { encodeJson } from "../oci/descriptor";
import { blobPath } from "../transports/layout";
import type { ImageSource, NamedImage } from "../transports/types";
import type { ProgressListener } from "../util/progress";
import { meter } from "../util/progress";
import { METADATA_FILE, type BundleMetadata } from "./format";
import { planLayout, type LayoutPlan } from "../transports/plan";
import { TarWriter } from "./tar-writer";
import type { UnpackSink } from "./reader";

export const OCI_LAYOUT_JSON = '{"imageLayoutVersion":"1.0.0"}';

export interface LayoutTarOptions {
  metadata?: BundleMetadata;
  extraBlobs?: Descriptor[];
  mtime: Date;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
}

/** One entry of a bundle tar, in order; the parent directories come from newParentDirs(). */
export type BundleEntry = { path: string; bytes: Uint8Array; layer?: undefined } | { path: string; layer: Descriptor };

/** oci-layout, airpack.json, index.json, manifest.json, then manifests and configs, then layers. */
export function bundleEntries(plan: LayoutPlan, metadata?: BundleMetadata): BundleEntry[] {
  const entries: BundleEntry[] = [{ path: "oci-layout", bytes: Buffer.from(OCI_LAYOUT_JSON) }];
  if (metadata) entries.push({ path: METADATA_FILE, bytes: encodeJson(metadata) });
  entries.push({ path: "index.json", bytes: plan.indexJson });
  if (plan.dockerManifest.length > 0) entries.push({ path: "manifest.json", bytes: encodeJson(plan.dockerManifest) });
  for (const { desc, bytes } of plan.small) entries.push({ path: blobPath(desc), bytes });
  for (const layer of plan.layers) entries.push({ path: blobPath(layer), layer });
  return entries;
}

/**
 * Write named images from `source` as one OCI layout tar with a docker manifest.json (see
 * bundleEntries for the order). Returns the plan and a promise-bearing tar stream the caller pipes
 * to its destination.
 */
export function layoutTar(
  source: ImageSource,
  images: NamedImage[],
  opts: LayoutTarOptions,
): { stream: Readable; done: Promise<LayoutPlan> } {
  const tar = new TarWriter(opts.mtime);
  const done = (async () => {
    try {
      const plan = await planLayout(source, images, opts.extraBlobs ?? []);
      for (const entry of bundleEntries(plan, opts.metadata)) {
        const layer = entry.layer;
        if (!layer) {
          await tar.addBytes(entry.path, entry.bytes);
          continue;
        }
        const data = await source.blob(layer, `layer ${layer.digest}`, opts.signal);
        await tar.addStream(entry.path, layer.size, metered(data, layer, opts.onProgress), opts.signal);
      }
      tar.finalize();
      return plan;
    } catch (err) {
      tar.abort(err as Error);
      throw err;
    }
  })();
  return { stream: tar.output, done };
}

/** A layer's bytes counted on their way into the bundle (for the progress display). */
export function metered(data: Readable, layer: Descriptor, onProgress: ProgressListener | undefined): Readable {
  if (!onProgress) return data;
  const counted = data.pipe(meter(`tar:${layer.digest}`, "bundle", layer.size, onProgress));
  data.on("error", (err) => counted.destroy(err));
  return counted;
}

/** Feed a planned layout into an unpack sink (layout directory or archive), verifying every blob again. */
export async function writePlan(
  source: ImageSource,
  plan: LayoutPlan,
  sink: UnpackSink,
  signal?: AbortSignal,
): Promise<void> {
  try {
    await sink.file("oci-layout", Buffer.from(OCI_LAYOUT_JSON));
    await sink.file("index.json", plan.indexJson);
    if (plan.dockerManifest.length > 0) await sink.file("manifest.json", encodeJson(plan.dockerManifest));
    for (const { desc, bytes } of plan.small) await sink.smallBlob(desc, bytes);
    for (const layer of plan.layers) await sink.blob(layer, await source.blob(layer, `layer ${layer.digest}`, signal));
    await sink.commit();
  } catch (err) {
    await sink.abort();
    throw err;
  }
}
