import { openLocalOrRegistrySource, type SourceContext, type SourceSpec } from "../transports/parse";
import type { ImageSource } from "../transports/types";
import { BundleSource } from "./source";

/** Open any source a command names, bundles included (they live above the other transports). */
export async function openSource(spec: SourceSpec, ctx: SourceContext = {}): Promise<ImageSource> {
  if (spec.transport === "bundle") return BundleSource.open(spec.target);
  return openLocalOrRegistrySource(spec, ctx);
}
