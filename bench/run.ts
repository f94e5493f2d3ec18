/**
 * airpack benchmark: `npm run bench` (= build, then `node dist/bench/run.js`).
 *
 * Measures, in one run, on layouts made by fixtures/make-big.sh:
 *   1. pack of a ~150 MB layout with uncompressed layers to .tar.xz (-6) vs `tar | xz -6 -T<cores>`,
 *      plus the same pack through lzma-native (AIRPACK_XZ=native) for the record;
 *   2. unpack with verification to a tar on disk vs `xz -dc -T1 > /dev/null`;
 *   3. peak RSS (airpack process + its children) packing and unpacking one layer of ≥ 2 GB;
 *   4. --layers gzip / --layers zstd conversion throughput on the 150 MB layout.
 * Prints a table and writes it to docs/benchmarks.md between the bench markers.
 *
 * Environment:
 *   BENCH_KEEP=1          keep the temp directory (layouts, caches, bundles)
 *   BENCH_REPEAT=N        rounds of the two xz pack commands (default 2; rounds after the first are
 *                         skipped when they would push the bench past BENCH_BUDGET_S, default 540)
 *                         and of the unpack commands (3×N/2+1, at least 3)
 *   BENCH_SMALL_MB=N      size of the layout for 1, 2 and 4 (default 150, 3 layers; keep it > 100)
 *   BENCH_BIG_MB=N        size of the single layer for 3 (default 2100); BENCH_BIG_MB=0 skips 3
 *   BENCH_NO_DOCS=1       print only, leave docs/benchmarks.md alone
 *   BENCH_TMPDIR=DIR      where the temp directory goes (default: the OS temp dir)
 *
 * Timings are wall clock of the whole command (process start to exit), best of the runs; the
 * machine may be shared, so every run is listed and CPU time (user+sys, children included) is
 * shown too. Exits non-zero only when something crashes, never because a target was missed.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statfsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { availableParallelism, loadavg, release, tmpdir, totalmem } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(__dirname, "..", "..");
const AIRPACK = join(ROOT, "bin", "airpack");
const MAKE_BIG = join(ROOT, "fixtures", "make-big.sh");
const DOC = join(ROOT, "docs", "benchmarks.md");
const START_MARK = "<!-- bench:start -->";
const END_MARK = "<!-- bench:end -->";
const GNU_TIME = "/usr/bin/time";
const POLL_MS = 100;
const MB = 1e6;

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name}=${raw}: expected a whole number`);
  return n;
}

const KEEP = process.env.BENCH_KEEP === "1";
const REPEAT = Math.max(1, envInt("BENCH_REPEAT", 2));
const BUDGET_S = envInt("BENCH_BUDGET_S", 540);
const UNPACK_REPEAT = Math.max(3, Math.floor((3 * REPEAT) / 2) + 1);
const SMALL_MB = Math.max(1, envInt("BENCH_SMALL_MB", 150));
const BIG_MB = envInt("BENCH_BIG_MB", 2100);
const CORES = availableParallelism();

// ---------------------------------------------------------------------------------------------
// Running and measuring one command

interface RunResult {
  label: string;
  /** Wall clock seconds, spawn to exit. */
  wall: number;
  /** User and system CPU seconds of the command and its waited-for children (GNU time). */
  cpu?: number;
  /** Largest single-process peak RSS in KiB (GNU time %M = ru_maxrss over the tree). */
  maxSingleKb?: number;
  /** Sum over the command's processes of each one's VmHWM (last sample), KiB. */
  hwmSumKb: number;
  /** Largest sampled sum of VmRSS over the command's processes at one moment, KiB. */
  rssSumPeakKb: number;
  /** Processes seen in the tree, e.g. "node ×1, xz ×1". */
  processes: string;
}

/** Peak RSS to judge against a target: the larger of the exact single-process peak and the per-process HWM sum. */
function peakKb(r: RunResult): number {
  return Math.max(r.maxSingleKb ?? 0, r.hwmSumKb, r.rssSumPeakKb);
}

const haveGnuTime = ((): boolean => {
  if (!existsSync(GNU_TIME)) return false;
  const probe = spawnSync(GNU_TIME, ["-f", "%e %M", "true"], { stdio: ["ignore", "ignore", "pipe"] });
  return probe.status === 0 && /^\d+\.\d+ \d+/m.test(probe.stderr.toString());
})();

/** ppid → child pids, from /proc/<pid>/stat. */
function processTable(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let text: string;
    try {
      text = readFileSync(`/proc/${name}/stat`, "latin1");
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid ...": comm may hold spaces and parens, so split after the last ')'.
    const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
    const ppid = Number(rest[1]);
    const list = children.get(ppid);
    if (list) list.push(Number(name));
    else children.set(ppid, [Number(name)]);
  }
  return children;
}

function descendants(root: number, table: Map<number, number[]>): number[] {
  const out: number[] = [];
  const queue = [...(table.get(root) ?? [])];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    out.push(pid);
    queue.push(...(table.get(pid) ?? []));
  }
  return out;
}

interface ProcStatus {
  name: string;
  rssKb: number;
  hwmKb: number;
}

function readStatus(pid: number): ProcStatus | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, "latin1");
  } catch {
    return undefined;
  }
  const field = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text);
    return m ? Number(m[1]) : 0;
  };
  const name = /^Name:\s+(.*)$/m.exec(text)?.[1] ?? "?";
  return { name, rssKb: field("VmRSS"), hwmKb: field("VmHWM") };
}

/** Samples the process tree under `root` every POLL_MS: per-process VmHWM and the summed VmRSS. */
class TreeSampler {
  private readonly hwm = new Map<number, { name: string; kb: number }>();
  private rssSumPeak = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly root: number,
    private readonly includeRoot: boolean,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), POLL_MS);
  }

  sample(): void {
    const pids = descendants(this.root, processTable());
    if (this.includeRoot) pids.unshift(this.root);
    let sum = 0;
    for (const pid of pids) {
      const st = readStatus(pid);
      if (!st || st.hwmKb === 0) continue; // zombie or kernel thread
      sum += st.rssKb;
      const prior = this.hwm.get(pid);
      if (!prior || st.hwmKb > prior.kb) this.hwm.set(pid, { name: st.name, kb: st.hwmKb });
    }
    this.rssSumPeak = Math.max(this.rssSumPeak, sum);
  }

  stop(): { hwmSumKb: number; rssSumPeakKb: number; processes: string } {
    clearInterval(this.timer);
    const counts = new Map<string, number>();
    let hwmSumKb = 0;
    for (const { name, kb } of this.hwm.values()) {
      hwmSumKb += kb;
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    const processes = [...counts].map(([n, c]) => `${n} ×${c}`).join(", ");
    return { hwmSumKb, rssSumPeakKb: this.rssSumPeak, processes };
  }
}

let current: ChildProcess | undefined;

interface RunOptions {
  env?: Record<string, string>;
}

/** Run `argv` (through GNU time when available), sampling its memory; throw if it fails. */
async function run(label: string, argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeFile = join(tmp(), `.time-${process.pid}`);
  const full = haveGnuTime ? [GNU_TIME, "-o", timeFile, "-f", "%e %U %S %M", ...argv] : argv;
  const start = process.hrtime.bigint();
  const child = spawn(full[0]!, full.slice(1), {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, ...opts.env },
    detached: true, // own process group, so an interrupt can stop the command and its children together
  });
  current = child;
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d: string) => {
    if (stderr.length < 16384) stderr += d;
  });
  if (child.pid === undefined) throw new Error(`${label}: cannot start ${full[0]!}`);
  const sampler = new TreeSampler(child.pid, !haveGnuTime);
  const code = await new Promise<number>((resolveExit, reject) => {
    child.on("error", reject);
    child.on("close", (c, signal) => resolveExit(signal ? 128 : (c ?? 1)));
  });
  const wall = Number(process.hrtime.bigint() - start) / 1e9;
  current = undefined;
  const mem = sampler.stop();
  if (code !== 0) {
    throw new Error(`${label}: exit ${code}\n  command: ${argv.join(" ")}\n${stderr.trim()}`);
  }
  const result: RunResult = { label, wall, ...mem };
  if (haveGnuTime) {
    const fields = (await readFile(timeFile, "utf8")).trim().split("\n").pop()!.split(" ").map(Number);
    await rm(timeFile, { force: true });
    result.cpu = fields[1]! + fields[2]!;
    result.maxSingleKb = fields[3]!;
  }
  return result;
}

function sh(script: string): string[] {
  return ["bash", "-c", `set -euo pipefail; ${script}`];
}

function q(path: string): string {
  return `'${path.replace(/'/g, "'\\''")}'`;
}

function best(runs: RunResult[]): RunResult {
  return runs.reduce((a, b) => (b.wall < a.wall ? b : a));
}

// ---------------------------------------------------------------------------------------------
// Formatting

const sec = (s: number): string => `${s.toFixed(2)} s`;
const mbps = (bytes: number, s: number): string => `${(bytes / MB / s).toFixed(1)} MB/s`;
const mb = (bytes: number): string => `${(bytes / MB).toFixed(1)} MB`;
const kbToMb = (kb: number): string => `${((kb * 1024) / MB).toFixed(0)} MB`;
const cpuOf = (r: RunResult): string => (r.cpu !== undefined ? sec(r.cpu) : "n/a");
const allWalls = (runs: RunResult[]): string => runs.map((r) => r.wall.toFixed(2)).join(" / ");

function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.map((c) => c.replace(/\|/g, "\\|")).join(" | ")} |`;
  return [line(head), line(head.map(() => "---")), ...rows.map(line)].join("\n");
}

function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
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
  ];
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

// ---------------------------------------------------------------------------------------------
// Temp space

let tmpRoot: string | undefined;

function tmp(): string {
  if (!tmpRoot) throw new Error("temp directory not created yet");
  return tmpRoot;
}

async function cleanup(): Promise<void> {
  if (!tmpRoot) return;
  if (KEEP) {
    log(`BENCH_KEEP=1: kept ${tmpRoot}`);
    return;
  }
  await rm(tmpRoot, { recursive: true, force: true });
}

function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

async function fileSize(path: string): Promise<number> {
  return (await stat(path)).size;
}

async function makeLayout(dir: string, sizeMb: number, layers: number): Promise<{ layerBytes: number }> {
  log(`make-big.sh ${sizeMb} MiB in ${layers} layer(s) → ${dir}`);
  await run("make-big", ["bash", MAKE_BIG, dir, String(sizeMb), String(layers)]);
  const blobs = join(dir, "blobs", "sha256");
  const index = JSON.parse(await readFile(join(dir, "index.json"), "utf8")) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(await readFile(join(blobs, index.manifests[0]!.digest.slice(7)), "utf8")) as {
    layers: { size: number }[];
  };
  return { layerBytes: manifest.layers.reduce((a, l) => a + l.size, 0) };
}

/** Uncompressed size of an .xz file, from `xz --robot --list`. */
function xzUncompressedSize(file: string): number {
  const r = spawnSync("xz", ["--robot", "--list", file], { encoding: "utf8" });
  const totals = r.stdout.split("\n").find((l) => l.startsWith("totals\t"));
  if (r.status !== 0 || !totals) throw new Error(`xz --list ${file} failed: ${r.stderr}`);
  return Number(totals.split("\t")[4]);
}

// ---------------------------------------------------------------------------------------------
// The benchmark

type Verdict = "PASS" | "FAIL" | "info";

interface Metric {
  metric: string;
  value: string;
  target: string;
  verdict: Verdict;
}

interface Section {
  title: string;
  body: string;
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const started = new Date();
  const loadStart = loads();
  tmpRoot = await mkdtemp(join(process.env.BENCH_TMPDIR ?? tmpdir(), "airpack-bench-"));
  log(`temp ${tmpRoot}; cores ${CORES}; load ${loadStart}; GNU time ${haveGnuTime ? "yes" : "no"}`);
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
      // Another round, the lzma-native run (about 1.5 airpack runs) and the rest (a couple of minutes).
      const projected = (Date.now() - t0) / 1000 + lastRound + 1.5 * packRuns[i - 1]!.wall + 120;
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

  // --- 3. peak RSS with one ≥ 2 GB layer -------------------------------------------------------
  if (BIG_MB > 0) {
    const need = BIG_MB * 2 ** 20 * 3.6; // layout + store copy + bundle + unpacked tar
    const free = freeBytes(tmp());
    if (free < need) {
      sections.push({
        title: "3. Peak RSS with a single large layer",
        body: `Skipped: ${mb(free)} free in ${tmp()}, about ${mb(need)} needed. Set BENCH_TMPDIR to a roomier place.`,
      });
    } else {
      const big = join(tmp(), "big");
      const { layerBytes: bigBytes } = await makeLayout(big, BIG_MB, 1);
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
      if (!KEEP) {
        await rm(big, { recursive: true, force: true });
        await rm(bigCache, { recursive: true, force: true });
      }
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
          verdict: (peakKb(packBig) * 1024) / MB < 300 ? "PASS" : "FAIL",
        },
        {
          metric: `peak RSS, unpack ${mb(bigBytes)} layer → tar`,
          value: kbToMb(peakKb(unpackBig)),
          target: "< 300 MB",
          verdict: (peakKb(unpackBig) * 1024) / MB < 300 ? "PASS" : "FAIL",
        },
      );
    }
  }
  sections.push(convSection);

  // --- report ----------------------------------------------------------------------------------
  const m = machine();
  const order = ["pack .tar.xz", "unpack", "verify", "peak RSS", "--layers"];
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
      `Bench wall time ${minutes} min. Best of ${rounds} run(s) for pack, ${UNPACK_REPEAT} for unpack.`,
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
  if (current?.pid !== undefined) {
    try {
      process.kill(-current.pid, "SIGTERM"); // the process group of the command this bench started
    } catch {
      // already gone
    }
  }
  void cleanup().finally(() => process.exit(130));
}
process.once("SIGINT", onSignal);
process.once("SIGTERM", onSignal);

main()
  .then(cleanup)
  .catch(async (err: unknown) => {
    process.stderr.write(`bench crashed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    await cleanup();
    process.exitCode = 1;
  });
