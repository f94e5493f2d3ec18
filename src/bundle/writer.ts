import type { Descriptor } from "../oci/descriptor";
import { encodeJson } from "../oci/descriptor";
import { blobPath } from "../transports/layout";
import type { LayoutPlan } from "../transports/plan";
import type { LayoutFiles } from "../transports/types";
import { METADATA_FILE, type BundleMetadata } from "./format";
import { MediaType } from "../oci/mediatypes";

/** On a delta bundle's (empty) index.json: its images are in airpack.json, and need a base. */
export const DELTA_ANNOTATION = "dev.airpack.delta.needs-base";

export const OCI_LAYOUT_JSON = '{"imageLayoutVersion":"1.0.0"}';

/** One entry of a bundle tar, in order; the parent directories come from newParentDirs(). */
export type BundleEntry = { path: string; bytes: Uint8Array; layer?: undefined } | { path: string; layer: Descriptor };

/** The top-level files of a layout tar, in the order every writer uses: oci-layout, airpack.json, index.json, manifest.json. */
export function topLevelEntries(files: LayoutFiles): { path: string; bytes: Uint8Array }[] {
  const entries = [{ path: "oci-layout", bytes: Buffer.from(OCI_LAYOUT_JSON) as Uint8Array }];
  if (files.metadata) entries.push({ path: METADATA_FILE, bytes: files.metadata });
  entries.push({ path: "index.json", bytes: files.indexJson });
  if (files.dockerManifest) entries.push({ path: "manifest.json", bytes: files.dockerManifest });
  return entries;
}

/**
 * The top-level files of a planned layout. A delta bundle's images go into airpack.json
 * (delta.index), its index.json lists none and it has no docker manifest.json: no importer loads
 * an image whose layers are elsewhere (see docs/bundle-format.md, "Delta bundles").
 */
export function layoutFiles(plan: LayoutPlan, metadata?: BundleMetadata): LayoutFiles {
  if (metadata?.delta) {
    const entries = (JSON.parse(plan.indexJson.toString("utf8")) as { manifests: Descriptor[] }).manifests;
    const index = {
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [],
      annotations: { [DELTA_ANNOTATION]: "true" },
    };
    return {
      indexJson: encodeJson(index),
      dockerManifest: undefined,
      metadata: encodeJson({ ...metadata, delta: { ...metadata.delta, index: entries } }),
    };
  }
  return {
    indexJson: plan.indexJson,
    dockerManifest: plan.dockerManifest.length > 0 ? encodeJson(plan.dockerManifest) : undefined,
    ...(metadata ? { metadata: encodeJson(metadata) } : {}),
  };
}

/** Every entry of a bundle: the top-level files, then manifests and configs, then layers. */
export function bundleEntries(plan: LayoutPlan, metadata?: BundleMetadata): BundleEntry[] {
  const entries: BundleEntry[] = topLevelEntries(layoutFiles(plan, metadata));
  for (const { desc, bytes } of plan.small) entries.push({ path: blobPath(desc), bytes });
  for (const layer of plan.layers) entries.push({ path: blobPath(layer), layer });
  return entries;
}
