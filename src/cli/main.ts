import { readFile, stat } from "node:fs/promises";
import type { Credential } from "../registry/credentials";
import { homedir } from "node:os";
import { setMaxListeners } from "node:events";
import { join } from "node:path";
import yargs, { type Argv } from "yargs";
import { layerModes, type LayerMode } from "../copy/layer-modes";
import type { StreamFormat } from "../compression/sniff";
import { formatFromName } from "../bundle/extensions";
import { pack } from "../bundle/pack";
// The other commands load their implementation when they run: a pack never pays for unpack's.
import type { BundleSummary, UnpackFormat } from "../bundle/unpack";
import { hostPlatform, parsePlatformString } from "../oci/platform";
import { UsageError } from "../util/errors";
import { toolVersion } from "../version";
import { formatBytes, printJson, table } from "./output";
import { createReporter } from "./progress";

export function defaultCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "airpack");
}

interface Globals {
  quiet: boolean;
  json: boolean;
}

function log(g: Globals, line: string): void {
  if (!g.quiet && !g.json) process.stderr.write(line + "\n");
}

const compressChoices = ["xz", "zstd", "gzip", "none"] as const;

/** Ctrl-C aborts the work; outputs are only renamed into place on success. */
function abortOnSignals(): AbortSignal {
  const controller = new AbortController();
  // One listener per stream in flight; the default cap of 10 is too low for --jobs.
  setMaxListeners(256, controller.signal);
  const onSignal = (sig: NodeJS.Signals): void => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write(`airpack: ${sig}, stopping and removing partial output\n`);
    controller.abort(new Error(`interrupted by ${sig}`));
    process.exitCode = 130;
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  return controller.signal;
}

function printSummary(s: BundleSummary, bundleBytes?: number): void {
  const rows: string[][] = [["IMAGE", "PLATFORM", "LAYER", "TYPE", "SIZE", "UNCOMPRESSED", "PACKED AS"]];
  for (const img of s.images) {
    for (const p of img.platforms) {
      p.layers.forEach((l, i) => {
        rows.push([
          i === 0 ? img.name : "",
          i === 0 ? p.platform : "",
          l.digest.slice(7, 19),
          l.compression,
          formatBytes(l.size),
          l.uncompressedSize !== undefined ? formatBytes(l.uncompressedSize) : "?",
          l.mode,
        ]);
      });
      if (p.layers.length === 0) rows.push([img.name, p.platform, "-", "-", "-", "-", "-"]);
    }
  }
  process.stdout.write(table(rows) + "\n");
  const t = s.totals;
  const unc = t.uncompressedKnown ? formatBytes(t.uncompressedBytes) : `≥${formatBytes(t.uncompressedBytes)}`;
  process.stdout.write(
    `\n${s.images.length} image(s), ${t.blobs} blobs; layers ${formatBytes(t.layerBytes)} stored, ${unc} uncompressed; bundle compression: ${s.format}` +
      (s.layersMode ? `; layers mode: ${s.layersMode}` : "") +
      (s.tool ? `; made by ${s.tool} at ${s.created}` : "") +
      "\n",
  );
  if (s.recipes) {
    const r = s.recipes;
    const pct = (a: number, b: number): string => (b === 0 ? "-" : `${((100 * a) / b).toFixed(0)}%`);
    const diff = bundleBytes === undefined ? 0 : r.originalLayerBytes - bundleBytes;
    const saved =
      bundleBytes === undefined
        ? ""
        : `; bundle is ${pct(Math.abs(diff), r.originalLayerBytes)} ${diff >= 0 ? "smaller" : "larger"} than the original layers`;
    process.stdout.write(
      `digests preserved: ${r.withRecipe}/${r.gzipLayers} gzip layers (${pct(r.withRecipe, r.gzipLayers)}) have recipes (${r.recipeBytes} bytes)${saved}\n`,
    );
  }
  for (const img of s.images) {
    for (const sk of img.skipped)
      process.stdout.write(`note: ${img.name}: left out ${sk.platform} ${sk.digest.slice(0, 19)}… (${sk.reason})\n`);
  }
}

/** -f FILE: one reference per line, `#` starts a comment (k3s/rke2 air-gap image lists). */
async function readImageLists(files: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const file of files) {
    const text = await readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
      throw new UsageError(`-f ${file}: ${err.code === "ENOENT" ? "no such file" : err.message}`);
    });
    for (const line of text.split(/\r?\n/)) {
      const ref = line.replace(/#.*$/, "").trim();
      if (ref) out.push(ref);
    }
  }
  return out;
}

async function readCredential(username: string | undefined, passwordStdin: boolean): Promise<Credential | undefined> {
  if (!username && !passwordStdin) return undefined;
  if (!username || !passwordStdin) throw new UsageError("--username and --password-stdin go together");
  if (process.stdin.isTTY)
    throw new UsageError('--password-stdin: pipe the password in, e.g. printf %s "$PASS" | airpack …');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const password = Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
  if (!password) throw new UsageError("--password-stdin: stdin was empty");
  return { username, password };
}

function packCommand<T>(y: Argv<T>) {
  return y
    .positional("sources", {
      type: "string",
      array: true,
      describe:
        "registry reference (alpine:3.20, ghcr.io/org/app@sha256:…), docker://REF, oci:DIR[:tag], oci-archive:FILE[:tag], docker-archive:FILE[:ref]",
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
      choices: layerModes,
      default: "keep" as LayerMode,
      describe: "convert each layer to this compression",
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
    .option("insecure-registry", {
      type: "string",
      array: true,
      describe: "HOST[:PORT] that may use plain HTTP or unverified TLS (localhost/127.0.0.1 may use HTTP anyway)",
    })
    .option("ca-file", { type: "string", describe: "PEM file of extra CA certificates to trust for registries" })
    .option("username", { type: "string", describe: "registry user name (with --password-stdin)" })
    .option("password-stdin", { type: "boolean", default: false, describe: "read the registry password from stdin" })
    .option("with-attestations", {
      type: "boolean",
      default: false,
      describe: "include attestation manifests (unknown/unknown)",
    })
    .option("jobs", { alias: "j", type: "number", default: 4, describe: "layers processed in parallel" })
    .option("cache", { type: "string", default: defaultCacheDir(), describe: "content-addressed store (OCI layout)" })
    .example(
      "$0 pack alpine:3.20 ghcr.io/org/app@sha256:… -o site.tar.xz",
      "two images from registries (host platform)",
    )
    .example("$0 pack -f images.txt --all-platforms --layers uncompressed -o site.tar.xz", "a k3s-style image list")
    .example("$0 pack oci:./layout:app -o app.tar.xz", "one image from an OCI layout, xz-compressed")
    .example(
      "$0 pack docker-archive:saved.tar oci-archive:b.tar --layers uncompressed -o site.tar.zst",
      "two archives, layers stored uncompressed, zstd outer",
    )
    .example("$0 pack oci:./layout --all-platforms -o - | ssh diode 'cat > site.tar.xz'", "stream to stdout");
}

function unpackCommand<T>(y: Argv<T>) {
  return y
    .positional("bundle", { type: "string", describe: "bundle file, or - for stdin" })
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
    .option("cache", { type: "string", default: defaultCacheDir(), describe: "store used by --layers" })
    .example("$0 unpack site.tar.xz -o - | ctr -n k8s.io images import -", "import into containerd")
    .example(
      "$0 unpack site.tar.xz --format docker-archive -o images.tar && podman load -i images.tar",
      "docker/podman load",
    )
    .example("$0 unpack site.tar.xz --format oci -o ./layout", "an OCI layout directory");
}

async function main(argv: string[], signal: AbortSignal): Promise<void> {
  const cli = yargs(argv)
    .scriptName("airpack")
    .usage("$0 <command>\n\nMove container images into air-gapped sites as one verified bundle file.")
    .option("quiet", { alias: "q", type: "boolean", default: false, describe: "no progress or log lines" })
    .option("json", { type: "boolean", default: false, describe: "machine-readable output on stdout" })
    .command("pack [sources..]", "pack images into one bundle file", packCommand, async (a) => {
      const g: Globals = { quiet: Boolean(a.quiet), json: Boolean(a.json) };
      const out = a.output;
      const compress = (a.compress as StreamFormat | undefined) ?? (out === "-" ? "xz" : formatFromName(out));
      if (!compress)
        throw new UsageError(
          `cannot tell the compression from "${out}"; name it .tar.xz/.tar.zst/.tar.gz/.tar or pass --compress`,
        );
      const platforms = (a.platform ?? []).map(parsePlatformString);
      const reporter = createReporter(!g.quiet && !g.json);
      try {
        const sources = [...(a.sources ?? []), ...(await readImageLists(a["images-file"] ?? []))];
        if (sources.length === 0) throw new UsageError("name at least one image (or -f FILE)");
        const credential = await readCredential(a.username, a["password-stdin"]);
        const result = await pack({
          sources,
          registry: {
            insecureRegistries: a["insecure-registry"] ?? [],
            ...(a["ca-file"] ? { caFile: a["ca-file"] } : {}),
            ...(credential ? { credential } : {}),
          },
          out,
          cacheDir: a.cache,
          compress,
          ...(a.level !== undefined ? { compressLevel: a.level } : {}),
          ...(a.threads !== undefined ? { threads: a.threads } : {}),
          layers: a.layers,
          platforms: platforms.length > 0 ? platforms : [hostPlatform()],
          allPlatforms: a["all-platforms"],
          withAttestations: a["with-attestations"],
          preserveDigests: a["preserve-digests"] && a.layers === "uncompressed",
          verifyDiffIds: a["verify-diff-ids"],
          jobs: Math.max(1, a.jobs),
          ...(reporter.listener ? { onProgress: reporter.listener } : {}),
          signal,
        });
        reporter.stop();
        if (g.json)
          printJson({ output: out, bytes: result.bytesWritten, blobs: result.blobs, metadata: result.metadata });
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
          for (const f of result.foreign)
            log(
              g,
              `warning: foreign layer ${f.digest} (${f.mediaType}) is not in the bundle; it must be fetched from ${f.urls?.join(", ") ?? "its URL"} on the other side`,
            );
          log(
            g,
            `wrote ${out === "-" ? "stdout" : out}: ${formatBytes(result.bytesWritten)} (${compress}), ${result.blobs} blobs, layers ${formatBytes(result.layerBytes)}`,
          );
        }
      } finally {
        reporter.stop();
      }
    })
    .command(
      "unpack <bundle>",
      "verify a bundle and write an OCI layout or an importable tar",
      unpackCommand,
      async (a) => {
        const g: Globals = { quiet: Boolean(a.quiet), json: Boolean(a.json) };
        const isDir = a.output.endsWith("/") || (await stat(a.output).catch(() => undefined))?.isDirectory() === true;
        const format: UnpackFormat = (a.format as UnpackFormat | undefined) ?? (isDir ? "oci" : "docker-archive");
        const reporter = createReporter(!g.quiet && !g.json);
        const { unpack, summarize } = await import("../bundle/unpack.js");
        const contents = await unpack({
          input: a.bundle || "-",
          out: a.output.replace(/(.)\/+$/, "$1"),
          format,
          force: a.force,
          restoreDigests: a["restore-digests"],
          ...(a.layers ? { layers: a.layers, cacheDir: a.cache } : {}),
          ...(reporter.listener ? { onProgress: reporter.listener } : {}),
          signal,
        }).finally(() => reporter.stop());
        const s = summarize(contents);
        if (g.json) printJson({ output: a.output, outputFormat: format, ...s });
        else
          log(
            g,
            `verified ${s.totals.blobs} blobs of ${s.images.length} image(s); wrote ${a.output === "-" ? "stdout" : a.output} (${format})`,
          );
      },
    )
    .command(
      "verify <bundle>",
      "check every blob's digest and size and every reference; write nothing",
      (y) =>
        y
          .positional("bundle", { type: "string", describe: "bundle file, or - for stdin" })
          .example("$0 verify site.tar.xz", "check a bundle after copying it"),
      async (a) => {
        const g: Globals = { quiet: Boolean(a.quiet), json: Boolean(a.json) };
        const { summarize, verify } = await import("../bundle/unpack.js");
        const s = summarize(await verify(a.bundle || "-", signal));
        if (g.json) printJson({ ok: true, ...s });
        else if (!g.quiet)
          process.stdout.write(
            `OK: ${s.images.length} image(s), ${s.totals.blobs} blobs, ${formatBytes(s.totals.layerBytes)} of layers verified\n`,
          );
      },
    )
    .command(
      "inspect <bundle>",
      "list images, platforms and layers of a bundle",
      (y) =>
        y
          .positional("bundle", { type: "string", describe: "bundle file, or - for stdin" })
          .option("verify", { type: "boolean", default: false, describe: "also read and verify every layer" })
          .example("$0 inspect site.tar.xz", "a table")
          .example("$0 inspect site.tar.xz --json | jq '.images[].name'", "for scripts"),
      async (a) => {
        const { inspect } = await import("../bundle/unpack.js");
        const s = await inspect(a.bundle || "-", a.verify);
        const bytes = a.bundle && a.bundle !== "-" ? (await stat(a.bundle)).size : undefined;
        if (a.json) printJson({ ...s, ...(bytes !== undefined ? { bundleBytes: bytes } : {}) });
        else printSummary(s, bytes);
      },
    )
    .command(
      "cache <action>",
      "list or prune the content-addressed store",
      (y) =>
        y
          .positional("action", { choices: ["ls", "prune"] as const, demandOption: true })
          .option("cache", { type: "string", default: defaultCacheDir(), describe: "store directory" })
          .option("all", { type: "boolean", default: false, describe: "prune: empty the store completely" })
          .example("$0 cache ls", "images and space used")
          .example("$0 cache prune", "drop blobs no cached image uses"),
      async (a) => {
        const [{ Store }, { listStore, pruneStore }] = await Promise.all([
          import("../store/store.js"),
          import("../store/admin.js"),
        ]);
        const store = await Store.open(a.cache);
        if (a.action === "ls") {
          const l = await listStore(store);
          if (a.json) printJson(l);
          else {
            const rows = [
              ["IMAGE", "DIGEST", "TYPE"],
              ...l.images.map((i) => [i.name, i.digest, i.mediaType.replace(/^application\/vnd\./, "")]),
            ];
            process.stdout.write(table(rows) + `\n\n${l.blobs} blobs, ${formatBytes(l.bytes)} in ${l.root}\n`);
          }
        } else {
          const r = await pruneStore(store, a.all);
          if (a.json) printJson(r);
          else if (!a.quiet) process.stdout.write(`removed ${r.removed} blobs, ${formatBytes(r.bytes)}\n`);
        }
      },
    )
    .command(
      "demo",
      false,
      (y) => y,
      async (a) => {
        const { runDemo } = await import("./demo.js");
        await runDemo({ quiet: a.quiet, json: a.json });
      },
    )
    .demandCommand(1, "name a command: pack, unpack, verify or inspect")
    .strict()
    .version(toolVersion())
    .help()
    .alias("h", "help")
    .epilogue("Exit codes: 0 ok, 1 failure, 2 usage error. Docs: README.md, docs/bundle-format.md")
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err, y) => {
      if (err) throw err;
      void y;
      process.stderr.write(`airpack: ${msg}\nRun 'airpack --help' for usage.\n`);
      process.exit(2);
    });
  await cli.parseAsync();
}

export function run(): void {
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(process.exitCode ?? 1);
  });
  let settled = false;
  // A promise that can never settle (a stream that stalled) must not end as a silent exit 0.
  process.on("beforeExit", () => {
    if (!settled) {
      process.stderr.write("airpack: internal error: work stalled before finishing (please report)\n");
      process.exit(1);
    }
  });
  // Installed first, so a Ctrl-C during start-up is handled the same way.
  const signal = abortOnSignals();
  main(process.argv.slice(2), signal)
    .then(() => {
      settled = true;
    })
    .catch((err: unknown) => {
      settled = true;
      const e = err instanceof Error ? err : new Error(String(err));
      const msg = e.message.split("\n")[0] ?? String(err);
      process.stderr.write(`airpack: ${msg}\n`);
      if (process.env.AIRPACK_DEBUG) process.stderr.write(`${e.stack ?? ""}\n`);
      process.exit(e instanceof UsageError ? 2 : process.exitCode && process.exitCode !== 0 ? process.exitCode : 1);
    });
}
