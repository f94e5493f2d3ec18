/**
 * Shared machinery of the airpack benchmark (bench/run.ts and its parts): running a command under
 * GNU time while sampling its process tree's memory in /proc, formatting, temp space and fixtures.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, readdirSync, readFileSync, statfsSync } from "node:fs";
import { readFile, rm, stat, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join, resolve } from "node:path";

export const ROOT = resolve(__dirname, "..", "..");
export const AIRPACK = join(ROOT, "bin", "airpack");
export const MAKE_BIG = join(ROOT, "fixtures", "make-big.sh");
export const GNU_TIME = "/usr/bin/time";
export const POLL_MS = 100;
export const MB = 1e6;

export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name}=${raw}: expected a whole number`);
  return n;
}

export const KEEP = process.env.BENCH_KEEP === "1";
export const CORES = availableParallelism();

// ---------------------------------------------------------------------------------------------
// Running and measuring one command

export interface RunResult {
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
  /** The command's stdout, with RunOptions.captureStdout. */
  stdout?: string;
}

/** Peak RSS to judge against a target: the larger of the exact single-process peak and the per-process HWM sum. */
export function peakKb(r: RunResult): number {
  return Math.max(r.maxSingleKb ?? 0, r.hwmSumKb, r.rssSumPeakKb);
}

export const haveGnuTime = ((): boolean => {
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
export class TreeSampler {
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

/** The command the bench is waiting for (so a signal handler can stop its process group). */
export function currentChild(): ChildProcess | undefined {
  return current;
}

export interface RunOptions {
  /** Added to (or, for keys set to undefined, left as in) the bench's environment. */
  env?: NodeJS.ProcessEnv;
  /** Keep the command's stdout (up to 1 MiB) in RunResult.stdout instead of discarding it. */
  captureStdout?: boolean;
}

/** Run `argv` (through GNU time when available), sampling its memory; throw if it fails. */
export async function run(label: string, argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeFile = join(tmp(), `.time-${process.pid}`);
  const full = haveGnuTime ? [GNU_TIME, "-o", timeFile, "-f", "%e %U %S %M", ...argv] : argv;
  const start = process.hrtime.bigint();
  const child = spawn(full[0]!, full.slice(1), {
    stdio: ["ignore", opts.captureStdout ? "pipe" : "ignore", "pipe"],
    env: { ...process.env, ...opts.env },
    detached: true, // own process group, so an interrupt can stop the command and its children together
  });
  current = child;
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (d: string) => {
    if (stderr.length < 16384) stderr += d;
  });
  let stdout = "";
  child.stdout?.setEncoding("utf8");
  child.stdout?.on("data", (d: string) => {
    if (stdout.length < 1 << 20) stdout += d;
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
  if (opts.captureStdout) result.stdout = stdout;
  if (haveGnuTime) {
    const fields = (await readFile(timeFile, "utf8")).trim().split("\n").pop()!.split(" ").map(Number);
    await rm(timeFile, { force: true });
    result.cpu = fields[1]! + fields[2]!;
    result.maxSingleKb = fields[3]!;
  }
  return result;
}

export function sh(script: string): string[] {
  return ["bash", "-c", `set -euo pipefail; ${script}`];
}

export function q(path: string): string {
  return `'${path.replace(/'/g, "'\\''")}'`;
}

export function best(runs: RunResult[]): RunResult {
  return runs.reduce((a, b) => (b.wall < a.wall ? b : a));
}

// ---------------------------------------------------------------------------------------------
// Formatting

export const sec = (s: number): string => `${s.toFixed(2)} s`;
export const mbps = (bytes: number, s: number): string => `${(bytes / MB / s).toFixed(1)} MB/s`;
export const mb = (bytes: number): string => `${(bytes / MB).toFixed(1)} MB`;
export const kbToMb = (kb: number): string => `${((kb * 1024) / MB).toFixed(0)} MB`;
export const cpuOf = (r: RunResult): string => (r.cpu !== undefined ? sec(r.cpu) : "n/a");
export const allWalls = (runs: RunResult[]): string => runs.map((r) => r.wall.toFixed(2)).join(" / ");

export function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.map((c) => c.replace(/\|/g, "\\|")).join(" | ")} |`;
  return [line(head), line(head.map(() => "---")), ...rows.map(line)].join("\n");
}

export function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

// ---------------------------------------------------------------------------------------------
// Temp space

let tmpRoot: string | undefined;

export function setTmpRoot(dir: string): void {
  tmpRoot = dir;
}

export function tmp(): string {
  if (!tmpRoot) throw new Error("temp directory not created yet");
  return tmpRoot;
}

/** Remove the temp directory (unless BENCH_KEEP=1). */
export async function cleanupTmp(): Promise<void> {
  if (!tmpRoot) return;
  if (KEEP) {
    log(`BENCH_KEEP=1: kept ${tmpRoot}`);
    return;
  }
  await rm(tmpRoot, { recursive: true, force: true });
}

export function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

export async function fileSize(path: string): Promise<number> {
  return (await stat(path)).size;
}

export interface OciDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

interface OciManifest {
  config: OciDescriptor;
  layers: OciDescriptor[];
}

export interface MadeLayout {
  /** Sum of the layer sizes (uncompressed: make-big.sh layers are plain tars). */
  layerBytes: number;
  /** The layers in manifest order. */
  layers: OciDescriptor[];
  /** Path of layer i's blob. */
  layerFile(i: number): string;
}

export function blobFile(layoutDir: string, digest: string): string {
  return join(layoutDir, "blobs", "sha256", digest.replace(/^sha256:/, ""));
}

/** fixtures/make-big.sh DIR SIZE LAYERS: one image `big` whose layers are uncompressed tars of /usr files. */
export async function makeLayout(dir: string, sizeMb: number, layers: number): Promise<MadeLayout> {
  log(`make-big.sh ${sizeMb} MiB in ${layers} layer(s) → ${dir}`);
  await run("make-big", ["bash", MAKE_BIG, dir, String(sizeMb), String(layers)]);
  const index = JSON.parse(await readFile(join(dir, "index.json"), "utf8")) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(await readFile(blobFile(dir, index.manifests[0]!.digest), "utf8")) as OciManifest;
  return {
    layerBytes: manifest.layers.reduce((a, l) => a + l.size, 0),
    layers: manifest.layers,
    layerFile: (i) => blobFile(dir, manifest.layers[i]!.digest),
  };
}

/** sha256 and size of a file, streamed. */
export async function hashFile(path: string): Promise<{ digest: string; size: number }> {
  const h = createHash("sha256");
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    const b = chunk as Buffer;
    h.update(b);
    size += b.length;
  }
  return { digest: `sha256:${h.digest("hex")}`, size };
}

async function putJsonBlob(layoutDir: string, doc: unknown, mediaType: string): Promise<OciDescriptor> {
  const bytes = Buffer.from(JSON.stringify(doc));
  const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  await writeFile(blobFile(layoutDir, digest), bytes);
  return { mediaType, digest, size: bytes.length };
}

export interface LayoutImage {
  /** org.opencontainers.image.ref.name (the tag in oci:DIR:TAG). */
  ref: string;
  /** Layer blobs, already in the layout's blobs/sha256. */
  layers: OciDescriptor[];
  /** The uncompressed digests of the layers, in order. */
  diffIds: string[];
  /** Config labels, e.g. to tell images with the same layers apart. */
  labels?: Record<string, string>;
}

/**
 * Write configs, manifests and index.json (replacing any earlier one) for `images` into an OCI layout
 * whose layer blobs are already in place. Returns each image's manifest descriptor.
 */
export async function writeLayoutIndex(layoutDir: string, images: LayoutImage[]): Promise<OciDescriptor[]> {
  const manifests: OciDescriptor[] = [];
  for (const img of images) {
    const config = await putJsonBlob(
      layoutDir,
      {
        created: "2023-11-14T22:13:20Z",
        architecture: "amd64",
        os: "linux",
        config: { Cmd: ["/bin/sh"], Labels: img.labels ?? {} },
        rootfs: { type: "layers", diff_ids: img.diffIds },
        history: img.layers.map((_, i) => ({ created_by: `airpack bench ${img.ref} layer ${i}` })),
      },
      "application/vnd.oci.image.config.v1+json",
    );
    const manifest = await putJsonBlob(
      layoutDir,
      {
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config,
        layers: img.layers,
      },
      "application/vnd.oci.image.manifest.v1+json",
    );
    manifests.push({ ...manifest, annotations: { "org.opencontainers.image.ref.name": img.ref } });
  }
  await writeFile(
    join(layoutDir, "index.json"),
    JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests }),
  );
  await writeFile(join(layoutDir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  return manifests;
}

/** Uncompressed size of an .xz file, from `xz --robot --list`. */
export function xzUncompressedSize(file: string): number {
  const r = spawnSync("xz", ["--robot", "--list", file], { encoding: "utf8" });
  const totals = r.stdout.split("\n").find((l) => l.startsWith("totals\t"));
  if (r.status !== 0 || !totals) throw new Error(`xz --list ${file} failed: ${r.stderr}`);
  return Number(totals.split("\t")[4]);
}

// ---------------------------------------------------------------------------------------------
// Report pieces

export type Verdict = "PASS" | "FAIL" | "info";

export interface Metric {
  metric: string;
  value: string;
  target: string;
  verdict: Verdict;
}

export interface Section {
  title: string;
  body: string;
}

/** What a part of the bench adds to the report. */
export interface PartResult {
  sections: Section[];
  metrics: Metric[];
}

export const verdict = (ok: boolean): Verdict => (ok ? "PASS" : "FAIL");

/** Pause (e.g. to let a daemon's log catch up). */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

const benchStart = Date.now();

/** Seconds since the bench started. */
export function elapsedS(): number {
  return (Date.now() - benchStart) / 1000;
}

/** Peak RSS of a run in MB (see peakKb). */
export function peakMb(r: RunResult): number {
  return (peakKb(r) * 1024) / MB;
}
