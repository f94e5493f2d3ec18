import type { Readable } from "node:stream";
import type { Descriptor } from "../oci/descriptor";
import { encodeJson } from "../oci/descriptor";
import { blobPath } from "../transports/layout";
import type { ImageSource, NamedImage } from "../transports/types";
import type { ProgressListener } from "../util/progress";
import { meter } from "../util/progress";
import { METADATA_FILE, type BundleMetadata } from "./format";
import { planLayout, type LayoutPlan } from "./plan";
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

/**
 * Write named images from `source` as one OCI layout tar with a docker manifest.json:
 * oci-layout, airpack.json, index.json, manifest.json, then manifests and configs, then layers.
 * Returns the plan and a promise-bearing tar stream the caller pipes to its destination.
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
      await tar.addBytes("oci-layout", Buffer.from(OCI_LAYOUT_JSON));
      if (opts.metadata) await tar.addBytes(METADATA_FILE, encodeJson(opts.metadata));
      await tar.addBytes("index.json", plan.indexJson);
      if (plan.dockerManifest.length > 0) await tar.addBytes("manifest.json", encodeJson(plan.dockerManifest));
      for (const { desc, bytes } of plan.small) await tar.addBytes(blobPath(desc), bytes);
      for (const layer of plan.layers) {
        const what = `layer ${layer.digest}`;
        const data = await source.blob(layer, what, opts.signal);
        const metered = opts.onProgress
          ? data.pipe(meter(`tar:${layer.digest}`, "bundle", layer.size, opts.onProgress))
          : data;
        if (metered !== data) data.on("error", (err) => metered.destroy(err));
        await tar.addStream(blobPath(layer), layer.size, metered, opts.signal);
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
