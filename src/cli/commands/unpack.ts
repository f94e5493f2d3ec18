import { stat } from "node:fs/promises";
import { layerModes, type LayerMode } from "../../copy/layer-modes";
import { TARGETS, unpackTargets, type UnpackTarget } from "../../bundle/targets";
// The implementation loads when the command runs: a pack never pays for unpack's.
import type { UnpackFormat } from "../../bundle/unpack";
import { UsageError } from "../../util/errors";
import { defaultCacheDir } from "../cache-dir";
import { defineCommand, examples } from "../command-module";
import { log, type Globals } from "../globals";
import { printJson } from "../output";
import { createReporter } from "../progress";
import { checkTarget, nameMismatch } from "../validate";
import { registryAccess, registryAccessOptions } from "../credentials";

/** The zstd layers an output holds, in words; undefined when none. */
function zstdInOutput(layers: LayerMode | undefined, bundleZstd: number): string | undefined {
  if (layers === "zstd") return "only zstd layers";
  if (layers !== undefined && layers !== "keep") return undefined;
  return bundleZstd > 0 ? `${bundleZstd} zstd layer(s)` : undefined;
}

export const unpackCommand = defineCommand({
  command: "unpack <bundle>",
  describe: "verify a bundle and write an OCI layout or an importable tar",
  builder: (y) =>
    registryAccessOptions(y)
      .positional("bundle", { type: "string", describe: "bundle file, or - for stdin" })
      .option("base", {
        type: "string",
        describe: "a delta bundle's base (BUNDLE or oci:DIR): the blobs the delta relies on come from there",
      })
      .option("base-registry", {
        type: "string",
        describe: "a delta bundle's base as a registry (REG[/PREFIX] the base was pushed to)",
      })
      .option("output", {
        alias: "o",
        type: "string",
        demandOption: true,
        describe: "directory (--format oci), file, or - for stdout",
      })
      .option("format", {
        choices: ["oci", "oci-archive", "docker-archive"] as const,
        describe:
          "oci: a layout directory; oci-archive: a tar of it; docker-archive: the same tar plus docker's manifest.json, " +
          "which podman needs for several images (default: docker-archive; oci when -o is a directory or ends in /)",
      })
      .option("for", {
        choices: unpackTargets,
        describe:
          "write the form that importer takes: docker (docker-archive, zstd layers converted to gzip), " +
          "containerd and k3s (oci-archive), podman (docker-archive); layers are otherwise kept",
      })
      .option("force", {
        type: "boolean",
        default: false,
        describe: "replace an output directory that holds a different layout",
      })
      .option("layers", { choices: layerModes, describe: "convert layers again on the way out (goes through --cache)" })
      .option("restore-digests", {
        type: "boolean",
        default: true,
        describe:
          "rebuild the original gzip layers and manifests of digest-preserving bundles (--no-restore-digests: as packed)",
      })
      .option("images-only", {
        type: "boolean",
        default: false,
        describe:
          "leave out names that hold no runnable image (a signature, SBOM or attestation on its own); " +
          "ctr import exits 1 at such a name (they are written last, so the images before it are in)",
      })
      .option("cache", {
        type: "string",
        default: defaultCacheDir(),
        describe: "store used by --layers (and by --for docker when there are zstd layers to convert)",
      })
      .epilogue(
        examples([
          ["import into containerd (digests restored)", "unpack site.tar.xz -o - | ctr -n k8s.io images import -"],
          [
            "for podman load (docker load too, but not of zstd layers)",
            "unpack site.tar.xz -o images.tar && podman load -i images.tar",
          ],
          [
            "for docker load when layers are zstd (converted to gzip)",
            "unpack site.tar.xz --for docker -o - | docker load",
          ],
          ["an OCI layout directory", "unpack site.tar.xz --format oci -o ./layout"],
          ["only runnable images (ctr exits 1 at an SBOM on its own)", "unpack site.tar.xz --images-only -o site.tar"],
          [
            "a delta completed by the bundle it was made against",
            "unpack delta.tar.xz --base site.tar.xz -o - | ctr images import -",
          ],
        ]),
      ),
  handler: async (a, signal) => {
    const g: Globals = { quiet: Boolean(a.quiet), json: Boolean(a.json) };
    const isDir = a.output.endsWith("/") || (await stat(a.output).catch(() => undefined))?.isDirectory() === true;
    const target = a.for as UnpackTarget | undefined;
    let format: UnpackFormat = (a.format as UnpackFormat | undefined) ?? (isDir ? "oci" : "docker-archive");
    let layers = a.layers as LayerMode | undefined;
    if (target) {
      ({ format, layers } = checkTarget(target, a.format as UnpackFormat | undefined, layers));
      if (isDir) throw new UsageError(`--for ${target} writes a tar (${format}): -o ${a.output} is a directory`);
    }
    const mismatch = format === "oci" ? undefined : nameMismatch(a.output, "none");
    if (mismatch) log(g, `warning: ${mismatch} (unpack writes tars for importers; compress it afterwards if needed)`);
    const reporter = createReporter(!g.quiet && !g.json);
    const { unpack, summarize, zstdLayers } = await import("../../bundle/unpack.js");
    const contents = await unpack({
      input: a.bundle || "-",
      out: a.output.replace(/(.)\/+$/, "$1"),
      format,
      force: a.force,
      restoreDigests: a["restore-digests"],
      imagesOnly: a["images-only"],
      ...(a.base !== undefined || a["base-registry"] !== undefined
        ? {
            base: {
              ...(a.base !== undefined ? { base: a.base } : {}),
              ...(a["base-registry"] !== undefined ? { baseRegistry: a["base-registry"] } : {}),
              registry: await registryAccess(a),
            },
          }
        : {}),
      ...(layers ? { layers, cacheDir: a.cache } : {}),
      ...(reporter.listener ? { onProgress: reporter.listener } : {}),
      signal,
    }).finally(() => reporter.stop());
    const s = summarize(contents);
    const zstd = zstdLayers(contents);
    const where = a.output === "-" ? "stdout" : a.output;
    if (g.json) printJson({ output: a.output, outputFormat: format, ...(target ? { for: target } : {}), ...s });
    else {
      const converted = layers === "zstd-to-gzip" && zstd > 0 ? `; ${zstd} zstd layer(s) converted to gzip` : "";
      log(g, `verified ${s.totals.blobs} blobs of ${s.images.length} image(s); wrote ${where} (${format}${converted})`);
    }
    // Without --for, say what docker would make of it: docker-archive is the form meant for docker.
    const refused = format === "docker-archive" && !target ? zstdInOutput(layers, zstd) : undefined;
    if (refused) {
      log(
        g,
        `warning: ${where} holds ${refused}: ${TARGETS.docker.importer} refuses zstd layers; ` +
          "use --for docker (or --for containerd|podman|k3s, which take them)",
      );
    }
  },
});
