/**
 * The shapes of other projects' public test data, rebuilt by fixtures/make-peer-shapes.py (see
 * fixtures/README.md, "Peer shapes"): running the script and reading its shapes.json.
 */
import { execFileSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";

import { REPO_ROOT } from "./cli";

/** One image a shape holds: the name airpack gives it, and the skopeo reference of the same input. */
/** The shapes fixtures/make-peer-shapes.py writes by hand (the rest come from podman, skopeo and umoci). */
export const HAND_MADE_SHAPES = [
  "nested-index",
  "no-names-one",
  "no-names-two",
  "many-names",
  "same-name-twice",
  "descriptor-type",
  "unknown-type",
  "referrers",
  "index-fields",
  "helm-chart",
  "sha512",
  "empty-layers",
  "zstd-variants",
  "dot-slash",
  "crane-tarball",
  "moby-dedupe",
  "docker25-two-tags",
  "docker25-partial",
  "gzipped-save",
  "null-manifest",
  "repositories-only",
] as const;

export interface PeerShapeImage {
  name: string;
  /** skopeo reference relative to the output directory; null where skopeo 1.9 cannot read the shape. */
  skopeo: string | null;
  /** Not a runnable image (an SBOM, a signature, a Helm chart): not imported into ctr or podman. */
  artifact?: boolean;
  /** The platform taken from an index whose other platforms are missing. */
  platform?: string;
  /** Where skopeo cannot read it: its position in the layout's index.json (read with node:crypto instead). */
  entry?: number;
}

/** One entry of shapes.json. */
export interface PeerShape {
  name: string;
  /** Source spec whose path is relative to the output directory. */
  source: string;
  /** Which project's test data has the shape. */
  from: string;
  valid: boolean;
  /** For invalid shapes: a pattern of the one error line. */
  error?: string;
  packArgs?: string[];
  note?: string;
  images?: PeerShapeImage[];
}

/** Runs make-peer-shapes.py into dir and returns its shapes. */
export async function makePeerShapes(dir: string): Promise<PeerShape[]> {
  execFileSync("python3", [join(REPO_ROOT, "fixtures", "make-peer-shapes.py"), dir]);
  return JSON.parse(await readFile(join(dir, "shapes.json"), "utf8")) as PeerShape[];
}

/** A source spec or skopeo reference ("transport:path[:tag]") with a relative path resolved under dir. */
export function specIn(dir: string, spec: string): string {
  const colon = spec.indexOf(":");
  return `${spec.slice(0, colon)}:${resolve(dir, spec.slice(colon + 1))}`;
}
