import type { Argv } from "yargs";
import type { CopyResult } from "../../bundle/push";
import { UsageError } from "../../util/errors";
import { defineCommand, examples } from "../command-module";
import { registryAccess, registryAccessOptions, type RegistryAccessArgs } from "../credentials";
import { log, type Globals } from "../globals";
import { formatBytes, printJson } from "../output";
import { createReporter } from "../progress";
import { checkCount } from "../validate";

/** Options push and copy share: the target registry's access, parallelism, what to send. */
function destinationOptions<T>(y: Argv<T>) {
  return registryAccessOptions(
    y
      .option("jobs", { alias: "j", type: "number", default: 4, describe: "blobs sent in parallel" })
      .option("dry-run", {
        type: "boolean",
        default: false,
        describe: "say what would be sent (blobs, manifests, tags, sizes) and what the target has; send nothing",
      })
      .option("restore-digests", {
        type: "boolean",
        default: true,
        describe: "rebuild recipe layers and send the original manifests (--no-restore-digests: the bundle's own form)",
      })
      .option("map", {
        type: "string",
        array: true,
        describe:
          "FROM=TO: put images named FROM (a full name, * for the rest) at TO below the registry, e.g. 'docker.io/library/*=mirror/*'",
      })
      .option("tag", {
        type: "string",
        describe: "tag for images that were packed by digest only (else pushed untagged)",
      }),
  );
}

interface DestinationArgs extends RegistryAccessArgs {
  jobs: number;
  "dry-run": boolean;
  "restore-digests": boolean;
  map?: string[];
  tag?: string;
  quiet?: boolean;
  json?: boolean;
}

async function runCopy(source: string, destination: string, a: DestinationArgs, signal: AbortSignal): Promise<void> {
  const g: Globals = { quiet: Boolean(a.quiet), json: Boolean(a.json) };
  if (a["password-stdin"] && (source === "bundle:-" || source === "-"))
    throw new UsageError("--password-stdin and a bundle on stdin both want stdin; pass the bundle as a file");
  const jobs = checkCount(a.jobs, "--jobs") ?? 4;
  const reporter = createReporter(!g.quiet && !g.json);
  const { copyImages } = await import("../../bundle/push.js");
  const result = await copyImages({
    source,
    destination,
    registry: { ...(await registryAccess(a)), signal },
    restoreDigests: a["restore-digests"],
    ...(a.map ? { maps: a.map } : {}),
    ...(a.tag ? { digestTag: a.tag } : {}),
    jobs,
    dryRun: a["dry-run"],
    ...(reporter.listener ? { onProgress: reporter.listener } : {}),
    signal,
  }).finally(() => reporter.stop());
  if (g.json) printJson(result);
  else printResult(g, result, a["dry-run"]);
}

function printResult(g: Globals, r: CopyResult, dryRun: boolean): void {
  if (r.kind === "layout") {
    for (const i of r.images) log(g, `copied ${i.name} ${i.digest}`);
    log(g, `wrote ${r.destination}`);
    return;
  }
  if (dryRun) {
    for (const p of r.plan)
      process.stdout.write(
        `${p.present ? "has " : "send"} ${p.kind.padEnd(8)} ${p.target} ${p.digest} ${formatBytes(p.size)}\n`,
      );
  }
  for (const i of r.images) log(g, `${dryRun ? "would push" : "pushed"} ${i.name} → ${i.target} (${i.digest})`);
  const b = r.blobs;
  log(
    g,
    dryRun
      ? `${r.plan.filter((p) => !p.present).length} of ${r.plan.length} items to send`
      : `${b.uploaded} blob(s) uploaded (${formatBytes(b.uploadedBytes)}), ${b.mounted} mounted, ${b.present} already there; ` +
          `${r.manifests.put} manifest(s) sent, ${r.manifests.present} already there`,
  );
}

export const pushCommand = defineCommand({
  command: "push <bundle> <registry>",
  describe: "push a bundle's images into a registry, with their original digests",
  builder: (y) =>
    destinationOptions(
      y
        .positional("bundle", { type: "string", demandOption: true, describe: "bundle file, or - for stdin" })
        .positional("registry", {
          type: "string",
          demandOption: true,
          describe: "REGISTRY[/PREFIX]: docker.io/library/alpine:3.20 goes to REGISTRY/PREFIX/library/alpine:3.20",
        }),
    ).epilogue(
      examples([
        ["into the site's registry, every digest as at the source", "push site.tar.xz registry.local:5000"],
        ["under a path", "push site.tar.xz registry.local:5000/mirror"],
        ["what would be sent, and what the registry has", "push site.tar.xz registry.local:5000 --dry-run"],
      ]),
    ),
  handler: async (a, signal) => {
    await runCopy(`bundle:${a.bundle}`, a.registry, a, signal);
  },
});

export const copyCommand = defineCommand({
  command: "copy <source> <destination>",
  describe: "copy images from any source to a registry or an OCI layout",
  builder: (y) =>
    destinationOptions(
      y
        .positional("source", {
          type: "string",
          demandOption: true,
          describe:
            "bundle:FILE, oci:DIR[:tag], oci-archive:FILE[:tag], docker-archive:FILE[:ref] or a registry reference",
        })
        .positional("destination", {
          type: "string",
          demandOption: true,
          describe: "docker://REGISTRY[/PREFIX] (or REGISTRY[/PREFIX]) or oci:DIR",
        }),
    ).epilogue(
      examples([
        ["a bundle into a registry", "copy bundle:site.tar.xz docker://registry.local:5000"],
        ["a bundle into an OCI layout, digests restored", "copy bundle:site.tar.xz oci:./layout"],
        ["an OCI layout into a registry", "copy oci:./layout docker://registry.local:5000/team"],
      ]),
    ),
  handler: async (a, signal) => {
    await runCopy(a.source, a.destination, a, signal);
  },
});
