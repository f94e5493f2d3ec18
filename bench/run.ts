/**
 * airpack benchmark: `npm run bench` (= build, then `node dist/bench/run.js`).
 *
 * Measures, in one run, on layouts made by fixtures/make-big.sh:
 *   1. pack of a ~150 MB layout with uncompressed layers to .tar.xz (-6) vs `tar | xz -6 -T<cores>`,
 *      plus the same pack through lzma-native (AIRPACK_XZ=native) for the record;
 *   2. unpack with verification to a tar on disk vs `xz -dc -T1 > /dev/null`;
 *   3. peak RSS (airpack process + its children) packing and unpacking one layer of ≥ 2 GB;
 *   4. --layers gzip / --layers zstd conversion throughput on the 150 MB layout;
 *   A. pull from a real registry (bench/pull.ts): airpack pack vs skopeo copy, blob GETs with a warm
 *      cache, peak RSS;
 *   B. digest-preserving bundles (bench/recipes.ts): gzip layers from the real encoders (Go, pgzip,
 *      Python zlib, GNU gzip), bundle size with/without recipes, identification cost, regeneration
 *      throughput per family vs Go, and (B.4) peak RSS with one ≥ 2 GB gzip layer;
 *   S. serve over a .tar.xz from its xz blocks (bench/serve.ts): first byte, one stream vs xz -dc,
 *      50 parallel pulls and their peak RSS.
 * Prints a table and writes it to docs/benchmarks.md between the bench markers.
 *
 * Environment:
 *   BENCH_KEEP=1          keep the temp directory (layouts, caches, bundles)
 *   BENCH_PARTS=LIST      parts to run, comma-separated: base (1, 2, 4), pull (A), inventory (D), recipes (B),
 *                         big (3), recipes-big (B.4), serve (S); default all
 *   BENCH_SERVE_MB=N      S: MiB of layers in the served bundle (default 500, 8 layers)
 *   BENCH_REPEAT=N        rounds of the two xz pack commands (default 2; rounds after the first are
 *                         skipped when they would push the bench past BENCH_BUDGET_S, default 690)
 *                         and of the unpack commands (3×N/2+1, at least 3)
 *   BENCH_SMALL_MB=N      size of the layout for 1, 2 and 4 (default 150, 3 layers; keep it > 100)
 *   BENCH_BIG_MB=N        size of the single layer for 3 and B.4 (default 2100); BENCH_BIG_MB=0 skips 3
 *   BENCH_PULL_MB=N       A: MiB of uncompressed content pushed (default 480; pgzip -1 makes ~43 % of it)
 *   BENCH_PULL_IMAGES=N   A: images (default 3), BENCH_PULL_LAYERS=N layers each (default 2)
 *   BENCH_PULL_REPEAT=N   A: rounds of the cold pulls (default 5)
 *   BENCH_RECIPE_MB=N     B: MiB of the uncompressed layer (default 100)
 *   BENCH_RECIPE_REPEAT=N B: runs of every timed command (default 2; 1 for pack with recipes)
 *   BENCH_RECIPE_BIG=0    skip B.4
 *   BENCH_NO_DOCS=1       print only, leave docs/benchmarks.md alone
 *   BENCH_TMPDIR=DIR      where the temp directory goes (default: the OS temp dir)
 *
 * Timings are wall clock of the whole command (process start to exit), best of the runs; the
 * machine may be shared, so every run is listed and CPU time (user+sys, children included) is
 * shown too. Exits non-zero only when something crashes, never because a target was missed.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { loadavg, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import {
  AIRPACK,
  CORES,
  GNU_TIME,
  KEEP,
  POLL_MS,
  ROOT,
  allWalls,
  best,
  cleanupTmp,
  cpuOf,
  currentChild,
  elapsedS,
  envInt,
  fileSize,
  freeBytes,
  haveGnuTime,
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
  setTmpRoot,
  sh,
  table,
  tmp,
  verdict,
  xzUncompressedSize,
  type Metric,
  type PartResult,
  type RunResult,
  type Section,
} from "./lib";
import { benchPull, PULL_MB } from "./pull";
import { benchServe, SERVE_MB } from "./serve";
import { benchInventory } from "./inventory";
import { benchRecipes, benchRecipesBig, RECIPE_MB, type BigLayer } from "./recipes";

const DOC = join(ROOT, "docs", "benchmarks.md");
const START_MARK = "<!-- bench:start -->";
const END_MARK = "<!-- bench:end -->";

const REPEAT = Math.max(1, envInt("BENCH_REPEAT", 2));
const BUDGET_S = envInt("BENCH_BUDGET_S", 690);
const UNPACK_REPEAT = Math.max(3, Math.floor((3 * REPEAT) / 2) + 1);
const SMALL_MB = Math.max(1, envInt("BENCH_SMALL_MB", 150));
const BIG_MB = envInt("BENCH_BIG_MB", 2100);

const ALL_PARTS = ["base", "pull", "inventory", "recipes", "big", "recipes-big", "serve"] as const;
type Part = (typeof ALL_PARTS)[number];
const PARTS = ((): Set<Part> => {
  const raw = (process.env.BENCH_PARTS ?? "").trim();
  const picked = new Set<Part>();
  for (const name of raw === "" ? ALL_PARTS : raw.split(/[\s,]+/)) {
    if (!(ALL_PARTS as readonly string[]).includes(name)) {
      throw new Error(`BENCH_PARTS: unknown part "${name}" (parts: ${ALL_PARTS.join(", ")})`);
    }
    picked.add(name as Part);
  }
  if (BIG_MB === 0) picked.delete("big");
  if (envInt("BENCH_RECIPE_BIG", 1) === 0) picked.delete("recipes-big");
  return picked;
})();

/**
 * Rough seconds the parts after part 1's pack rounds take on the 2-core reference machine (measured
 * there), so part 1 can drop a round rather than push the bench past BENCH_BUDGET_S.
 */
function restEstimateS(): number {
  let s = 0;
  if (PARTS.has("base")) s += 35 + 0.03 * SMALL_MB; // unpack rounds, conversion
  if (PARTS.has("big")) s += 0.022 * BIG_MB;
  if (PARTS.has("pull")) s += 10 + 0.03 * PULL_MB;
  if (PARTS.has("inventory")) s += 15;
  if (PARTS.has("recipes")) s += 20 + 2.2 * RECIPE_MB;
  if (PARTS.has("recipes-big")) s += 0.045 * (BIG_MB > 0 ? BIG_MB : 2100);
  if (PARTS.has("serve")) s += 40 + 0.35 * SERVE_MB;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Environment description

function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0 && !r.stdout) return "not found";
  return (r.stdout || r.stderr).trim().split("\n")[0]!.trim();
}

function pkgVersion(name: string): string {
  try {
    const doc = JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")) as {
      version?: string;
    };
    return doc.version ?? "?";
  } catch {
    return "not installed";
  }
}

function machine(): { cores: number; cpu: string; memGb: string; kernel: string } {
  let cpu = "unknown";
  try {
    const info = readFileSync("/proc/cpuinfo", "utf8");
    cpu = /^model name\s*:\s*(.*)$/m.exec(info)?.[1]?.trim() ?? cpu;
  } catch {
    // not Linux
  }
  return { cores: CORES, cpu, memGb: (totalmem() / 2 ** 30).toFixed(1), kernel: release() };
}

function toolVersions(): [string, string][] {
  const airpack = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
  let commit = "";
  const git = spawnSync("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"], { encoding: "utf8" });
  if (git.status === 0) {
    const dirty = spawnSync("git", ["-C", ROOT, "status", "--porcelain", "--", "src"], { encoding: "utf8" });
    commit = ` (${git.stdout.trim()}${dirty.stdout.trim() ? ", src modified" : ""})`;
  }
  return [
    ["airpack", `${airpack.version}${commit}`],
    ["node", process.version],
    ["xz", firstLine("xz", ["--version"])],
    ["lzma-native", pkgVersion("lzma-native")],
    ["zstd-napi", pkgVersion("zstd-napi")],
    ["tar-stream", pkgVersion("tar-stream")],
    ["tar", firstLine("tar", ["--version"])],
    ["GNU time", haveGnuTime ? gnuTimeVersion() : "not available (RSS from /proc sampling only)"],
    ...(PARTS.has("pull")
      ? ([
          ["skopeo", firstLine("skopeo", ["--version"])],
          ["docker-registry", firstLine("docker-registry", ["--version"])],
        ] as [string, string][])
      : []),
    ...(PARTS.has("recipes") || PARTS.has("recipes-big")
      ? ([
          ["pako", pkgVersion("pako")],
          ["go (fixtures/gogzip, test/helpers/gopgzip)", firstLine("go", ["version"])],
          [
            "klauspost/pgzip, klauspost/compress",
            `${debVersion("golang-github-klauspost-pgzip-dev")}, ${debVersion("golang-github-klauspost-compress-dev")} (Debian)`,
          ],
          [
            "python3 zlib",
            firstLine("python3", [
              "-c",
              "import sys, zlib; print(sys.version.split()[0], 'zlib', zlib.ZLIB_RUNTIME_VERSION)",
            ]),
          ],
          ["gzip", firstLine("gzip", ["--version"])],
        ] as [string, string][])
      : []),
  ];
}

function debVersion(pkg: string): string {
  const r = spawnSync("dpkg-query", ["-W", "-f", "${Version}", pkg], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : "?";
}

function gnuTimeVersion(): string {
  const line = firstLine(GNU_TIME, ["--version"]);
  if (!/UNKNOWN/.test(line)) return line;
  // Debian's build prints "UNKNOWN"; ask the package manager instead.
  const deb = spawnSync("dpkg-query", ["-W", "-f", "${Version}", "time"], { encoding: "utf8" });
  return deb.status === 0 ? `GNU time ${deb.stdout.trim()} (Debian package)` : line;
}

const loads = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");

/** Parts 1, 2 and 4 (they share the small layout and the bundle of 1). */
async function benchBase(): Promise<{ part: PartResult; rounds: number }> {
  const metrics: Metric[] = [];
  const sections: Section[] = [];
  const T = CORES;

  // --- 1. pack to .tar.xz vs tar | xz ------------------------------------------------------------
  const small = join(tmp(), "layout");
  const { layerBytes } = await makeLayout(small, SMALL_MB, 3);
  const airpackXz = join(tmp(), "airpack.tar.xz");
  const nativeXz = join(tmp(), "airpack-native.tar.xz");
  const baseXz = join(tmp(), "tar.tar.xz");
  const packRuns: RunResult[] = [];
  const baseRuns: RunResult[] = [];
  const packCmd = (out: string, cache: string): string[] => [
    AIRPACK,
    "pack",
    `oci:${small}`,
    "--compress",
    "xz",
    "--level",
    "6",
    "-o",
    out,
    "--cache",
    cache,
    "-q",
  ];
  let rounds = 0;
  let lastRound = 0;
  for (let i = 0; i < REPEAT; i++) {
    if (i > 0) {
      // Another round, the lzma-native run (about 1.5 airpack runs) and the rest (parts 2–4, A, B).
      const projected = elapsedS() + lastRound + 1.5 * packRuns[i - 1]!.wall + restEstimateS();
      if (projected > BUDGET_S) {
        log(`pack: skipping rounds ${i + 1}..${REPEAT}, they would take the bench past ${BUDGET_S} s`);
        break;
      }
    }
    const roundStart = Date.now();
    // Alternate which goes first, so a burst of load elsewhere does not always hit the same one.
    const order = i % 2 === 0 ? ["base", "airpack"] : ["airpack", "base"];
    for (const which of order) {
      if (which === "base") {
        await rm(baseXz, { force: true });
        log(`pack ${i + 1}/${REPEAT}: tar | xz -6 -T${T}`);
        baseRuns.push(await run("tar | xz", sh(`tar -cf - -C ${q(small)} . | xz -6 -T${T} > ${q(baseXz)}`)));
      } else {
        const cache = join(tmp(), `cache-xz-${i}`);
        await rm(airpackXz, { force: true });
        log(`pack ${i + 1}/${REPEAT}: airpack pack --compress xz --level 6 (fresh cache)`);
        packRuns.push(await run("airpack pack xz", packCmd(airpackXz, cache)));
        await rm(cache, { recursive: true, force: true });
      }
    }
    rounds++;
    lastRound = (Date.now() - roundStart) / 1000;
  }
  log("pack: airpack with AIRPACK_XZ=native (lzma-native)");
  const nativeCache = join(tmp(), "cache-native");
  const nativeRun = await run("airpack pack xz (native)", packCmd(nativeXz, nativeCache), {
    env: { AIRPACK_XZ: "native" },
  });
  await rm(nativeCache, { recursive: true, force: true });
  const packBest = best(packRuns);
  const baseBest = best(baseRuns);
  const packSize = await fileSize(airpackXz);
  const baseSize = await fileSize(baseXz);
  const nativeSize = await fileSize(nativeXz);
  const timeRatio = packBest.wall / baseBest.wall;
  const sizeRatio = packSize / baseSize;
  const packRow = (name: string, cmd: string, runs: RunResult[], size: number): string[] => {
    const b = best(runs);
    return [name, cmd, sec(b.wall), allWalls(runs), mbps(layerBytes, b.wall), cpuOf(b), mb(size), kbToMb(peakKb(b))];
  };
  sections.push({
    title: `1. Pack ${mb(layerBytes)} of uncompressed layers (3 layers) to .tar.xz, level 6`,
    body: [
      table(
        ["run", "command", "wall (best)", "all runs (s)", "input MB/s", "CPU (best run)", "output", "peak RSS"],
        [
          packRow(
            "airpack (system xz)",
            `airpack pack oci:DIR --compress xz --level 6 -o X.tar.xz --cache FRESH`,
            packRuns,
            packSize,
          ),
          packRow("tar | xz", `tar -cf - -C DIR . | xz -6 -T${T} > Y.tar.xz`, baseRuns, baseSize),
          packRow("airpack (lzma-native)", "AIRPACK_XZ=native airpack pack … (1 run)", [nativeRun], nativeSize),
        ],
      ),
      "",
      `airpack/tar|xz: time ${timeRatio.toFixed(3)}, size ${sizeRatio.toFixed(4)}; ` +
        `lzma-native/tar|xz: time ${(nativeRun.wall / baseBest.wall).toFixed(3)}, size ${(nativeSize / baseSize).toFixed(4)}. ` +
        `airpack uses all ${T} cores by default (xz -T${T}); the cache is fresh for every run, so each pack also copies ` +
        `the layers into the store first. Peak RSS counts every process (for airpack: node and the xz child).`,
    ].join("\n"),
  });
  metrics.push(
    {
      metric: "pack .tar.xz time, airpack / tar|xz",
      value: `${timeRatio.toFixed(3)} (${sec(packBest.wall)} vs ${sec(baseBest.wall)})`,
      target: "≤ 1.00",
      verdict: timeRatio <= 1 ? "PASS" : "FAIL",
    },
    {
      metric: "pack .tar.xz size, airpack / tar|xz",
      value: `${sizeRatio.toFixed(4)} (${mb(packSize)} vs ${mb(baseSize)})`,
      target: "≤ 1.00",
      verdict: sizeRatio <= 1 ? "PASS" : "FAIL",
    },
    {
      metric: "pack .tar.xz CPU (user+sys, children), airpack / tar|xz",
      value:
        packBest.cpu !== undefined && baseBest.cpu !== undefined
          ? `${(packBest.cpu / baseBest.cpu).toFixed(3)} (${sec(packBest.cpu)} vs ${sec(baseBest.cpu)})`
          : "n/a",
      target: "(record)",
      verdict: "info",
    },
    {
      metric: "pack .tar.xz time, lzma-native / tar|xz",
      value: `${(nativeRun.wall / baseBest.wall).toFixed(3)} (${sec(nativeRun.wall)})`,
      target: "(record)",
      verdict: "info",
    },
  );

  // --- 2. unpack with verification vs xz -dc ---------------------------------------------------
  const bundleTarBytes = xzUncompressedSize(airpackXz);
  const outTar = join(tmp(), "unpacked.tar");
  const unpackRuns: RunResult[] = [];
  const xzdRuns: RunResult[] = [];
  const verifyRuns: RunResult[] = [];
  const xzdMtRuns: RunResult[] = [];
  for (let i = 0; i < UNPACK_REPEAT; i++) {
    log(`unpack ${i + 1}/${UNPACK_REPEAT}`);
    const steps: (() => Promise<void>)[] = [
      async () => {
        xzdRuns.push(await run("xz -dc", sh(`exec xz -dc -T1 ${q(airpackXz)} > /dev/null`)));
      },
      async () => {
        await rm(outTar, { force: true });
        unpackRuns.push(await run("airpack unpack", [AIRPACK, "unpack", airpackXz, "-o", outTar, "-q"]));
      },
      async () => {
        verifyRuns.push(await run("airpack verify", [AIRPACK, "verify", airpackXz, "-q"]));
      },
      async () => {
        xzdMtRuns.push(await run(`xz -dc -T${T}`, sh(`exec xz -dc -T${T} ${q(airpackXz)} > /dev/null`)));
      },
    ];
    if (i % 2 === 1) steps.reverse();
    for (const step of steps) await step();
  }
  const outTarBytes = await fileSize(outTar);
  await rm(outTar, { force: true });
  const unBest = best(unpackRuns);
  const xzBest = best(xzdRuns);
  const vBest = best(verifyRuns);
  const unpackRatio = xzBest.wall / unBest.wall;
  const unRow = (name: string, cmd: string, runs: RunResult[]): string[] => {
    const b = best(runs);
    return [name, cmd, sec(b.wall), allWalls(runs), mbps(bundleTarBytes, b.wall), cpuOf(b), kbToMb(peakKb(b))];
  };
  sections.push({
    title: `2. Unpack the ${mb(packSize)} airpack .tar.xz (${mb(bundleTarBytes)} of bundle tar)`,
    body: [
      table(
        ["run", "command", "wall (best)", "all runs (s)", "bundle-tar MB/s", "CPU (best run)", "peak RSS"],
        [
          unRow("airpack unpack", "airpack unpack X.tar.xz -o out.tar", unpackRuns),
          unRow("xz -dc", "xz -dc -T1 X.tar.xz > /dev/null", xzdRuns),
          unRow("airpack verify", "airpack verify X.tar.xz", verifyRuns),
          unRow(`xz -dc -T${T} (reference)`, `xz -dc -T${T} X.tar.xz > /dev/null`, xzdMtRuns),
        ],
      ),
      "",
      `unpack throughput / xz -dc throughput: ${(unpackRatio * 100).toFixed(1)} %; ` +
        `verify: ${((xzBest.wall / vBest.wall) * 100).toFixed(1)} %. out.tar was ${mb(outTarBytes)}. ` +
        `The last row is for reference only: xz ≥ 5.4 decodes a multi-block stream (as xz -T2 and up write) ` +
        `with several threads.`,
    ].join("\n"),
  });
  metrics.push(
    {
      metric: "unpack .tar.xz → tar throughput, % of xz -dc -T1",
      value: `${(unpackRatio * 100).toFixed(1)} % (${mbps(bundleTarBytes, unBest.wall)} vs ${mbps(bundleTarBytes, xzBest.wall)})`,
      target: "≥ 90 %",
      verdict: unpackRatio >= 0.9 ? "PASS" : "FAIL",
    },
    {
      metric: "verify .tar.xz throughput, % of xz -dc -T1",
      value: `${((xzBest.wall / vBest.wall) * 100).toFixed(1)} % (${mbps(bundleTarBytes, vBest.wall)})`,
      target: "(record)",
      verdict: "info",
    },
  );

  // --- 4. layer conversion (on the same small layout, before it is deleted) ---------------------
  const convRows: string[][] = [];
  for (const mode of ["gzip", "zstd"] as const) {
    const cache = join(tmp(), `cache-${mode}`);
    const out = join(tmp(), `layers-${mode}.tar`);
    log(`--layers ${mode}`);
    const r = await run(`--layers ${mode}`, [
      AIRPACK,
      "pack",
      `oci:${small}`,
      "--layers",
      mode,
      "--compress",
      "none",
      "-o",
      out,
      "--cache",
      cache,
      "-q",
    ]);
    const size = await fileSize(out);
    await rm(cache, { recursive: true, force: true });
    await rm(out, { force: true });
    convRows.push([
      `--layers ${mode}`,
      `airpack pack oci:DIR --layers ${mode} --compress none -o L.tar --cache FRESH`,
      sec(r.wall),
      mbps(layerBytes, r.wall),
      cpuOf(r),
      mb(size),
      kbToMb(peakKb(r)),
    ]);
    metrics.push({
      metric: `--layers ${mode} conversion (${mb(layerBytes)}, 3 layers)`,
      value: `${mbps(layerBytes, r.wall)} (${sec(r.wall)})`,
      target: "(record)",
      verdict: "info",
    });
  }
  const convSection: Section = {
    title: `4. Layer conversion of the ${mb(layerBytes)} layout (default levels, -j 4)`,
    body: [
      table(["run", "command", "wall", "input MB/s", "CPU", "bundle (.tar)", "peak RSS"], convRows),
      "",
      "MB/s is uncompressed layer input over the whole command (store write and bundle write included).",
    ].join("\n"),
  };
  if (!KEEP) await rm(small, { recursive: true, force: true });

  sections.push(convSection);
  return { part: { sections, metrics }, rounds };
}

/** Part 3: peak RSS packing and unpacking one big layer. Leaves the layer for B.4 when `keepLayer`. */
async function benchBig(keepLayer: boolean): Promise<{ part: PartResult; layer?: BigLayer }> {
  const metrics: Metric[] = [];
  const sections: Section[] = [];
  let layer: BigLayer | undefined;
  const T = CORES;
  // --- 3. peak RSS with one ≥ 2 GB layer -------------------------------------------------------
  {
    const need = BIG_MB * 2 ** 20 * 3.6; // layout + store copy + bundle + unpacked tar
    const free = freeBytes(tmp());
    if (free < need) {
      sections.push({
        title: "3. Peak RSS with a single large layer",
        body: `Skipped: ${mb(free)} free in ${tmp()}, about ${mb(need)} needed. Set BENCH_TMPDIR to a roomier place.`,
      });
    } else {
      const big = join(tmp(), "big");
      const made = await makeLayout(big, BIG_MB, 1);
      const bigBytes = made.layerBytes;
      const bigCache = join(tmp(), "cache-big");
      const bigOut = join(tmp(), "big.tar.zst");
      const bigTar = join(tmp(), "big-unpacked.tar");
      log("big: airpack pack --compress zstd --level 1");
      const packBig = await run("pack big", [
        AIRPACK,
        "pack",
        `oci:${big}`,
        "--compress",
        "zstd",
        "--level",
        "1",
        "-o",
        bigOut,
        "--cache",
        bigCache,
        "-q",
      ]);
      if (keepLayer) {
        layer = { file: made.layerFile(0), digest: made.layers[0]!.digest, size: bigBytes, dispose: big };
      } else if (!KEEP) {
        await rm(big, { recursive: true, force: true });
      }
      if (!KEEP) await rm(bigCache, { recursive: true, force: true });
      const bigSize = await fileSize(bigOut);
      log("big: airpack unpack → tar");
      const unpackBig = await run("unpack big", [AIRPACK, "unpack", bigOut, "-o", bigTar, "-q"]);
      const bigTarBytes = await fileSize(bigTar);
      await rm(bigTar, { force: true });
      if (!KEEP) await rm(bigOut, { force: true });
      const rssRow = (name: string, cmd: string, r: RunResult, bytes: number): string[] => [
        name,
        cmd,
        sec(r.wall),
        mbps(bytes, r.wall),
        r.maxSingleKb !== undefined ? kbToMb(r.maxSingleKb) : "n/a",
        kbToMb(r.hwmSumKb),
        kbToMb(r.rssSumPeakKb),
        r.processes,
      ];
      sections.push({
        title: `3. Peak RSS with one ${mb(bigBytes)} layer (outer --compress zstd --level 1)`,
        body: [
          table(
            [
              "run",
              "command",
              "wall",
              "MB/s",
              "max single process (GNU time)",
              "Σ per-process VmHWM",
              "Σ VmRSS peak (sampled)",
              "processes",
            ],
            [
              rssRow(
                "pack",
                "airpack pack oci:BIG --compress zstd --level 1 -o B.tar.zst --cache FRESH",
                packBig,
                bigBytes,
              ),
              rssRow("unpack", "airpack unpack B.tar.zst -o out.tar", unpackBig, bigTarBytes),
            ],
          ),
          "",
          `Bundle ${mb(bigSize)}, unpacked tar ${mb(bigTarBytes)}. zstd (zstd-napi, ${T} workers) runs inside the node ` +
            `process, so the node process is the whole footprint; /proc was sampled every ${POLL_MS} ms for the ` +
            `process tree (children included).`,
        ].join("\n"),
      });
      metrics.push(
        {
          metric: `peak RSS, pack ${mb(bigBytes)} layer (zstd -1)`,
          value: kbToMb(peakKb(packBig)),
          target: "< 300 MB",
          verdict: verdict(peakMb(packBig) < 300),
        },
        {
          metric: `peak RSS, unpack ${mb(bigBytes)} layer → tar`,
          value: kbToMb(peakKb(unpackBig)),
          target: "< 300 MB",
          verdict: verdict(peakMb(unpackBig) < 300),
        },
      );
    }
  }
  return { part: { sections, metrics }, layer };
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const started = new Date();
  const loadStart = loads();
  setTmpRoot(await mkdtemp(join(process.env.BENCH_TMPDIR ?? tmpdir(), "airpack-bench-")));
  log(`temp ${tmp()}; cores ${CORES}; load ${loadStart}; GNU time ${haveGnuTime ? "yes" : "no"}`);
  log(`parts: ${[...PARTS].join(", ")}; budget ${BUDGET_S} s (estimated rest ${restEstimateS().toFixed(0)} s)`);
  const parts: PartResult[] = [];
  let rounds = 0;
  let bigLayer: BigLayer | undefined;
  const runPart = async (name: Part, fn: () => Promise<PartResult>): Promise<void> => {
    if (!PARTS.has(name)) return;
    const start = elapsedS();
    parts.push(await fn());
    log(`part ${name} took ${(elapsedS() - start).toFixed(0)} s (bench at ${elapsedS().toFixed(0)} s)`);
  };
  await runPart("base", async () => {
    const r = await benchBase();
    rounds = r.rounds;
    return r.part;
  });
  await runPart("pull", benchPull);
  await runPart("inventory", benchInventory);
  await runPart("recipes", benchRecipes);
  await runPart("big", async () => {
    const r = await benchBig(PARTS.has("recipes-big"));
    bigLayer = r.layer;
    return r.part;
  });
  await runPart("recipes-big", () => benchRecipesBig(bigLayer, BIG_MB > 0 ? BIG_MB : 2100));
  await runPart("serve", benchServe);
  const metrics = parts.flatMap((p) => p.metrics);
  const sections = parts.flatMap((p) => p.sections);
  const sectionRank = (x: Section): number => {
    const k = /^(\d+|[A-Z](?:\.\d+)?)\./.exec(x.title)?.[1] ?? "Z";
    return /^\d/.test(k) ? Number(k) : 100 + k.charCodeAt(0) + (k.length > 1 ? Number(k.slice(2)) / 10 : 0);
  };
  sections.sort((a, b) => sectionRank(a) - sectionRank(b));

  // --- report ----------------------------------------------------------------------------------
  const m = machine();
  const order = [
    ...["pack .tar.xz", "unpack", "verify", "peak RSS", "--layers", "pull:", "inventory:", "recipes:"],
    "serve .tar.xz",
  ];
  const rank = (x: Metric): number => order.findIndex((p) => x.metric.startsWith(p));
  metrics.sort((a, b) => rank(a) - rank(b));
  const summary = table(
    ["metric", "value", "target", "result"],
    metrics.map((x) => [x.metric, x.value, x.target, x.verdict === "info" ? "—" : `**${x.verdict}**`]),
  );
  const minutes = ((Date.now() - t0) / 60000).toFixed(1);
  const md = [
    `Run ${started.toISOString().replace(/\.\d+Z$/, "Z")} on ${m.cores} cores, ${m.cpu}, ${m.memGb} GiB RAM, ` +
      `Linux ${m.kernel}. Load average (1/5/15 min) at start ${loadStart}, at end ${loads()}. ` +
      `Bench wall time ${minutes} min.` +
      (PARTS.has("base") ? ` Best of ${rounds} run(s) for pack, ${UNPACK_REPEAT} for unpack.` : "") +
      (PARTS.size < ALL_PARTS.length ? ` Parts run: ${[...PARTS].join(", ")}.` : ""),
    "",
    table(
      ["tool", "version"],
      toolVersions().map(([k, v]) => [k, v]),
    ),
    "",
    "### Summary",
    "",
    summary,
    "",
    ...sections.flatMap((s) => [`### ${s.title}`, "", s.body, ""]),
  ].join("\n");
  process.stdout.write(`\n${md}\n`);

  if (process.env.BENCH_NO_DOCS !== "1") await writeDoc(md);
}

async function writeDoc(md: string): Promise<void> {
  let text: string;
  try {
    text = await readFile(DOC, "utf8");
  } catch {
    text = `# Benchmarks\n\nProduced by \`npm run bench\` (bench/run.ts).\n\n${START_MARK}\n${END_MARK}\n`;
  }
  const a = text.indexOf(START_MARK);
  const b = text.indexOf(END_MARK);
  const block = `${START_MARK}\n\n${md.trim()}\n\n${END_MARK}`;
  if (a >= 0 && b > a) text = text.slice(0, a) + block + text.slice(b + END_MARK.length);
  else text = `${text.trimEnd()}\n\n${block}\n`;
  await mkdir(join(ROOT, "docs"), { recursive: true });
  await writeFile(DOC, text);
  // Keep the file as `prettier --check .` (npm test) wants it: aligned tables.
  const prettier = join(ROOT, "node_modules", ".bin", "prettier");
  if (existsSync(prettier)) {
    const r = spawnSync(prettier, ["--write", "--log-level", "warn", DOC], { encoding: "utf8" });
    if (r.status !== 0) log(`prettier --write ${DOC} failed: ${(r.stderr || r.stdout).trim()}`);
  }
  log(`wrote ${DOC}`);
}

function onSignal(signal: NodeJS.Signals): void {
  log(`${signal}: stopping`);
  const current = currentChild();
  if (current?.pid !== undefined) {
    try {
      process.kill(-current.pid, "SIGTERM"); // the process group of the command this bench started
    } catch {
      // already gone
    }
  }
  void cleanupTmp().finally(() => process.exit(130));
}
process.once("SIGINT", onSignal);
process.once("SIGTERM", onSignal);

main()
  .then(cleanupTmp)
  .catch(async (err: unknown) => {
    process.stderr.write(`bench crashed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    await cleanupTmp();
    process.exitCode = 1;
  });
