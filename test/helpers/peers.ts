/**
 * Real peers for end-to-end tests: containerd (+ ctr), podman, skopeo and a
 * CNCF distribution registry. Every peer lives in its own temp dir, listens
 * only on 127.0.0.1 / unix sockets inside that dir, and is torn down by
 * stop()/cleanup() (idempotent: a second call waits for the first one).
 *
 * Facts about the peers' behaviour are recorded in docs/peers.md.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import * as fs from "node:fs/promises";
import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { Readable } from "node:stream";
import type { TestContext } from "node:test";

// ---------------------------------------------------------------------------
// processes
// ---------------------------------------------------------------------------

export type RunInput = Buffer | string | Readable;

export interface RunOptions {
  /** Fed to the child's stdin (stdin is closed when it ends). Without it stdin is empty. */
  input?: RunInput;
  /** Full environment for the child; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Kill the child (SIGKILL) and reject after this long. Default 120 s. */
  timeoutMs?: number;
}

export interface RunResult {
  /** Exit code; -1 when the child was ended by a signal. */
  code: number;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

const DEFAULT_TIMEOUT_MS = 120_000;

export class CommandError extends Error {
  constructor(
    readonly cmd: string,
    readonly args: readonly string[],
    readonly result: RunResult,
  ) {
    super(
      `${formatCommand(cmd, args)} exited with ${result.signal ?? result.code}: ` +
        `${tail(result.stderr || result.stdout.toString("utf8"), 4000)}`,
    );
    this.name = "CommandError";
  }
}

export function formatCommand(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(" ");
}

function tail(text: string, max: number): string {
  return text.length <= max ? text.trim() : `...${text.slice(text.length - max).trim()}`;
}

/**
 * Runs a command to completion. Resolves with the exit code whatever it is;
 * rejects only when the command cannot be spawned or runs past timeoutMs.
 */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise<RunResult>((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawn(cmd, [...args], {
        cwd: opts.cwd,
        env: opts.env ?? process.env,
        stdio: ["pipe", "pipe", "pipe"],
      });
    } catch (err) {
      reject(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let settled = false;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    child.stdout?.on("data", (c: Buffer) => out.push(c));
    child.stderr?.on("data", (c: Buffer) => err.push(c));
    child.on("error", (e) => finish(() => reject(new Error(`cannot run ${formatCommand(cmd, args)}: ${e.message}`))));
    child.on("close", (code, signal) => {
      const result: RunResult = {
        code: code ?? -1,
        signal,
        stdout: Buffer.concat(out),
        stderr: Buffer.concat(err).toString("utf8"),
      };
      if (timedOut) {
        finish(() =>
          reject(
            new Error(
              `${formatCommand(cmd, args)} timed out after ${timeoutMs} ms; stderr: ${tail(result.stderr, 2000)}`,
            ),
          ),
        );
      } else {
        finish(() => resolve(result));
      }
    });
    const stdin = child.stdin;
    if (!stdin) return;
    // The child may exit without reading all of its input: ignore EPIPE & co.
    stdin.on("error", () => undefined);
    const input = opts.input;
    if (input === undefined) {
      stdin.end();
    } else if (typeof input === "string" || Buffer.isBuffer(input)) {
      stdin.end(input);
    } else {
      input.on("error", (e: Error) => {
        stdin.destroy();
        child.kill("SIGKILL");
        finish(() => reject(new Error(`input stream for ${formatCommand(cmd, args)} failed: ${e.message}`)));
      });
      input.pipe(stdin);
    }
  });
}

/** Like run(), but throws a CommandError (carrying stderr) on a non-zero exit. */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const result = await run(cmd, args, opts);
  if (result.code !== 0) throw new CommandError(cmd, args, result);
  return result;
}

/** Absolute path of an executable on PATH, or null. */
export async function which(cmd: string): Promise<string | null> {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, cmd);
    try {
      await fs.access(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return null;
}

/** The subset of `cmds` not found on PATH (for test skips). */
export async function missingTools(cmds: readonly string[]): Promise<string[]> {
  const found = await Promise.all(cmds.map((c) => which(c)));
  return cmds.filter((_, i) => found[i] === null);
}

function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

/** Whether we run under CI (env CI set, e.g. CI=true): then missing peers fail tests instead of skipping them. */
export function isCI(): boolean {
  const ci = (process.env.CI ?? "").trim().toLowerCase();
  return ci !== "" && ci !== "0" && ci !== "false";
}

/** Why real peers cannot run here (tools missing from PATH, or not root), or null when they can. */
export async function peersUnavailable(tools: readonly string[]): Promise<string | null> {
  const missing = await missingTools(tools);
  if (missing.length > 0) return `missing: ${missing.join(", ")}`;
  if (!isRoot()) return "needs root";
  return null;
}

/**
 * Skips the test (returns true) when `reason` is set, i.e. a peer is unavailable
 * (see peersUnavailable). Under CI (isCI()) it throws instead, so the test fails.
 */
export function skipOrFail(t: TestContext, reason: string | null): boolean {
  if (reason === null) return false;
  if (isCI()) throw new Error(`real peers unavailable under CI: ${reason}`);
  t.skip(reason);
  return true;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// temp dirs and ports
// ---------------------------------------------------------------------------

/** A fresh directory under os.tmpdir(); the caller removes it (see removeDir). */
export async function makeTempDir(prefix: string): Promise<string> {
  const safe = prefix.replace(/[^\w.-]/g, "-");
  return fs.mkdtemp(path.join(os.tmpdir(), safe.endsWith("-") ? safe : `${safe}-`));
}

function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Mount points at or below `dir` (deepest first), read from /proc/self/mountinfo. */
export async function mountsUnder(dir: string): Promise<string[]> {
  let info: string;
  try {
    info = await fs.readFile("/proc/self/mountinfo", "utf8");
  } catch {
    return [];
  }
  const root = path.resolve(dir);
  const found: string[] = [];
  for (const line of info.split("\n")) {
    const fields = line.split(" ");
    if (fields.length < 5) continue;
    const mp = unescapeMountPath(fields[4] ?? "");
    if (mp === root || mp.startsWith(`${root}/`)) found.push(mp);
  }
  return found.sort((a, b) => b.length - a.length);
}

/** rm -rf that first lazily unmounts anything left mounted below `dir`. Never throws for a missing dir. */
export async function removeDir(dir: string): Promise<void> {
  if (isRoot()) {
    for (const mp of await mountsUnder(dir)) {
      await run("umount", ["-l", mp], { timeoutMs: 10_000 }).catch(() => undefined);
    }
  }
  await fs.rm(dir, {
    recursive: true,
    force: true,
    maxRetries: 3,
    retryDelay: 100,
  });
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      if (addr === null || typeof addr === "string") {
        srv.close();
        reject(new Error("could not get a free port"));
        return;
      }
      const port = addr.port;
      srv.close(() => resolve(port));
    });
  });
}

function sha256Hex(data: Buffer | string): string {
  return createHash("sha256").update(data).digest("hex");
}

// ---------------------------------------------------------------------------
// long-running daemons
// ---------------------------------------------------------------------------

const liveDaemons = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort if a test forgets stop(): never leave a daemon behind.
  process.on("exit", () => {
    for (const child of liveDaemons) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
  });
}

/** A background process whose stdout+stderr go to a log file and to memory. */
class Daemon {
  readonly child: ChildProcess;
  private readonly chunks: Buffer[] = [];
  private readonly exited: Promise<void>;
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  spawnError: Error | null = null;

  constructor(
    readonly cmd: string,
    readonly args: readonly string[],
    logFile: string,
    env: NodeJS.ProcessEnv,
  ) {
    installExitHook();
    const log = createWriteStream(logFile, { flags: "a" });
    this.child = spawn(cmd, [...args], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    liveDaemons.add(this.child);
    const onData = (c: Buffer): void => {
      this.chunks.push(c);
      log.write(c);
    };
    this.child.stdout?.on("data", onData);
    this.child.stderr?.on("data", onData);
    this.exited = new Promise<void>((resolve) => {
      this.child.on("error", (e) => {
        this.spawnError = e;
        liveDaemons.delete(this.child);
        log.end();
        resolve();
      });
      this.child.on("close", (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        liveDaemons.delete(this.child);
        log.end();
        resolve();
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.spawnError === null && this.exitCode === null && this.exitSignal === null;
  }

  logs(): string {
    return Buffer.concat(this.chunks).toString("utf8");
  }

  describeExit(): string {
    if (this.spawnError) return `could not start ${this.cmd}: ${this.spawnError.message}`;
    return `${this.cmd} exited early (${this.exitSignal ?? this.exitCode}); log tail:\n${tail(this.logs(), 3000)}`;
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone. */
  async kill(graceMs = 5000): Promise<void> {
    if (this.running) {
      this.child.kill("SIGTERM");
      const timer = setTimeout(() => {
        if (this.running) this.child.kill("SIGKILL");
      }, graceMs);
      await this.exited;
      clearTimeout(timer);
    } else {
      await this.exited;
    }
  }
}

/** Polls `probe` until it returns true; fails fast if the daemon dies. */
async function waitUntil(
  daemon: Daemon,
  what: string,
  timeoutMs: number,
  probe: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!daemon.running) throw new Error(`${what}: ${daemon.describeExit()}`);
    if (await probe().catch(() => false)) return;
    if (!daemon.running) throw new Error(`${what}: ${daemon.describeExit()}`);
    if (Date.now() > deadline) {
      throw new Error(`${what}: not ready after ${timeoutMs} ms; log tail:\n${tail(daemon.logs(), 3000)}`);
    }
    await sleep(100);
  }
}

function onceOnly(fn: () => Promise<void>): () => Promise<void> {
  let pending: Promise<void> | null = null;
  return () => {
    pending ??= fn();
    return pending;
  };
}

// ---------------------------------------------------------------------------
// /var/lib isolation for containers/image tools (podman, skopeo)
// ---------------------------------------------------------------------------
//
// As root, containers/image keeps its blob-info cache in
// /var/lib/containers/cache/blob-info-cache-v1.boltdb whatever HOME/XDG say,
// and neither podman 4.3 nor skopeo 1.9 has a flag for it. When we are root
// and `unshare` works, each podman/skopeo call runs in a private mount
// namespace where a temp dir is bind-mounted over /var/lib, so the cache (and
// anything else under /var/lib) is per-helper and the host is never touched.

let varLibIsolationProbe: Promise<boolean> | null = null;

/** Whether podman/skopeo calls can get a private /var/lib (root + unshare + mount). */
export function canIsolateVarLib(): Promise<boolean> {
  varLibIsolationProbe ??= (async () => {
    if (!isRoot() || process.platform !== "linux") return false;
    if ((await missingTools(["unshare", "mount", "sh"])).length > 0) return false;
    const dir = await makeTempDir("airpack-varlib-probe");
    try {
      const r = await run("unshare", [...varLibWrapperArgs(dir), "true"], {
        timeoutMs: 10_000,
      });
      return r.code === 0;
    } catch {
      return false;
    } finally {
      await removeDir(dir);
    }
  })();
  return varLibIsolationProbe;
}

function varLibWrapperArgs(varLibDir: string): string[] {
  return [
    "--mount",
    "--propagation",
    "private",
    "--",
    "sh",
    "-c",
    'mount --bind "$0" /var/lib && exec "$@"',
    varLibDir,
  ];
}

/** Command + args that run `cmd args` with `varLibDir` over /var/lib (or directly when not isolated). */
function wrapVarLib(isolated: boolean, varLibDir: string, cmd: string, args: readonly string[]): [string, string[]] {
  return isolated ? ["unshare", [...varLibWrapperArgs(varLibDir), cmd, ...args]] : [cmd, [...args]];
}

/** Env for containers/image tools that keeps them off the user's config, auth and cache files. */
function containersEnv(dir: string, extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return {
    ...process.env,
    HOME: path.join(dir, "home"),
    XDG_CONFIG_HOME: path.join(dir, "home", ".config"),
    XDG_DATA_HOME: path.join(dir, "home", ".local", "share"),
    XDG_CACHE_HOME: path.join(dir, "home", ".cache"),
    XDG_RUNTIME_DIR: path.join(dir, "xdg-run"),
    TMPDIR: path.join(dir, "tmp"),
    CONTAINERS_REGISTRIES_CONF: path.join(dir, "registries.conf"),
    REGISTRY_AUTH_FILE: path.join(dir, "auth.json"),
    ...extra,
  };
}

async function writeContainersFiles(dir: string): Promise<void> {
  for (const sub of ["home/.config", "home/.local/share", "home/.cache", "xdg-run", "tmp", "varlib", "registries.d"]) {
    await fs.mkdir(path.join(dir, sub), { recursive: true, mode: 0o700 });
  }
  await fs.writeFile(path.join(dir, "registries.conf"), "unqualified-search-registries = []\n");
  await fs.writeFile(path.join(dir, "auth.json"), '{"auths":{}}\n', {
    mode: 0o600,
  });
  await fs.writeFile(path.join(dir, "policy.json"), '{"default":[{"type":"insecureAcceptAnything"}]}\n');
}

function tomlString(s: string): string {
  return JSON.stringify(s);
}

// ---------------------------------------------------------------------------
// containerd
// ---------------------------------------------------------------------------

export interface ContainerdOptions {
  /** Snapshotter for unpacking. Default: $AIRPACK_TEST_SNAPSHOTTER, else overlayfs if its plugin loaded, else native. */
  snapshotter?: string;
  /** Default namespace for ctr(); default 'k8s.io'. */
  namespace?: string;
  startTimeoutMs?: number;
}

export interface CtrOptions extends RunOptions {
  /** Namespace for this call; null means no -n flag (ctr's own default). */
  namespace?: string | null;
}

export interface ImportOptions {
  allPlatforms?: boolean;
  platform?: string;
  namespace?: string;
  /** Skip unpacking into the snapshotter (then no snapshotter is needed). */
  noUnpack?: boolean;
  digests?: boolean;
  baseName?: string;
  indexName?: string;
  /** Extra ctr images import flags (before the source). */
  extraArgs?: readonly string[];
  /** Throw on non-zero exit (default true). */
  check?: boolean;
  timeoutMs?: number;
}

/** One row of `ctr images ls`. */
export interface CtrImage {
  name: string;
  mediaType: string;
  digest: string;
  /** As printed, e.g. "775.0 B", "1.2 KiB". */
  size: string;
  platforms: string[];
  /** Raw LABELS column ("-" when none). */
  labels: string;
}

export interface Containerd {
  readonly dir: string;
  /** grpc unix socket. */
  readonly address: string;
  readonly namespace: string;
  readonly snapshotter: string;
  readonly pid: number | undefined;
  ctr(args: readonly string[], opts?: CtrOptions): Promise<RunResult>;
  ctrOk(args: readonly string[], opts?: CtrOptions): Promise<RunResult>;
  /** `ctr images import [flags] SOURCE`; a Readable/Buffer source is fed through stdin as `-`. */
  importImage(source: string | Readable | Buffer, opts?: ImportOptions): Promise<RunResult>;
  listImages(namespace?: string): Promise<CtrImage[]>;
  removeImages(names: readonly string[], namespace?: string): Promise<void>;
  logs(): string;
  stop(): Promise<void>;
}

const CONTAINERD_DISABLED_PLUGINS = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  // creates /opt/containerd on the host otherwise
  "io.containerd.internal.v1.opt",
];

export async function startContainerd(opts: ContainerdOptions = {}): Promise<Containerd> {
  const dir = await makeTempDir("airpack-ctd");
  const address = path.join(dir, "s", "grpc.sock");
  if (Buffer.byteLength(address) > 100) {
    await removeDir(dir);
    throw new Error(`containerd socket path too long for a unix socket: ${address} (set TMPDIR shorter)`);
  }
  let daemon: Daemon | null = null;
  try {
    for (const sub of ["root", "state", "tmp", "s"]) await fs.mkdir(path.join(dir, sub), { mode: 0o711 });
    const config = [
      "version = 2",
      `root = ${tomlString(path.join(dir, "root"))}`,
      `state = ${tomlString(path.join(dir, "state"))}`,
      `temp = ${tomlString(path.join(dir, "tmp"))}`,
      `disabled_plugins = [${CONTAINERD_DISABLED_PLUGINS.map(tomlString).join(", ")}]`,
      "oom_score = 0",
      "",
      "[grpc]",
      `  address = ${tomlString(address)}`,
      "",
      "[ttrpc]",
      `  address = ${tomlString(path.join(dir, "s", "ttrpc.sock"))}`,
      "",
      "[debug]",
      '  level = "info"',
      "",
      "[metrics]",
      '  address = ""',
      "",
    ].join("\n");
    const configPath = path.join(dir, "config.toml");
    await fs.writeFile(configPath, config);
    daemon = new Daemon("containerd", ["--config", configPath], path.join(dir, "containerd.log"), {
      ...process.env,
      TMPDIR: path.join(dir, "tmp"),
    });
    const d = daemon;
    await waitUntil(d, "containerd", opts.startTimeoutMs ?? 30_000, async () => {
      if (!(await exists(address))) return false;
      const r = await run("ctr", ["--address", address, "version"], {
        timeoutMs: 5000,
      });
      return r.code === 0;
    });
    let snapshotter = opts.snapshotter ?? process.env.AIRPACK_TEST_SNAPSHOTTER ?? "";
    if (!snapshotter) {
      const plugins = await runOk("ctr", ["--address", address, "plugins", "ls"], { timeoutMs: 10_000 });
      const overlayOk = plugins.stdout
        .toString("utf8")
        .split("\n")
        .some((l) => /^io\.containerd\.snapshotter\.v1\s+overlayfs\s+\S+\s+ok\s*$/.test(l.trim()));
      snapshotter = overlayOk ? "overlayfs" : "native";
    }
    return new ContainerdPeer(dir, address, opts.namespace ?? "k8s.io", snapshotter, d);
  } catch (err) {
    if (daemon) await daemon.kill();
    await removeDir(dir);
    throw err;
  }
}

class ContainerdPeer implements Containerd {
  readonly stop: () => Promise<void>;

  constructor(
    readonly dir: string,
    readonly address: string,
    readonly namespace: string,
    readonly snapshotter: string,
    private readonly daemon: Daemon,
  ) {
    this.stop = onceOnly(async () => {
      await this.daemon.kill();
      await removeDir(this.dir);
    });
  }

  get pid(): number | undefined {
    return this.daemon.pid;
  }

  private ctrArgs(args: readonly string[], ns: string | null | undefined): string[] {
    const namespace = ns === undefined ? this.namespace : ns;
    return ["--address", this.address, ...(namespace === null ? [] : ["-n", namespace]), ...args];
  }

  ctr(args: readonly string[], opts: CtrOptions = {}): Promise<RunResult> {
    const { namespace, ...runOpts } = opts;
    return run("ctr", this.ctrArgs(args, namespace), runOpts);
  }

  ctrOk(args: readonly string[], opts: CtrOptions = {}): Promise<RunResult> {
    const { namespace, ...runOpts } = opts;
    return runOk("ctr", this.ctrArgs(args, namespace), runOpts);
  }

  async importImage(source: string | Readable | Buffer, opts: ImportOptions = {}): Promise<RunResult> {
    const flags: string[] = [];
    if (opts.allPlatforms) flags.push("--all-platforms");
    if (opts.platform) flags.push("--platform", opts.platform);
    if (opts.digests) flags.push("--digests");
    if (opts.baseName) flags.push("--base-name", opts.baseName);
    if (opts.indexName) flags.push("--index-name", opts.indexName);
    if (opts.noUnpack) flags.push("--no-unpack");
    else flags.push("--snapshotter", this.snapshotter);
    flags.push(...(opts.extraArgs ?? []));
    const fromStdin = typeof source !== "string";
    const args = ["images", "import", ...flags, fromStdin ? "-" : source];
    const runOpts: CtrOptions = {
      namespace: opts.namespace,
      timeoutMs: opts.timeoutMs ?? 300_000,
      ...(fromStdin ? { input: source } : {}),
    };
    return opts.check === false ? this.ctr(args, runOpts) : this.ctrOk(args, runOpts);
  }

  async listImages(namespace?: string): Promise<CtrImage[]> {
    const r = await this.ctrOk(["images", "ls"], { namespace });
    return parseCtrImages(r.stdout.toString("utf8"));
  }

  async removeImages(names: readonly string[], namespace?: string): Promise<void> {
    if (names.length > 0) await this.ctrOk(["images", "rm", ...names], { namespace });
  }

  logs(): string {
    return this.daemon.logs();
  }
}

/**
 * Parses `ctr images ls` (tabwriter output: REF TYPE DIGEST SIZE PLATFORMS
 * LABELS). Cells are aligned under the header, so columns are cut at the
 * header's offsets (SIZE contains a space: "775.0 B").
 */
export function parseCtrImages(text: string): CtrImage[] {
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  const header = lines.shift();
  if (header === undefined) return [];
  const names = ["REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"];
  const starts = names.map((n) => header.search(new RegExp(`(^|\\s)${n}(\\s|$)`)));
  const aligned = starts.every((s, i) => s >= 0 && (i === 0 || s > (starts[i - 1] ?? 0)));
  const offsets = starts.map((s) => (s > 0 ? s + 1 : s)); // search() matched the leading space
  const rows: CtrImage[] = [];
  for (const line of lines) {
    let cells: string[];
    const fields = line.trim().split(/\s+/);
    if (aligned && offsets.every((o, i) => i === 0 || line[o - 1] === " " || line[o - 1] === undefined)) {
      cells = offsets.map((o, i) => line.slice(o, offsets[i + 1] ?? line.length).trim());
    } else {
      // Fallback: whitespace split; SIZE is two tokens.
      cells = [
        fields[0] ?? "",
        fields[1] ?? "",
        fields[2] ?? "",
        `${fields[3] ?? ""} ${fields[4] ?? ""}`.trim(),
        fields[5] ?? "",
        fields.slice(6).join(" "),
      ];
    }
    const [name = "", mediaType = "", digest = "", size = "", platforms = "", labels = ""] = cells;
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) {
      throw new Error(`cannot parse ctr images ls row: ${JSON.stringify(line)}`);
    }
    rows.push({
      name,
      mediaType,
      digest,
      size,
      platforms: platforms === "" || platforms === "-" ? [] : platforms.split(","),
      labels: labels || "-",
    });
  }
  return rows;
}

// ---------------------------------------------------------------------------
// podman
// ---------------------------------------------------------------------------

export interface PodmanImage {
  id: string;
  /** Manifest digest as stored by podman. */
  digest: string;
  /** e.g. ["docker.io/library/smoke:1"]; empty for a dangling image. */
  names: string[];
  repoDigests: string[];
}

/** The parts of `podman image inspect` the tests look at; everything else is kept as unknown. */
export interface PodmanInspect {
  Id: string;
  Digest: string;
  RepoTags: string[] | null;
  RepoDigests: string[] | null;
  Architecture?: string;
  Os?: string;
  RootFS?: { Type: string; Layers?: string[] };
  Annotations?: Record<string, string>;
  ManifestType?: string;
  [key: string]: unknown;
}

export interface PodmanLoadOptions {
  check?: boolean;
  timeoutMs?: number;
}

export interface PodmanLoadResult extends RunResult {
  /** Names from "Loaded image(s): ..." lines. */
  loaded: string[];
}

export interface Podman {
  readonly dir: string;
  readonly root: string;
  readonly runroot: string;
  readonly env: NodeJS.ProcessEnv;
  /** Whether calls run with a private /var/lib (see canIsolateVarLib). */
  readonly isolated: boolean;
  podman(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  podmanOk(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** `podman load -i PATH`, or `podman load` reading a Readable/Buffer from stdin. */
  load(source: string | Readable | Buffer, opts?: PodmanLoadOptions): Promise<PodmanLoadResult>;
  images(): Promise<PodmanImage[]>;
  imageInspect(name: string): Promise<PodmanInspect>;
  removeAllImages(): Promise<void>;
  cleanup(): Promise<void>;
  stop(): Promise<void>;
}

export async function createPodman(): Promise<Podman> {
  const dir = await makeTempDir("airpack-podman");
  try {
    await writeContainersFiles(dir);
    const root = path.join(dir, "root");
    const runroot = path.join(dir, "run");
    for (const sub of [root, runroot, path.join(dir, "networks")]) await fs.mkdir(sub, { mode: 0o700 });
    const storageConf = [
      "[storage]",
      'driver = "vfs"',
      `graphroot = ${tomlString(root)}`,
      `runroot = ${tomlString(runroot)}`,
      "",
    ].join("\n");
    const containersConf = [
      "[engine]",
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      `events_logfile_path = ${tomlString(path.join(dir, "events.log"))}`,
      `tmp_dir = ${tomlString(path.join(runroot, "libpod"))}`,
      // podman load extracts oci-archive tars here (default /var/tmp)
      `image_copy_tmp_dir = ${tomlString(path.join(dir, "tmp"))}`,
      "",
      "[network]",
      `network_config_dir = ${tomlString(path.join(dir, "networks"))}`,
      "",
    ].join("\n");
    await fs.writeFile(path.join(dir, "storage.conf"), storageConf);
    await fs.writeFile(path.join(dir, "containers.conf"), containersConf);
    const env = containersEnv(dir, {
      CONTAINERS_CONF: path.join(dir, "containers.conf"),
      CONTAINERS_STORAGE_CONF: path.join(dir, "storage.conf"),
    });
    return new PodmanPeer(dir, root, runroot, env, await canIsolateVarLib());
  } catch (err) {
    await removeDir(dir);
    throw err;
  }
}

class PodmanPeer implements Podman {
  readonly cleanup: () => Promise<void>;

  constructor(
    readonly dir: string,
    readonly root: string,
    readonly runroot: string,
    readonly env: NodeJS.ProcessEnv,
    readonly isolated: boolean,
  ) {
    this.cleanup = onceOnly(async () => {
      // vfs layers are plain dirs; nothing is mounted unless a test ran containers.
      await run(...this.command(["unmount", "--all", "--force"])).catch(() => undefined);
      await removeDir(this.dir);
    });
  }

  stop(): Promise<void> {
    return this.cleanup();
  }

  private command(args: readonly string[], opts: RunOptions = {}): [string, string[], RunOptions] {
    const global = [
      "--storage-driver",
      "vfs",
      "--root",
      this.root,
      "--runroot",
      this.runroot,
      "--tmpdir",
      path.join(this.runroot, "libpod"),
      "--cgroup-manager",
      "cgroupfs",
      "--events-backend",
      "file",
    ];
    const [cmd, wrapped] = wrapVarLib(this.isolated, path.join(this.dir, "varlib"), "podman", [...global, ...args]);
    return [cmd, wrapped, { ...opts, env: { ...this.env, ...(opts.env ?? {}) } }];
  }

  podman(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return run(...this.command(args, opts));
  }

  podmanOk(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return runOk(...this.command(args, opts));
  }

  async load(source: string | Readable | Buffer, opts: PodmanLoadOptions = {}): Promise<PodmanLoadResult> {
    const fromStdin = typeof source !== "string";
    const args = fromStdin ? ["load"] : ["load", "-i", source];
    const runOpts: RunOptions = {
      timeoutMs: opts.timeoutMs ?? 300_000,
      ...(fromStdin ? { input: source } : {}),
    };
    const r = opts.check === false ? await this.podman(args, runOpts) : await this.podmanOk(args, runOpts);
    const loaded: string[] = [];
    for (const line of r.stdout.toString("utf8").split("\n")) {
      const m = /^Loaded image(?:\(s\))?:\s*(.+)$/.exec(line.trim());
      if (m?.[1])
        loaded.push(
          ...m[1]
            .split(",")
            .map((s) => s.trim())
            .filter((s) => s !== ""),
        );
    }
    return { ...r, loaded };
  }

  async images(): Promise<PodmanImage[]> {
    const r = await this.podmanOk(["images", "--all", "--format", "json"]);
    const text = r.stdout.toString("utf8").trim();
    const parsed: unknown = text === "" ? [] : JSON.parse(text);
    if (!Array.isArray(parsed)) throw new Error(`podman images: expected a JSON array, got ${text.slice(0, 200)}`);
    return parsed.map((item: unknown): PodmanImage => {
      const o = asRecord(item, "podman images row");
      return {
        id: stringField(o, "Id"),
        digest: typeof o.Digest === "string" ? o.Digest : "",
        names: stringArray(o.Names),
        repoDigests: stringArray(o.RepoDigests),
      };
    });
  }

  async imageInspect(name: string): Promise<PodmanInspect> {
    const r = await this.podmanOk(["image", "inspect", "--format", "json", name]);
    const parsed: unknown = JSON.parse(r.stdout.toString("utf8"));
    const first: unknown = Array.isArray(parsed) ? parsed[0] : undefined;
    const o = asRecord(first, `podman image inspect ${name}`);
    return {
      ...o,
      Id: stringField(o, "Id"),
      Digest: typeof o.Digest === "string" ? o.Digest : "",
      RepoTags: Array.isArray(o.RepoTags) ? stringArray(o.RepoTags) : null,
      RepoDigests: Array.isArray(o.RepoDigests) ? stringArray(o.RepoDigests) : null,
    };
  }

  async removeAllImages(): Promise<void> {
    await this.podmanOk(["rmi", "--all", "--force"]);
  }
}

function asRecord(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error(`${what}: expected a JSON object`);
  return v as Record<string, unknown>;
}

function stringField(o: Record<string, unknown>, key: string): string {
  const v = o[key];
  if (typeof v !== "string") throw new Error(`expected string field ${key}`);
  return v;
}

function stringArray(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}

// ---------------------------------------------------------------------------
// skopeo
// ---------------------------------------------------------------------------

export interface Skopeo {
  readonly dir: string;
  readonly policyPath: string;
  readonly env: NodeJS.ProcessEnv;
  readonly isolated: boolean;
  /** `skopeo --policy P --registries.d D --tmpdir T ARGS...` */
  run(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  runOk(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** `skopeo inspect [--raw|--config] [--tls-verify=false] REF`, parsed as JSON. */
  inspect(
    ref: string,
    opts?: {
      raw?: boolean;
      config?: boolean;
      tlsVerify?: boolean;
      extraArgs?: readonly string[];
    },
  ): Promise<unknown>;
  /** Like inspect({raw:true}) but returns the exact bytes (to hash them). */
  inspectRawBytes(ref: string, opts?: { tlsVerify?: boolean; extraArgs?: readonly string[] }): Promise<Buffer>;
  copy(src: string, dst: string, extraArgs?: readonly string[], opts?: RunOptions): Promise<RunResult>;
  cleanup(): Promise<void>;
}

export async function createSkopeo(): Promise<Skopeo> {
  const dir = await makeTempDir("airpack-skopeo");
  try {
    await writeContainersFiles(dir);
    return new SkopeoTool(dir, containersEnv(dir, {}), await canIsolateVarLib());
  } catch (err) {
    await removeDir(dir);
    throw err;
  }
}

class SkopeoTool implements Skopeo {
  readonly policyPath: string;
  readonly cleanup: () => Promise<void>;

  constructor(
    readonly dir: string,
    readonly env: NodeJS.ProcessEnv,
    readonly isolated: boolean,
  ) {
    this.policyPath = path.join(dir, "policy.json");
    this.cleanup = onceOnly(() => removeDir(this.dir));
  }

  private command(args: readonly string[], opts: RunOptions): [string, string[], RunOptions] {
    const global = [
      "--policy",
      this.policyPath,
      "--registries.d",
      path.join(this.dir, "registries.d"),
      "--tmpdir",
      path.join(this.dir, "tmp"),
    ];
    const [cmd, wrapped] = wrapVarLib(this.isolated, path.join(this.dir, "varlib"), "skopeo", [...global, ...args]);
    return [cmd, wrapped, { ...opts, env: { ...this.env, ...(opts.env ?? {}) } }];
  }

  run(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return run(...this.command(args, opts));
  }

  runOk(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return runOk(...this.command(args, opts));
  }

  async inspectRawBytes(
    ref: string,
    opts: { tlsVerify?: boolean; extraArgs?: readonly string[] } = {},
  ): Promise<Buffer> {
    const args = ["inspect", "--raw"];
    if (opts.tlsVerify === false) args.push("--tls-verify=false");
    args.push(...(opts.extraArgs ?? []), ref);
    return (await this.runOk(args)).stdout;
  }

  async inspect(
    ref: string,
    opts: {
      raw?: boolean;
      config?: boolean;
      tlsVerify?: boolean;
      extraArgs?: readonly string[];
    } = {},
  ): Promise<unknown> {
    const args = ["inspect"];
    if (opts.raw) args.push("--raw");
    if (opts.config) args.push("--config");
    if (opts.tlsVerify === false) args.push("--tls-verify=false");
    args.push(...(opts.extraArgs ?? []), ref);
    const r = await this.runOk(args);
    return JSON.parse(r.stdout.toString("utf8")) as unknown;
  }

  copy(src: string, dst: string, extraArgs: readonly string[] = [], opts: RunOptions = {}): Promise<RunResult> {
    return this.runOk(["copy", ...extraArgs, src, dst], {
      timeoutMs: 300_000,
      ...opts,
    });
  }
}

/** One-shot `skopeo ARGS` with a throwaway policy/config/cache dir. Never rejects on a non-zero exit. */
export async function skopeo(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const tool = await createSkopeo();
  try {
    return await tool.run(args, opts);
  } finally {
    await tool.cleanup();
  }
}

// ---------------------------------------------------------------------------
// registry (CNCF distribution 2.x, `docker-registry serve`)
// ---------------------------------------------------------------------------

/** Settings for the registry's `auth.token` section (bearer token auth; see test/helpers/token-server.ts). */
export interface RegistryTokenAuth {
  /** Absolute URL of the token endpoint, sent to clients in the WWW-Authenticate challenge. */
  realm: string;
  /** Expected `aud` claim; also sent in the challenge. */
  service: string;
  /** Expected `iss` claim. */
  issuer: string;
  /** PEM file with the certificate(s) whose keys may sign tokens. */
  rootCertBundle: string;
}

export interface RegistryOptions {
  htpasswd?: { user: string; password: string };
  tls?: { certFile: string; keyFile: string };
  /** Bearer token auth (`auth.token`); cannot be combined with htpasswd. */
  token?: RegistryTokenAuth;
  startTimeoutMs?: number;
}

/** One access-log line of the registry. */
export interface RegistryRequest {
  method: string;
  path: string;
  status: number;
  userAgent: string;
}

export interface Registry {
  readonly dir: string;
  readonly dataDir: string;
  /** "127.0.0.1:PORT" */
  readonly host: string;
  readonly port: number;
  /** "http://127.0.0.1:PORT" or "https://..." */
  readonly url: string;
  readonly pid: number | undefined;
  /** Captured stdout+stderr of the registry so far. */
  logs(): string;
  /** Parsed access-log lines, in order. */
  requests(): RegistryRequest[];
  /** GET requests for blobs (optionally of one repository), e.g. to count downloads. */
  blobGets(repo?: string): RegistryRequest[];
  stop(): Promise<void>;
}

export interface SelfSignedCert {
  dir: string;
  certFile: string;
  keyFile: string;
  /** Dir with ca.crt, for skopeo --dest-cert-dir / --cert-dir. */
  certDir: string;
  cleanup(): Promise<void>;
}

/** A self-signed certificate for 127.0.0.1 / localhost made with openssl. */
export async function makeSelfSignedCert(): Promise<SelfSignedCert> {
  const dir = await makeTempDir("airpack-cert");
  try {
    const certFile = path.join(dir, "cert.pem");
    const keyFile = path.join(dir, "key.pem");
    await runOk("openssl", [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      keyFile,
      "-out",
      certFile,
      "-days",
      "2",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ]);
    const certDir = path.join(dir, "certs.d");
    await fs.mkdir(certDir);
    await fs.copyFile(certFile, path.join(certDir, "ca.crt"));
    return {
      dir,
      certFile,
      keyFile,
      certDir,
      cleanup: onceOnly(() => removeDir(dir)),
    };
  } catch (err) {
    await removeDir(dir);
    throw err;
  }
}

function probeV2(url: string, tls: boolean): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const onRes = (res: http.IncomingMessage): void => {
      res.resume();
      resolve(res.statusCode ?? 0);
    };
    const req = tls ? https.get(`${url}/v2/`, { rejectUnauthorized: false }, onRes) : http.get(`${url}/v2/`, onRes);
    req.setTimeout(3000, () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<Registry> {
  let lastError: unknown = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startRegistryOnce(opts);
    } catch (err) {
      lastError = err;
      // freePort() is racy: retry only when someone took the port meanwhile.
      if (!(err instanceof Error && /address already in use/.test(err.message))) throw err;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

async function startRegistryOnce(opts: RegistryOptions): Promise<Registry> {
  const dir = await makeTempDir("airpack-registry");
  let daemon: Daemon | null = null;
  try {
    const dataDir = path.join(dir, "data");
    await fs.mkdir(dataDir);
    const port = await freePort();
    const host = `127.0.0.1:${port}`;
    const lines = [
      "version: 0.1",
      "log:",
      "  level: info",
      "  formatter: text",
      "  accesslog:",
      "    disabled: false",
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${JSON.stringify(dataDir)}`,
      "  delete:",
      "    enabled: true",
      "  maintenance:",
      "    uploadpurging:",
      "      enabled: false",
      "health:",
      "  storagedriver:",
      "    enabled: false",
      "http:",
      `  addr: ${JSON.stringify(host)}`,
      `  secret: ${JSON.stringify(sha256Hex(dir))}`,
    ];
    if (opts.tls) {
      lines.push(
        "  tls:",
        `    certificate: ${JSON.stringify(opts.tls.certFile)}`,
        `    key: ${JSON.stringify(opts.tls.keyFile)}`,
      );
    }
    if (opts.htpasswd) {
      const htpasswdFile = path.join(dir, "htpasswd");
      const r = await runOk("htpasswd", ["-Bbn", opts.htpasswd.user, opts.htpasswd.password]);
      await fs.writeFile(htpasswdFile, r.stdout);
      lines.push("auth:", "  htpasswd:", "    realm: airpack-test", `    path: ${JSON.stringify(htpasswdFile)}`);
    }
    if (opts.token) {
      if (opts.htpasswd) throw new Error("startRegistry: htpasswd and token auth cannot be combined");
      lines.push(
        "auth:",
        "  token:",
        `    realm: ${JSON.stringify(opts.token.realm)}`,
        `    service: ${JSON.stringify(opts.token.service)}`,
        `    issuer: ${JSON.stringify(opts.token.issuer)}`,
        `    rootcertbundle: ${JSON.stringify(opts.token.rootCertBundle)}`,
      );
    }
    const configPath = path.join(dir, "config.yml");
    await fs.writeFile(configPath, `${lines.join("\n")}\n`);
    const tls = opts.tls !== undefined;
    const url = `${tls ? "https" : "http"}://${host}`;
    daemon = new Daemon("docker-registry", ["serve", configPath], path.join(dir, "registry.log"), {
      ...process.env,
      HOME: dir,
    });
    const d = daemon;
    await waitUntil(d, `registry on ${host}`, opts.startTimeoutMs ?? 30_000, async () => {
      const status = await probeV2(url, tls);
      return status === 200 || status === 401;
    });
    return new RegistryPeer(dir, dataDir, host, port, url, d);
  } catch (err) {
    if (daemon) await daemon.kill();
    await removeDir(dir);
    throw err;
  }
}

// 127.0.0.1 - - [22/Nov/2026:13:33:26 +0000] "GET /v2/smoke/manifests/1 HTTP/1.1" 200 401 "" "skopeo/1.9.3"
const ACCESS_LOG_RE = /^\S+ \S+ \S+ \[[^\]]*\] "([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3}) \S+ "[^"]*" "([^"]*)"/;

export function parseRegistryAccessLog(text: string): RegistryRequest[] {
  const out: RegistryRequest[] = [];
  for (const line of text.split("\n")) {
    const m = ACCESS_LOG_RE.exec(line);
    if (m)
      out.push({
        method: m[1] ?? "",
        path: m[2] ?? "",
        status: Number(m[3]),
        userAgent: m[4] ?? "",
      });
  }
  return out;
}

class RegistryPeer implements Registry {
  readonly stop: () => Promise<void>;

  constructor(
    readonly dir: string,
    readonly dataDir: string,
    readonly host: string,
    readonly port: number,
    readonly url: string,
    private readonly daemon: Daemon,
  ) {
    this.stop = onceOnly(async () => {
      await this.daemon.kill();
      await removeDir(this.dir);
    });
  }

  get pid(): number | undefined {
    return this.daemon.pid;
  }

  logs(): string {
    return this.daemon.logs();
  }

  requests(): RegistryRequest[] {
    return parseRegistryAccessLog(this.logs());
  }

  blobGets(repo?: string): RegistryRequest[] {
    return this.requests().filter((r) => {
      if (r.method !== "GET") return false;
      const m = /^\/v2\/(.+)\/blobs\/(sha256:[0-9a-f]{64})(\?|$)/.exec(r.path);
      return m !== null && (repo === undefined || m[1] === repo);
    });
  }
}

// ---------------------------------------------------------------------------
// a tiny real OCI image, built with the system tar + gzip (no airpack code)
// ---------------------------------------------------------------------------

export interface TinyImageOptions {
  /** io.containerd.image.name annotation (omitted when undefined). */
  containerdName?: string;
  /** org.opencontainers.image.ref.name annotation (omitted when undefined). */
  refName?: string;
  /** Files of the single layer, relative path -> content. */
  files?: Record<string, string>;
  /** gzip (default) or an uncompressed layer. */
  compression?: "gzip" | "none";
  architecture?: string;
}

export interface TinyImage {
  /** OCI image layout directory. */
  layoutDir: string;
  manifestDigest: string;
  manifestSize: number;
  configDigest: string;
  layerDigest: string;
  diffId: string;
}

async function writeBlob(layoutDir: string, data: Buffer): Promise<{ digest: string; size: number }> {
  const hex = sha256Hex(data);
  await fs.writeFile(path.join(layoutDir, "blobs", "sha256", hex), data);
  return { digest: `sha256:${hex}`, size: data.length };
}

/** Writes an OCI image layout with one image (one layer made by `tar` + `gzip -n`) into layoutDir. */
export async function buildTinyOciLayout(layoutDir: string, opts: TinyImageOptions = {}): Promise<TinyImage> {
  const work = await makeTempDir("airpack-tiny-image");
  try {
    const rootfs = path.join(work, "rootfs");
    const files = opts.files ?? {
      "etc/airpack-smoke.txt": "hello from the airpack peers smoke test\n",
    };
    for (const [rel, content] of Object.entries(files)) {
      const p = path.join(rootfs, rel);
      await fs.mkdir(path.dirname(p), { recursive: true });
      await fs.writeFile(p, content);
    }
    const layerTar = path.join(work, "layer.tar");
    await runOk("tar", [
      "--sort=name",
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      "--mtime=@0",
      "--format=posix",
      "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
      "-C",
      rootfs,
      "-cf",
      layerTar,
      ...(await fs.readdir(rootfs)).sort(),
    ]);
    const rawLayer = await fs.readFile(layerTar);
    const layerBytes = opts.compression === "none" ? rawLayer : (await runOk("gzip", ["-n", "-c", layerTar])).stdout;
    await fs.mkdir(path.join(layoutDir, "blobs", "sha256"), {
      recursive: true,
    });
    const layer = await writeBlob(layoutDir, layerBytes);
    const diffId = `sha256:${sha256Hex(rawLayer)}`;
    const config = await writeBlob(
      layoutDir,
      Buffer.from(
        JSON.stringify({
          architecture: opts.architecture ?? "amd64",
          os: "linux",
          config: { Cmd: ["/bin/sh"] },
          rootfs: { type: "layers", diff_ids: [diffId] },
          history: [{ created_by: "airpack peers smoke test" }],
        }),
      ),
    );
    const manifest = await writeBlob(
      layoutDir,
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          config: {
            mediaType: "application/vnd.oci.image.config.v1+json",
            ...config,
          },
          layers: [
            {
              mediaType:
                opts.compression === "none"
                  ? "application/vnd.oci.image.layer.v1.tar"
                  : "application/vnd.oci.image.layer.v1.tar+gzip",
              ...layer,
            },
          ],
        }),
      ),
    );
    const annotations: Record<string, string> = {};
    if (opts.containerdName !== undefined) annotations["io.containerd.image.name"] = opts.containerdName;
    if (opts.refName !== undefined) annotations["org.opencontainers.image.ref.name"] = opts.refName;
    const index = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...manifest,
          platform: { architecture: opts.architecture ?? "amd64", os: "linux" },
          ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
        },
      ],
    };
    await fs.writeFile(path.join(layoutDir, "index.json"), JSON.stringify(index));
    await fs.writeFile(path.join(layoutDir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    return {
      layoutDir,
      manifestDigest: manifest.digest,
      manifestSize: manifest.size,
      configDigest: config.digest,
      layerDigest: layer.digest,
      diffId,
    };
  } finally {
    await removeDir(work);
  }
}

/** Plain (uncompressed) tar of an OCI layout dir: oci-layout, index.json, blobs/ (+ any extra root files). */
export async function tarLayout(
  layoutDir: string,
  tarPath: string,
  extraRootFiles: readonly string[] = [],
): Promise<void> {
  await runOk("tar", [
    "--sort=name",
    "--owner=0",
    "--group=0",
    "--numeric-owner",
    "-C",
    layoutDir,
    "-cf",
    tarPath,
    "oci-layout",
    "index.json",
    ...extraRootFiles,
    "blobs",
  ]);
}

/** sha256 digest ("sha256:<hex>") of bytes. */
export function digestOf(data: Buffer | string): string {
  return `sha256:${sha256Hex(data)}`;
}
