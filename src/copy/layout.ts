import type { Readable } from "node:stream";
import type { Descriptor } from "../oci/descriptor";
import { planLayout, type LayoutPlan } from "../transports/plan";
import type { ImageSource, LayoutFiles, LayoutSink, NamedImage } from "../transports/types";
import { metered, type ProgressListener } from "../util/progress";

export interface CopyToLayoutOptions {
  /** Blobs to include that no image reaches (a bundle's recorded original index). */
  extraBlobs?: Descriptor[];
  /** Turns the plan into the layout's top-level files (bundles add airpack.json). */
  files: (plan: LayoutPlan) => LayoutFiles;
  /**
   * Layers asked of the source before the one being written (default 1: none ahead). A bundle
   * source uses the time to spool and rebuild recipe layers on other cores.
   */
  ahead?: number;
  /** Runs after the last blob, before the sink commits (a bundle source checks its completeness). */
  beforeCommit?: () => Promise<void>;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
  /** Leave out names that hold no runnable image (see planLayout). */
  imagesOnly?: boolean;
  /** Layers left out of the layout (see PlanOptions.absent). */
  absent?: ReadonlySet<string>;
}

/**
 * Copy named images from any source into a layout sink (OCI directory, oci-/docker-archive,
 * bundle): the plan first, then every manifest and config, then every layer in layout order.
 * On any failure the sink throws away what it wrote.
 */
export async function copyToLayout(
  source: ImageSource,
  images: NamedImage[],
  sink: LayoutSink,
  opts: CopyToLayoutOptions,
): Promise<LayoutPlan> {
  const opened: Promise<Readable>[] = [];
  const taken = new Set<number>();
  try {
    const plan = await planLayout(source, images, {
      ...(opts.extraBlobs ? { extra: opts.extraBlobs } : {}),
      ...(opts.imagesOnly ? { imagesOnly: true } : {}),
      ...(opts.absent ? { absent: opts.absent } : {}),
    });
    await sink.begin(opts.files(plan));
    for (const { desc, bytes } of plan.small) await sink.putSmall(desc, bytes, `blob ${desc.digest}`);
    const ahead = Math.max(1, opts.ahead ?? 1);
    const open = (i: number): void => {
      const layer = plan.layers[i];
      if (!layer || i in opened) return;
      opened[i] = source.blob(layer, `layer ${layer.digest}`, opts.signal);
      opened[i].catch(() => undefined);
    };
    for (const [i, layer] of plan.layers.entries()) {
      for (let j = i; j < i + ahead; j++) open(j);
      taken.add(i);
      const data = await opened[i]!;
      const counted = metered(data, `tar:${layer.digest}`, "bundle", layer.size, opts.onProgress);
      await sink.putBlob(layer, counted, `layer ${layer.digest}`, opts.signal);
    }
    await opts.beforeCommit?.();
    await sink.close();
    return plan;
  } catch (err) {
    // Streams opened ahead and never written hold files open (and a bundle's reader): let them go.
    for (const [i, p] of opened.entries()) {
      if (!taken.has(i))
        void p?.then(
          (s) => s.destroy(),
          () => undefined,
        );
    }
    await sink.abort();
    throw err;
  }
}
