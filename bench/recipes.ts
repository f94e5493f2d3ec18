/**
 * Bench part B, "Digest-preserving bundles": gzip layers made by the REAL encoders from one
 * uncompressed make-big.sh layer (Go compress/gzip -6, klauspost/pgzip -5, Python zlib -6, GNU gzip -6),
 * packed with --layers uncompressed with and without recipes:
 *   - bundle size ratio (images whose layers all got recipes, and overall);
 *   - pack time overhead of identification against one `gzip -dc` pass over the same layers;
 *   - regeneration throughput per encoder family (airpack unpack, and the encoder alone) against Go's
 *     compress/gzip at the same level on the same data;
 *   - peak RSS packing and unpacking a digest-preserving bundle with one ≥ 2 GB gzip layer.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import type { BundleMetadata } from "../src/bundle/format";
import type { GzipRecipe } from "../src/recipes/format";
import {
  AIRPACK,
  KEEP,
  ROOT,
  allWalls,
  best,
  blobFile,
  cpuOf,
  envInt,
  fileSize,
  freeBytes,
  hashFile,
  kbToMb,
  log,
  makeLayout,
  mb,
  mbps,
  peakKb,
  peakMb,
  q,
  run,
  sec,
  sh,
  table,
  tmp,
  verdict,
  writeLayoutIndex,
  type Metric,
  type OciDescriptor,
  type PartResult,
  type RunResult,
} from "./lib";

export const RECIPE_MB = envInt("BENCH_RECIPE_MB", 100);
/**
 * Runs of the quick commands (pack without recipes, gzip -dc, Go reference) and of the per-family
 * unpacks, which are compared with the Go reference (best of as many runs on both sides);
 * BENCH_RECIPE_REPEAT sets both constants.
 */
const RECIPE_REPEAT = Math.max(1, envInt("BENCH_RECIPE_REPEAT", 2));
/** Runs of the slow ones (pack with recipes): 1 unless BENCH_RECIPE_REPEAT is set. */
const RECIPE_SLOW_REPEAT = Math.max(1, envInt("BENCH_RECIPE_REPEAT", 1));
const GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip";
const GOCODE = "/usr/share/gocode";
const REGEN_JS = join(__dirname, "regen.js");

/** Python zlib, streaming (flat memory): stdin → gzip (wbits 31) at level argv[1]. */
const PY_ZLIB = [
  "import sys, zlib",
  "c = zlib.compressobj(int(sys.argv[1]), zlib.DEFLATED, 31)",
  "r, w = sys.stdin.buffer, sys.stdout.buffer",
  "for b in iter(lambda: r.read(1 << 20), b''): w.write(c.compress(b))",
  "w.write(c.flush())",
].join("\n");

// ---------------------------------------------------------------------------------------------
// Reference encoders

interface GoTools {
  gogzip?: string;
  gopgzip?: string;
  notes: string[];
}

let goTools: GoTools | undefined;

function goBuild(dir: string, out: string, gopath: string): string | undefined {
  const r = spawnSync("go", ["build", "-o", out, "./main.go"], {
    cwd: dir,
    encoding: "utf8",
    env: {
      ...process.env,
      GO111MODULE: "off",
      GOFLAGS: "",
      GOPATH: gopath,
      GOCACHE: join(tmp(), "go", "cache"),
    },
  });
  if (r.error) return `go: ${r.error.message}`;
  return r.status === 0 ? undefined : (r.stderr || r.stdout).trim().split("\n").slice(-3).join(" ");
}

/** fixtures/gogzip (Go compress/gzip) and test/helpers/gopgzip (klauspost/pgzip), built as the tests build them. */
function buildGoTools(): GoTools {
  if (goTools) return goTools;
  const t: GoTools = { notes: [] };
  const base = join(tmp(), "go");
  const gogzip = join(base, "gogzip");
  const e1 = goBuild(join(ROOT, "fixtures", "gogzip"), gogzip, join(base, "path"));
  if (e1 === undefined) t.gogzip = gogzip;
  else t.notes.push(`fixtures/gogzip did not build (${e1})`);
  if (existsSync(join(GOCODE, "src", "github.com", "klauspost", "pgzip", "gzip.go"))) {
    const gopgzip = join(base, "gopgzip");
    const e2 = goBuild(join(ROOT, "test", "helpers", "gopgzip"), gopgzip, `${GOCODE}:${join(base, "path")}`);
    if (e2 === undefined) t.gopgzip = gopgzip;
    else t.notes.push(`test/helpers/gopgzip did not build (${e2})`);
  } else {
    t.notes.push(`klauspost/pgzip sources not in ${GOCODE} (Debian golang-github-klauspost-pgzip-dev)`);
  }
  goTools = t;
  return t;
}

interface Family {
  /** Image tag in the layout and the family name airpack records ("gnu-gzip": none expected). */
  key: string;
  /** The real tool. */
  tool: string;
  level: number;
  /** Whether airpack has a model for it (GNU gzip: no, the layer is kept). */
  expectRecipe: boolean;
  /** Shell command: uncompressed tar in $1 → gzip on stdout. */
  command?: (input: string) => string;
}

function families(t: GoTools): Family[] {
  return [
    {
      key: "go-flate",
      tool: "Go compress/gzip -6 (fixtures/gogzip)",
      level: 6,
      expectRecipe: true,
      command: t.gogzip ? (i) => `${q(t.gogzip!)} 6 < ${q(i)}` : undefined,
    },
    {
      key: "pgzip",
      tool: "klauspost/pgzip -5 (test/helpers/gopgzip, as containers/image)",
      level: 5,
      expectRecipe: true,
      command: t.gopgzip ? (i) => `${q(t.gopgzip!)} 5 < ${q(i)}` : undefined,
    },
    {
      key: "zlib",
      tool: "Python zlib -6 (compressobj, wbits 31)",
      level: 6,
      expectRecipe: true,
      command: (i) => `python3 -c ${q(PY_ZLIB)} 6 < ${q(i)}`,
    },
    {
      key: "gnu-gzip",
      tool: "GNU gzip -6 -n",
      level: 6,
      expectRecipe: false,
      command: (i) => `gzip -6 -n -c < ${q(i)}`,
    },
  ];
}

interface Encoded {
  family: Family;
  layer: OciDescriptor;
  file: string;
  encodeRun: RunResult;
}

/** airpack.json of a bundle (.tar or .tar.xz). */
function bundleMetadata(bundle: string): BundleMetadata {
  const script = bundle.endsWith(".tar")
    ? `tar -xOf ${q(bundle)} airpack.json`
    : `xz -dc ${q(bundle)} | tar -xO airpack.json`;
  const r = spawnSync("bash", ["-c", `set -o pipefail; ${script}`], { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`reading airpack.json from ${bundle}: ${r.stderr}`);
  return JSON.parse(r.stdout) as BundleMetadata;
}

/** Recipes per source layer digest. */
function recipesOf(meta: BundleMetadata): Map<string, GzipRecipe | undefined> {
  const out = new Map<string, GzipRecipe | undefined>();
  for (const img of meta.images)
    for (const m of img.manifests) for (const l of m.layers) out.set(l.source.digest, l.recipe);
  return out;
}

function tarMembers(file: string): Set<string> {
  const r = spawnSync("tar", ["-tf", file], { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`tar -tf ${file}: ${r.stderr}`);
  return new Set(r.stdout.split("\n"));
}

const pct = (x: number): string => `${(x * 100).toFixed(0)} %`;

// ---------------------------------------------------------------------------------------------
// B.1–B.3, B.5

export async function benchRecipes(): Promise<PartResult> {
  const title = `B. Digest-preserving bundles: real gzip encoders on one ${RECIPE_MB} MiB layer`;
  const metrics: Metric[] = [];
  const tools = buildGoTools();
  const src = join(tmp(), "recipe-src");
  const made = await makeLayout(src, RECIPE_MB, 1);
  const input = made.layerFile(0);
  const U = made.layerBytes;
  const diffId = made.layers[0]!.digest;

  // --- B.1 the layers, made by the real tools ---------------------------------------------------
  const dir = join(tmp(), "recipes");
  await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  const encoded: Encoded[] = [];
  const unavailable: string[] = [];
  for (const f of families(tools)) {
    if (!f.command) {
      unavailable.push(`${f.key} (${f.tool}): not available`);
      continue;
    }
    const tmpOut = join(dir, `${f.key}.gz.partial`);
    log(`recipes: ${f.tool} < ${mb(U)} layer`);
    const encodeRun = await run(`encode ${f.key}`, sh(`${f.command(input)} > ${q(tmpOut)}`));
    const { digest, size } = await hashFile(tmpOut);
    const file = blobFile(dir, digest);
    await rename(tmpOut, file);
    encoded.push({ family: f, layer: { mediaType: GZIP_LAYER, digest, size }, file, encodeRun });
  }
  await writeLayoutIndex(
    dir,
    encoded.map((e) => ({
      ref: e.family.key,
      layers: [e.layer],
      diffIds: [diffId],
      labels: { "airpack.bench.encoder": e.family.tool },
    })),
  );

  // --- B.2 pack time: with recipes, without, and one decompress pass ---------------------------
  const gunzipRuns = new Map<string, RunResult[]>();
  const packA: RunResult[] = [];
  const packB: RunResult[] = [];
  let warmA = "";
  let warmB = "";
  const noneA = join(tmp(), "recipes-A.tar");
  const noneB = join(tmp(), "recipes-B.tar");
  const packNone = (out: string, cache: string, preserve: boolean): string[] => [
    AIRPACK,
    "pack",
    `oci:${dir}`,
    "--layers",
    "uncompressed",
    ...(preserve ? [] : ["--no-preserve-digests"]),
    "--compress",
    "none",
    "-o",
    out,
    "--cache",
    cache,
    "-q",
  ];
  for (let r = 0; r < RECIPE_REPEAT; r++) {
    const steps: (() => Promise<void>)[] = [
      async () => {
        if (r >= RECIPE_SLOW_REPEAT) return;
        const cache = join(tmp(), `recipes-cache-A-${r}`);
        await rm(noneA, { force: true });
        log(`recipes ${r + 1}/${RECIPE_SLOW_REPEAT}: pack --layers uncompressed (digests preserved), fresh cache`);
        packA.push(await run("pack recipes", packNone(noneA, cache, true)));
        if (warmA) await rm(warmA, { recursive: true, force: true });
        warmA = cache;
      },
      async () => {
        const cache = join(tmp(), `recipes-cache-B-${r}`);
        await rm(noneB, { force: true });
        log(`recipes ${r + 1}/${RECIPE_REPEAT}: pack --layers uncompressed --no-preserve-digests, fresh cache`);
        packB.push(await run("pack plain", packNone(noneB, cache, false)));
        if (warmB) await rm(warmB, { recursive: true, force: true });
        warmB = cache;
      },
      async () => {
        for (const e of encoded) {
          const list = gunzipRuns.get(e.family.key) ?? [];
          list.push(await run(`gzip -dc ${e.family.key}`, sh(`exec gzip -dc ${q(e.file)} > /dev/null`)));
          gunzipRuns.set(e.family.key, list);
        }
      },
    ];
    if (r % 2 === 1) steps.reverse();
    for (const step of steps) await step();
  }
  const metaNone = bundleMetadata(noneA);
  const recipes = recipesOf(metaNone);
  const reproduced = encoded.filter((e) => recipes.get(e.layer.digest) !== undefined);
  const recipeRefs = reproduced.map((e) => `oci:${dir}:${e.family.key}`);
  const gunzipPass = encoded.reduce((a, e) => a + best(gunzipRuns.get(e.family.key)!).wall, 0);
  const aBest = best(packA);
  const bBest = best(packB);
  const overhead = aBest.wall - bBest.wall;
  const cpuOverhead = aBest.cpu !== undefined && bBest.cpu !== undefined ? aBest.cpu - bBest.cpu : undefined;

  // --- B.2 sizes: .tar.xz with and without recipes (from the warm caches: identification is above) ---
  const xzSizes: Record<string, number> = {};
  const xzRuns: Record<string, RunResult> = {};
  const xzPack = async (name: string, sources: string[], preserve: boolean): Promise<string> => {
    const out = join(tmp(), `recipes-${name}.tar.xz`);
    log(`recipes: pack ${name}.tar.xz (${sources.length} image(s), warm cache)`);
    xzRuns[name] = await run(`pack ${name}.tar.xz`, [
      AIRPACK,
      "pack",
      ...sources,
      "--layers",
      "uncompressed",
      ...(preserve ? [] : ["--no-preserve-digests"]),
      "-o",
      out,
      "--cache",
      preserve ? warmA : warmB,
      "-q",
    ]);
    xzSizes[name] = await fileSize(out);
    return out;
  };
  const allA = await xzPack("A-all", [`oci:${dir}`], true);
  await xzPack("B-all", [`oci:${dir}`], false);
  if (reproduced.length === encoded.length) {
    // Every layer got a recipe: the "images with recipes" bundles would be the same as these.
    xzSizes["A-recipes"] = xzSizes["A-all"]!;
    xzSizes["B-recipes"] = xzSizes["B-all"]!;
  } else if (reproduced.length > 0) {
    await xzPack("A-recipes", recipeRefs, true);
    await xzPack("B-recipes", recipeRefs, false);
  }
  const metaAll = bundleMetadata(allA);
  const keptBytes = encoded
    .filter((e) => recipesOf(metaAll).get(e.layer.digest) === undefined)
    .reduce((a, e) => a + e.layer.size, 0);

  // --- B.3 regeneration: the whole bundle, then per family ---------------------------------------
  const outTar = join(tmp(), "recipes-out.tar");
  log("recipes: airpack unpack A-all.tar.xz (regenerates every recipe layer)");
  const unpackAll = await run("unpack A-all", [AIRPACK, "unpack", allA, "-o", outTar, "-q"]);
  const members = tarMembers(outTar);
  const restoredAll = encoded.every((e) => members.has(`blobs/sha256/${e.layer.digest.slice(7)}`));
  await rm(outTar, { force: true });

  interface FamilyRegen {
    unpack: RunResult[];
    direct?: { seconds: number; run: RunResult };
  }
  const regen = new Map<string, FamilyRegen>();
  for (const e of reproduced) {
    const recipe = recipes.get(e.layer.digest)!;
    const fam: FamilyRegen = { unpack: [] };
    const bundle = join(tmp(), `recipes-${e.family.key}.tar`);
    await run(`pack ${e.family.key}`, [
      AIRPACK,
      "pack",
      `oci:${dir}:${e.family.key}`,
      "--layers",
      "uncompressed",
      "--compress",
      "none",
      "-o",
      bundle,
      "--cache",
      warmA,
      "-q",
    ]);
    for (let r = 0; r < RECIPE_REPEAT; r++) {
      log(`recipes ${r + 1}/${RECIPE_REPEAT}: unpack the ${e.family.key} bundle (regenerates ${recipe.encoder})`);
      await rm(outTar, { force: true });
      fam.unpack.push(await run(`unpack ${e.family.key}`, [AIRPACK, "unpack", bundle, "-o", outTar, "-q"]));
    }
    await rm(outTar, { force: true });
    await rm(bundle, { force: true });
    log(`recipes: ${recipe.encoder} alone (dist/bench/regen.js)`);
    const direct = await run(
      `regen ${e.family.key}`,
      [process.execPath, REGEN_JS, JSON.stringify(recipe), input, e.layer.digest],
      { captureStdout: true },
    );
    const parsed = JSON.parse(direct.stdout ?? "{}") as { seconds?: number; ok?: boolean };
    if (parsed.ok && parsed.seconds) fam.direct = { seconds: parsed.seconds, run: direct };
    regen.set(e.family.key, fam);
  }

  // Go compress/gzip at each family's level, same data, to /dev/null.
  const goRuns = new Map<number, RunResult[]>();
  if (tools.gogzip) {
    for (const level of [...new Set(reproduced.map((e) => e.family.level))]) {
      const runs: RunResult[] = [];
      for (let r = 0; r < RECIPE_REPEAT; r++) {
        log(`recipes ${r + 1}/${RECIPE_REPEAT}: Go compress/gzip -${level} < layer > /dev/null`);
        runs.push(await run(`go gzip ${level}`, sh(`exec ${q(tools.gogzip)} ${level} < ${q(input)} > /dev/null`)));
      }
      goRuns.set(level, runs);
    }
  }
  if (!KEEP) {
    await rm(warmA, { recursive: true, force: true });
    await rm(warmB, { recursive: true, force: true });
  }

  // --- report ---------------------------------------------------------------------------------
  const famRows: string[][] = [];
  for (const e of encoded) {
    const recipe = recipes.get(e.layer.digest);
    const r = regen.get(e.family.key);
    const go = goRuns.get(e.family.level);
    const un = r ? best(r.unpack) : undefined;
    const goBest = go ? best(go) : undefined;
    famRows.push([
      e.family.key,
      e.family.tool,
      "1",
      recipe ? `1 (${recipe.encoder})` : "0 (kept)",
      recipe ? String(JSON.stringify(recipe).length) : "—",
      un ? mbps(U, un.wall) : "—",
      r?.direct ? mbps(U, r.direct.seconds) : "—",
      recipe && goBest ? `${mbps(U, goBest.wall)} (-${e.family.level})` : "—",
      un && goBest ? pct(goBest.wall / un.wall) : "—",
      mbps(U, e.encodeRun.wall),
    ]);
    if (e.family.expectRecipe) {
      metrics.push({
        metric: `recipes: ${e.family.key} layer reproduced`,
        value: recipe ? recipe.encoder : "no (kept as gzip)",
        target: "recipe",
        verdict: verdict(recipe !== undefined),
      });
    }
    if (un && goBest) {
      metrics.push({
        metric: `recipes: regeneration ${e.family.key}, % of Go compress/gzip -${e.family.level}`,
        value: `${pct(goBest.wall / un.wall)} (${mbps(U, un.wall)} vs ${mbps(U, goBest.wall)})`,
        target: "≥ 50 %",
        verdict: verdict(goBest.wall / un.wall >= 0.5),
      });
    }
  }
  const recipeBytes = [...recipes.values()].reduce((a, r) => a + (r ? JSON.stringify(r).length : 0), 0);
  const ratioRecipes = xzSizes["A-recipes"] !== undefined ? xzSizes["A-recipes"] / xzSizes["B-recipes"]! : Number.NaN;
  const ratioAll = xzSizes["A-all"]! / xzSizes["B-all"]!;
  const regenBytes = reproduced.length * U;
  const encodePass = [...regen.values()].reduce((a, r) => a + (r.direct?.seconds ?? 0), 0);
  const packRow = (name: string, cmd: string, runs: RunResult[]): string[] => {
    const b = best(runs);
    return [name, cmd, sec(b.wall), allWalls(runs), mbps(U * encoded.length, b.wall), cpuOf(b), kbToMb(peakKb(b))];
  };
  const gunzipRows = encoded.map((e) => {
    const runs = gunzipRuns.get(e.family.key)!;
    return [
      `gzip -dc (${e.family.key} layer)`,
      "gzip -dc LAYER.gz > /dev/null",
      sec(best(runs).wall),
      allWalls(runs),
      mbps(U, best(runs).wall),
      cpuOf(best(runs)),
      kbToMb(peakKb(best(runs))),
    ];
  });
  const xzRow = (name: string, what: string): string[] => {
    const r = xzRuns[name];
    if (r) return [`${name}.tar.xz`, what, mb(xzSizes[name]!), sec(r.wall), cpuOf(r), kbToMb(peakKb(r))];
    const same = reproduced.length === encoded.length ? " (every layer has a recipe: same as the -all bundle)" : "";
    return [`${name}.tar.xz`, `${what}${same}`, "—", "—", "—", "—"];
  };
  const body = [
    [
      `One uncompressed layer of ${mb(U)} (fixtures/make-big.sh, /usr files), gzipped by each real tool; one image per ` +
        `encoder in an OCI layout (same diff_id, so the bundles store the uncompressed tar once).`,
      ...unavailable.map((u) => `Left out: ${u}.`),
      ...tools.notes.map((n) => `${n}.`),
    ].join(" "),
    "",
    "#### Per encoder family",
    "",
    table(
      [
        "family",
        "layer made by",
        "layers tried",
        "reproduced",
        "recipe bytes",
        "regeneration (airpack unpack)",
        "encoder alone (regen.js)",
        "Go compress/gzip, same level",
        "unpack / Go",
        "real tool (making the layer)",
      ],
      famRows,
    ),
    "",
    `MB/s are of uncompressed layer (${mb(U)}). "airpack unpack": best of ${RECIPE_REPEAT} \`airpack unpack F.tar -o ` +
      `out.tar\` of a one-image bundle (.tar, packed from the warm cache), so it includes reading the bundle, the worker ` +
      `thread, hashing and writing out.tar. "encoder alone": \`node dist/bench/regen.js\`, regenerateGzip(recipe) on the ` +
      `main thread, timed inside the process. Go: best of ${RECIPE_REPEAT} \`gogzip LEVEL < layer.tar > /dev/null\`. ` +
      `Recipes in all: ${recipeBytes} bytes (JSON) for ${reproduced.length} layer(s).`,
    "",
    "#### Pack time: identification overhead",
    "",
    table(
      ["run", "command", "wall (best)", "all runs (s)", "uncompressed MB/s", "CPU (best run)", "peak RSS"],
      [
        packRow(
          "with recipes",
          "airpack pack oci:DIR --layers uncompressed --compress none -o A.tar --cache FRESH",
          packA,
        ),
        packRow("without", "… --no-preserve-digests …", packB),
        ...gunzipRows,
      ],
    ),
    "",
    `${encoded.length} images (${encoded.length} gzip layers, ${mb(U * encoded.length)} uncompressed in all). ` +
      `Overhead with recipes: ${sec(overhead)}; one decompress pass over the same layers (sum of the gzip -dc rows): ` +
      `${sec(gunzipPass)}, so the overhead is ${(overhead / gunzipPass).toFixed(1)} passes. ` +
      (encodePass > 0
        ? `A recipe is only recorded after the matching encoder re-made the whole blob and its sha256 matched, so ` +
          `one re-encode pass with airpack's encoders is the floor: the "encoder alone" times of the reproduced ` +
          `layers, summed, are ${sec(encodePass)}. The wall-time overhead is ${(overhead / encodePass).toFixed(2)} ` +
          `of that pass (identification runs in worker threads beside the decompression and the store write)` +
          (cpuOverhead !== undefined ? `; the CPU overhead is ${(cpuOverhead / encodePass).toFixed(2)} passes` : "") +
          `. `
        : "") +
      `Peak RSS of the pack with recipes: ${kbToMb(peakKb(aBest))} (${aBest.processes}).`,
    "",
    "#### Bundle size (.tar.xz, default level)",
    "",
    table(
      ["bundle", "images", "size", "wall", "CPU", "peak RSS"],
      [
        xzRow("A-recipes", `the ${reproduced.length} reproduced, digests preserved`),
        xzRow("B-recipes", `the same, --no-preserve-digests`),
        xzRow("A-all", `all ${encoded.length}, digests preserved`),
        xzRow("B-all", `all ${encoded.length}, --no-preserve-digests`),
      ],
    ),
    "",
    `A/B: ${ratioRecipes.toFixed(4)} for the images with recipes, ${ratioAll.toFixed(4)} overall. ` +
      (keptBytes > 0
        ? `Kept (no recipe) gzip layers in A-all: ${mb(keptBytes)}, which xz cannot shrink; B-all + kept = ` +
          `${mb(xzSizes["B-all"]! + keptBytes)}. `
        : "No layer was kept. ") +
      `Packed from the warm caches of the runs above, so these times are mostly xz.`,
    "",
    "#### Unpack with regeneration",
    "",
    table(
      ["run", "command", "wall", "regenerated MB/s", "CPU", "peak RSS", "processes", "original digests restored"],
      [
        [
          "unpack A-all",
          "airpack unpack A-all.tar.xz -o out.tar",
          sec(unpackAll.wall),
          mbps(regenBytes, unpackAll.wall),
          cpuOf(unpackAll),
          kbToMb(peakKb(unpackAll)),
          unpackAll.processes,
          restoredAll ? `yes, all ${encoded.length} layers (exit 0: unpack checked every sha256)` : "NO",
        ],
      ],
    ),
    "",
    `It regenerates ${reproduced.length} layers (${mb(regenBytes)} of uncompressed input) one after another from ` +
      `the one uncompressed blob (spooled to a temp file first)` +
      (reproduced.length < encoded.length ? " and copies the kept ones." : "."),
  ].join("\n");

  metrics.push(
    {
      metric: "recipes: bundle size A/B (.tar.xz), images with recipes",
      value: `${ratioRecipes.toFixed(4)} (${mb(xzSizes["A-recipes"] ?? 0)} vs ${mb(xzSizes["B-recipes"] ?? 0)})`,
      target: "≤ 1.01",
      verdict: verdict(ratioRecipes <= 1.01),
    },
    {
      metric: `recipes: bundle size A/B (.tar.xz), all ${encoded.length} images (${encoded.length - reproduced.length} kept layer(s))`,
      value: `${ratioAll.toFixed(4)} (${mb(xzSizes["A-all"]!)} vs ${mb(xzSizes["B-all"]!)})`,
      target: "(record)",
      verdict: "info",
    },
    {
      metric: "recipes: identification overhead (pack wall time), in re-encode passes",
      value:
        encodePass > 0
          ? `${(overhead / encodePass).toFixed(2)} (${sec(aBest.wall)} vs ${sec(bBest.wall)}; one pass ${sec(encodePass)})`
          : "n/a",
      target: "≤ 1",
      verdict: encodePass > 0 ? verdict(overhead <= encodePass) : "info",
    },
    {
      metric: "recipes: identification overhead (CPU, user+sys), in re-encode passes",
      value: cpuOverhead !== undefined && encodePass > 0 ? `${(cpuOverhead / encodePass).toFixed(2)}` : "n/a",
      target: "(record)",
      verdict: "info",
    },
    {
      metric: "recipes: identification overhead (pack wall time), in gzip -dc passes",
      value: `${(overhead / gunzipPass).toFixed(1)} (one pass ${sec(gunzipPass)})`,
      target: "(record)",
      verdict: "info",
    },
    {
      metric: "recipes: unpack A-all.tar.xz, original digests restored",
      value: `${restoredAll ? "yes" : "NO"} (${mbps(regenBytes, unpackAll.wall)} regenerated)`,
      target: "exit 0, all digests",
      verdict: verdict(restoredAll),
    },
  );
  if (!KEEP) await rm(src, { recursive: true, force: true });
  return { sections: [{ title, body }], metrics };
}

// ---------------------------------------------------------------------------------------------
// B.4: one ≥ 2 GB gzip layer

export interface BigLayer {
  file: string;
  digest: string;
  size: number;
  /** Remove this path (file or directory) once the gzip layer is made, unless BENCH_KEEP=1. */
  dispose?: string;
}

export async function benchRecipesBig(big: BigLayer | undefined, bigMb: number): Promise<PartResult> {
  const title = "B.4 Peak RSS: digest-preserving bundle with one large gzip layer";
  const tools = buildGoTools();
  const need = bigMb * 2 ** 20 * 4; // source + gzip + store (gzip + tar) + bundle + out.tar, roughly
  if (freeBytes(tmp()) < need) {
    return {
      sections: [{ title, body: `Skipped: ${mb(freeBytes(tmp()))} free in ${tmp()}, about ${mb(need)} needed.` }],
      metrics: [],
    };
  }
  let srcDir: string | undefined;
  if (!big) {
    srcDir = join(tmp(), "recipe-big-src");
    const made = await makeLayout(srcDir, bigMb, 1);
    big = { file: made.layerFile(0), digest: made.layers[0]!.digest, size: made.layerBytes, dispose: srcDir };
  }
  const enc = tools.gopgzip
    ? { name: "klauspost/pgzip -1 (test/helpers/gopgzip)", cmd: `${q(tools.gopgzip)} 1` }
    : tools.gogzip
      ? { name: "Go compress/gzip -1 (fixtures/gogzip)", cmd: `${q(tools.gogzip)} 1` }
      : undefined;
  if (!enc) return { sections: [{ title, body: `Skipped: ${tools.notes.join("; ")}.` }], metrics: [] };
  const dir = join(tmp(), "recipe-big");
  await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  const partial = join(dir, "layer.gz.partial");
  log(`recipes big: ${enc.name} < ${mb(big.size)} layer`);
  const encodeRun = await run("encode big", sh(`${enc.cmd} < ${q(big.file)} > ${q(partial)}`));
  const gz = await hashFile(partial);
  await rename(partial, blobFile(dir, gz.digest));
  if (big.dispose && !KEEP) await rm(big.dispose, { recursive: true, force: true });
  await writeLayoutIndex(dir, [
    { ref: "big", layers: [{ mediaType: GZIP_LAYER, ...gz }], diffIds: [big.digest], labels: {} },
  ]);

  const cache = join(tmp(), "recipe-big-cache");
  const bundle = join(tmp(), "recipe-big.tar.zst");
  log("recipes big: airpack pack --layers uncompressed (digests preserved) --compress zstd --level 1");
  const pack = await run("pack big recipes", [
    AIRPACK,
    "pack",
    `oci:${dir}`,
    "--layers",
    "uncompressed",
    "--compress",
    "zstd",
    "--level",
    "1",
    "-o",
    bundle,
    "--cache",
    cache,
    "-q",
  ]);
  await rm(cache, { recursive: true, force: true });
  await rm(dir, { recursive: true, force: true });
  const inspect = await run("inspect big", [AIRPACK, "inspect", bundle, "--json"], { captureStdout: true });
  const info = JSON.parse(inspect.stdout ?? "{}") as { recipes?: { withRecipe: number; gzipLayers: number } };
  const withRecipe = info.recipes?.withRecipe ?? 0;
  const bundleSize = await fileSize(bundle);
  const outTar = join(tmp(), "recipe-big-out.tar");
  log("recipes big: airpack unpack → tar (regenerates the gzip layer)");
  const unpack = await run("unpack big recipes", [AIRPACK, "unpack", bundle, "-o", outTar, "-q"]);
  const restored = tarMembers(outTar).has(`blobs/sha256/${gz.digest.slice(7)}`);
  const outSize = await fileSize(outTar);
  await rm(outTar, { force: true });
  await rm(bundle, { force: true });

  const row = (name: string, cmd: string, r: RunResult, bytes: number): string[] => [
    name,
    cmd,
    sec(r.wall),
    mbps(bytes, r.wall),
    cpuOf(r),
    r.maxSingleKb !== undefined ? kbToMb(r.maxSingleKb) : "n/a",
    kbToMb(r.hwmSumKb),
    kbToMb(r.rssSumPeakKb),
    r.processes,
  ];
  const body = [
    table(
      [
        "run",
        "command",
        "wall",
        "uncompressed MB/s",
        "CPU",
        "max single process (GNU time)",
        "Σ per-process VmHWM",
        "Σ VmRSS peak (sampled)",
        "processes",
      ],
      [
        row(
          "pack",
          "airpack pack oci:DIR --layers uncompressed --compress zstd --level 1 -o R.tar.zst --cache FRESH",
          pack,
          big.size,
        ),
        row("unpack", "airpack unpack R.tar.zst -o out.tar", unpack, big.size),
      ],
    ),
    "",
    `Layer: ${mb(big.size)} uncompressed (fixtures/make-big.sh), ${mb(gz.size)} after ${enc.name} ` +
      `(${mbps(big.size, encodeRun.wall)}). Recipe found: ${withRecipe}/${info.recipes?.gzipLayers ?? "?"}; ` +
      `bundle ${mb(bundleSize)}; out.tar ${mb(outSize)}, original layer digest ${restored ? "restored" : "MISSING"}.`,
  ].join("\n");
  const metrics: Metric[] = [
    {
      metric: `recipes: peak RSS, pack ${mb(big.size)} gzip layer with recipe`,
      value: `${peakMb(pack).toFixed(0)} MB (recipe ${withRecipe === 1 ? "found" : "NOT found"})`,
      target: "< 300 MB",
      verdict: verdict(peakMb(pack) < 300),
    },
    {
      metric: `recipes: peak RSS, unpack (regenerate) ${mb(big.size)} layer`,
      value: `${peakMb(unpack).toFixed(0)} MB (${mbps(big.size, unpack.wall)})`,
      target: "< 300 MB",
      verdict: verdict(peakMb(unpack) < 300),
    },
  ];
  return { sections: [{ title, body }], metrics };
}
