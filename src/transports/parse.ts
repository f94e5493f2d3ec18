import { stat } from "node:fs/promises";
import { DirTree, TarTree } from "../util/files";
import { DockerArchiveSource } from "./docker-archive";
import { OciLayoutSource } from "./layout";
import type { ImageSource } from "./types";
import { RegistrySource } from "./registry";
import type { RegistryClient } from "../registry/client";
import { fileErrorReason, isSystemError, UsageError } from "../util/errors";
import { parseReference } from "../oci/reference";

export type TransportName = "oci" | "oci-archive" | "docker-archive" | "docker" | "bundle";

export interface SourceSpec {
  transport: TransportName;
  /** Path for local transports, reference for docker://. */
  target: string;
  selector?: string;
  text: string;
}

/**
 * "oci:DIR[:tag]", "oci-archive:FILE[:tag]", "docker-archive:FILE[:ref]", "bundle:FILE" (or
 * "bundle:-" for stdin), "docker://ref" or a plain ref.
 */
export function parseSourceSpec(text: string): SourceSpec {
  if (text.startsWith("bundle:")) {
    const target = text.slice("bundle:".length);
    if (target === "") throw new UsageError(`${text}: missing path after "bundle:" (a bundle file, or - for stdin)`);
    return { transport: "bundle", target, text };
  }
  const m = /^(oci|oci-archive|docker-archive):(.*)$/.exec(text);
  if (m) {
    const transport = m[1] as TransportName;
    const rest = m[2]!;
    const colon = rest.indexOf(":");
    const target = colon >= 0 ? rest.slice(0, colon) : rest;
    const selector = colon >= 0 ? rest.slice(colon + 1) : undefined;
    if (target === "") throw new UsageError(`${text}: missing path after "${transport}:"`);
    return { transport, target, ...(selector ? { selector } : {}), text };
  }
  if (text.startsWith("docker://")) return { transport: "docker", target: text.slice("docker://".length), text };
  if (/^[a-z-]+:\/\//.test(text))
    throw new UsageError(`${text}: unknown transport (use oci:, oci-archive:, docker-archive:, bundle: or docker://)`);
  return { transport: "docker", target: text, text };
}

/** The registry hosts docker:// sources name, for the registry client's credentials. */
export function registryHosts(specs: SourceSpec[]): string[] {
  return specs.filter((s) => s.transport === "docker").map((s) => parseReference(s.target).registry);
}

export interface SourceContext {
  /** Needed for docker:// sources. */
  registry?: RegistryClient;
}

/** Open a source of the transports below bundles (bundle:… opens in bundle/open.ts). */
export async function openLocalOrRegistrySource(spec: SourceSpec, ctx: SourceContext = {}): Promise<ImageSource> {
  switch (spec.transport) {
    case "bundle":
      throw new Error(`${spec.text}: bundles are opened by bundle/open.ts`);
    case "oci": {
      const s = await stat(spec.target).catch(() => undefined);
      if (!s?.isDirectory()) throw new Error(`${spec.text}: ${spec.target} is not a directory`);
      return new OciLayoutSource(new DirTree(spec.target), spec.text, spec.selector);
    }
    case "oci-archive":
      return new OciLayoutSource(await openArchive(spec), spec.text, spec.selector);
    case "docker-archive":
      return new DockerArchiveSource(await openArchive(spec), spec.text, spec.selector);
    case "docker":
      if (!ctx.registry) throw new Error(`${spec.text}: registry access is not set up for this command`);
      return new RegistrySource(ctx.registry, spec.target, spec.text);
  }
}

/** A source archive's tar index; an error of the system names the source. */
async function openArchive(spec: SourceSpec): Promise<TarTree> {
  if ((await stat(spec.target).catch(() => undefined))?.isDirectory()) {
    throw new Error(
      `${spec.text}: ${spec.target} is a directory, not a tar file (read an OCI layout directory with oci:DIR)`,
    );
  }
  try {
    return await TarTree.open(spec.target);
  } catch (err) {
    if (!isSystemError(err)) throw err;
    throw new Error(`${spec.text}: cannot read (${fileErrorReason(err)})`, { cause: err });
  }
}
