import { readFile } from "node:fs/promises";
import { layerModes, type LayerMode } from "../../copy/layer-modes";
import type { StreamFormat } from "../../compression/sniff";
import { formatFromName } from "../../bundle/extensions";
import { pack } from "../../bundle/pack";
import { parseSplitSize, SPLIT_MEDIA } from "../../bundle/split";
import { hostPlatform } from "../../oci/platform";
import { fileErrorReason, UsageError } from "../../util/errors";
import { defaultCacheDir } from "../cache-dir";
import { defineCommand, examples } from "../command-module";
import { registryAccess, registryAccessOptions } from "../credentials";
import { log, type Globals } from "../globals";
import { formatBytes, printJson } from "../output";
import { createReporter } from "../progress";
import { checkCount, checkLevel, nameMismatch, parsePlatforms } from "../validate";

const compressChoices = ["xz", "zstd", "gzip", "none"] as const;

/** -f FILE: one reference per line, `#` starts a comment (k3s/rke2 air-gap image lists). */
async function readImageLists(files: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const file of files) {
    const text = await readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
      throw new UsageError(`-f ${file}: cannot read (${fileErrorReason(err)})`);
    });
    for (const line of text.split(/\r?\n/)) {
      const ref = line.replace(/#.*$/, "").trim();
      if (ref) out.push(ref);
    }
  }
  return out;
}

/** "a, b, c", or "7 files (a, b … g)" for many. */
function listFiles(names: string[]): string {
  if (names.length <= 3) return names.join(", ");
  return `${names.length} files (${names[0]!}, ${names[1]!} … ${names[names.length - 1]!})`;
}

export const packCommand = defineCommand({
  command: "pack [sources..]",
  describe: "pack images into one bundle file",
  builder: (y) =>
    registryAccessOptions(
      y
        .positional("sources", {
          type: "string",
          array: true,
          describe:
            "registry reference (alpine:3.20, ghcr.io/org/app@sha256:…), docker://REF, oci:DIR[:tag], oci-archive:FILE[:tag], docker-archive:FILE[:ref], bundle:FILE (or bundle:- for stdin)",
        })
        .option("output", {
          alias: "o",
          type: "string",
          demandOption: true,
          describe: "bundle file (.tar.xz, .tar.zst, .tar.gz, .tar) or - for stdout",
        })
        .option("compress", {
          choices: compressChoices,
          describe: "outer compression (default: from the file name; xz for stdout)",
        })
        .option("level", { type: "number", describe: "compression level (xz 0-9, zstd 1-19, gzip 1-9)" })
        .option("threads", { alias: "T", type: "number", describe: "compression threads (default: all cores)" })
        .option("layers", {
          choices: [...layerModes, "auto"] as const,
          default: "auto" as LayerMode | "auto",
          describe:
            "convert each layer to this compression. auto: uncompressed with recipes (every digest kept) under " +
            "xz or zstd, where the outer compression then shrinks the layers; keep for .tar and .tar.gz",
        })
        .option("platform", {
          type: "string",
          array: true,
          describe: "os/arch[/variant] to take from multi-platform images (repeatable); default: host",
        })
        .option("all-platforms", {
          type: "boolean",
          default: false,
          describe: "take every platform of multi-platform images",
        })
        .option("preserve-digests", {
          type: "boolean",
          default: true,
          describe:
            "with --layers uncompressed: store a recipe per gzip layer so unpack restores the original digests " +
            "(layers no encoder reproduces are kept compressed); --no-preserve-digests converts plainly",
        })
        .option("verify-diff-ids", {
          type: "boolean",
          default: false,
          describe:
            "also decompress layers kept as they are and check them against the config's diff_ids " +
            "(converted layers are always checked; blob digests always are)",
        })
        .option("images-file", {
          alias: "f",
          type: "string",
          array: true,
          describe: "file with one image reference per line (# comments), like k3s/rke2 image lists",
        })
        .option("with-attestations", {
          type: "boolean",
          default: false,
          describe: "include attestation manifests (unknown/unknown)",
        })
        .option("split", {
          type: "string",
          describe:
            "write the bundle as parts NAME.001, NAME.002, … of SIZE bytes (the last holds the rest) and NAME.parts.json: " +
            `a byte count, 4095M, 4G, or a medium: ${Object.keys(SPLIT_MEDIA).join(", ")}`,
        })
        .option("resume", {
          type: "boolean",
          default: false,
          describe: "go on with a --split pack that stopped on a full disk (same command, same -o and --cache)",
        })
        .option("reproducible", {
          type: "boolean",
          default: false,
          describe:
            "date the bundle by its newest image (config created) instead of now, so that the same images and options give the same bytes (SOURCE_DATE_EPOCH, if set, wins)",
        })
        .option("have", {
          type: "string",
          array: true,
          describe:
            "what the site holds (repeatable): an inventory file (airpack inventory), a bundle, or oci:DIR; " +
            "writes a delta bundle that leaves out every blob the site has",
        })
        .option("jobs", { alias: "j", type: "number", default: 4, describe: "layers processed in parallel" })
        .option("cache", {
          type: "string",
          default: defaultCacheDir(),
          describe: "content-addressed store (OCI layout)",
        }),
    ).epilogue(
      examples([
        [
          "two images from registries (host platform), every digest kept",
          "pack alpine:3.20 ghcr.io/org/app@sha256:… -o site.tar.xz",
        ],
        ["a k3s/rke2-style image list, every platform", "pack -f images.txt --all-platforms -o site.tar.xz"],
        ["one image from an OCI layout", "pack oci:./layout:app -o app.tar.xz"],
        [
          "archives with layers kept as they are (a plain .tar keeps them anyway)",
          "pack docker-archive:a.tar oci-archive:b.tar --layers keep -o s.tar.zst",
        ],
        ["stream to stdout (xz)", "pack oci:./layout -o - | ssh diode 'cat > site.tar.xz'"],
        ["parts that fit a FAT32 USB disk", "pack -f images.txt --split fat32 -o /media/usb/site.tar.xz"],
        ["merge bundles offline, digests kept", "pack bundle:a.tar.xz bundle:b.tar.zst -o merged.tar.xz"],
        ["only what the site lacks (a delta)", "pack app:v2 --have site.inventory.json -o delta.tar.xz"],
        ["a full bundle again from a base and its delta", "pack bundle:site.tar.xz bundle:delta.tar.xz -o full.tar.xz"],
      ]),
    ),
  handler: async (a, signal) => {
    const g: Globals = { quiet: Boolean(a.quiet), json: Boolean(a.json) };
    const out = a.output;
    const compress = (a.compress as StreamFormat | undefined) ?? (out === "-" ? "xz" : formatFromName(out));
    if (!compress)
      throw new UsageError(
        `cannot tell the compression from "${out}"; name it .tar.xz/.tar.zst/.tar.gz/.tar or pass --compress`,
      );
    const platforms = parsePlatforms(a.platform ?? []);
    const level = checkLevel(a.level, compress);
    const threads = checkCount(a.threads, "--threads");
    const jobs = checkCount(a.jobs, "--jobs") ?? 4;
    // Gzip layers don't shrink inside xz or zstd; stored uncompressed with recipes they do, digests kept.
    const layers: LayerMode =
      a.layers === "auto" ? (compress === "xz" || compress === "zstd" ? "uncompressed" : "keep") : a.layers;
    let split: number | undefined;
    try {
      split = a.split === undefined ? undefined : parseSplitSize(a.split);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    if ((split !== undefined || a.resume) && out === "-") {
      throw new UsageError("--split writes files: name the bundle with -o FILE (e.g. -o site.tar.xz)");
    }
    const mismatch = nameMismatch(out, compress);
    if (mismatch) log(g, `warning: ${mismatch}`);
    const reporter = createReporter(!g.quiet && !g.json);
    try {
      const sources = [...(a.sources ?? []), ...(await readImageLists(a["images-file"] ?? []))];
      if (sources.length === 0) throw new UsageError("name at least one image (or -f FILE)");
      const access = await registryAccess(a);
      const have = a.have ?? [];
      const { haveSet } = await import("../../inventory/collect.js");
      const delta = have.length > 0 ? await haveSet(have, { registry: access, cacheDir: a.cache, jobs }) : undefined;
      const result = await pack({
        sources,
        ...(delta ? { delta } : {}),
        registry: { ...access, signal },
        out,
        cacheDir: a.cache,
        compress,
        ...(level !== undefined ? { compressLevel: level } : {}),
        ...(threads !== undefined ? { threads } : {}),
        layers,
        platforms: platforms.length > 0 ? platforms : [hostPlatform()],
        allPlatforms: a["all-platforms"],
        withAttestations: a["with-attestations"],
        preserveDigests: a["preserve-digests"] && layers === "uncompressed",
        verifyDiffIds: a["verify-diff-ids"],
        jobs,
        ...(split !== undefined ? { split } : {}),
        ...(a.resume ? { resume: true } : {}),
        ...(a.reproducible ? { reproducible: true } : {}),
        ...(reporter.listener ? { onProgress: reporter.listener } : {}),
        signal,
      });
      reporter.stop();
      if (g.json)
        printJson({
          output: out,
          bytes: result.bytesWritten,
          sha256: result.sha256,
          blobs: result.blobs,
          ...(result.parts ? { partsFile: result.partsFile, parts: result.parts } : {}),
          ...(result.removed.length > 0 ? { removed: result.removed } : {}),
          metadata: result.metadata,
        });
      else {
        for (const img of result.metadata.images) {
          const conv = img.manifests.flatMap((m) => m.layers).filter((l) => l.mode === "converted").length;
          const total = img.manifests.flatMap((m) => m.layers).length;
          log(
            g,
            `packed ${img.name} (${img.manifests.length} manifest(s), ${total} layers, ${conv} converted) ${img.digest}`,
          );
          for (const s of img.skipped) log(g, `  left out ${s.platform} ${s.digest.slice(0, 19)}…: ${s.reason}`);
        }
        for (const w of result.warnings) log(g, `warning: ${w}`);
        for (const f of result.foreign)
          log(
            g,
            `warning: foreign layer ${f.digest} (${f.mediaType}) is not in the bundle; it must be fetched from ${f.urls?.join(", ") ?? "its URL"} on the other side`,
          );
        const relies = result.metadata.delta?.relies;
        if (relies) {
          const bytes = relies.reduce((n, r) => n + r.size, 0);
          log(g, `delta: ${relies.length} blob(s) the site has (${formatBytes(bytes)}) left out and relied on`);
        }
        if (result.removed.length > 0) log(g, `removed ${listFiles(result.removed)}: an earlier bundle of that name`);
        const what = `${formatBytes(result.bytesWritten)} (${compress}), ${result.blobs} blobs, layers ${formatBytes(result.layerBytes)}`;
        if (result.parts) {
          log(g, `wrote ${out} as ${result.parts.length} part(s) and ${result.partsFile}: ${what}`);
          for (const p of result.parts) log(g, `  ${p.name}  ${p.size} bytes  sha256 ${p.sha256}`);
        } else log(g, `wrote ${out === "-" ? "stdout" : out}: ${what}`);
        // Last, for the transfer form: what the far side checks the file (or the parts together) against.
        log(g, `bundle sha256 ${result.sha256}  ${result.bytesWritten} bytes`);
      }
    } finally {
      reporter.stop();
    }
  },
});
