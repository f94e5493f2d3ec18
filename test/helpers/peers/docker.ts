/**
 * A real docker daemon for the e2e tests (Debian's docker.io, dockerd 20.10): its own containerd
 * (startContainerd), vfs storage, no iptables and no bridge, and data root, exec root, pid file,
 * daemon.json, identity key and unix socket in a temp dir; as root, dockerd also gets a private
 * /run (it creates /run/docker/plugins whatever its flags say). load(), images(), inspect(), ...
 * stop() kills dockerd and containerd and removes the dir (idempotent: a second call waits for
 * the first one).
 *
 * Facts about docker's behaviour are recorded in docs/peers.md.
 */
import * as fs from "node:fs/promises";
import * as path from "node:path";
import type { Readable } from "node:stream";

import { startContainerd, type Containerd } from "./containerd";
import { Daemon, onceOnly, waitUntil } from "./daemon";
import { isRoot, missingTools, run, runOk, type RunOptions, type RunResult } from "./process";
import { makeTempDir, removeDir } from "./temp";

export interface DockerOptions {
  startTimeoutMs?: number;
}

export interface DockerLoadOptions {
  /** Throw on non-zero exit (default true). */
  check?: boolean;
  timeoutMs?: number;
}

export interface DockerLoadResult extends RunResult {
  /** Names from "Loaded image: NAME" lines, as docker prints them (docker.io/library/x:1 → x:1). */
  loaded: string[];
  /** IDs from "Loaded image ID: sha256:…" lines (images without a tag). */
  loadedIds: string[];
}

/** One row of `docker images`. */
export interface DockerImage {
  repository: string;
  tag: string;
  /** Full image ID, sha256:… (the config digest). */
  id: string;
}

/** The parts of `docker image inspect` the tests look at; everything else is kept as unknown. */
export interface DockerInspect {
  /** sha256:… — for a loaded image, the digest of its config. */
  Id: string;
  RepoTags: string[];
  RepoDigests: string[];
  Architecture?: string;
  Os?: string;
  RootFS?: { Type: string; Layers?: string[] };
  [key: string]: unknown;
}

export interface Docker {
  readonly dir: string;
  /** unix:///… of dockerd's API socket. */
  readonly host: string;
  readonly containerd: Containerd;
  /** Whether dockerd runs with a private /run (see canIsolateRun). */
  readonly isolated: boolean;
  readonly pid: number | undefined;
  docker(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  dockerOk(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** `docker load -i PATH`, or `docker load` reading a Readable/Buffer from stdin. */
  load(source: string | Readable | Buffer, opts?: DockerLoadOptions): Promise<DockerLoadResult>;
  images(): Promise<DockerImage[]>;
  inspect(name: string): Promise<DockerInspect>;
  removeAllImages(): Promise<void>;
  logs(): string;
  stop(): Promise<void>;
}

let runIsolationProbe: Promise<boolean> | null = null;

function runWrapperArgs(runDir: string): string[] {
  return ["--mount", "--propagation", "private", "--", "sh", "-c", 'mount --bind "$0" /run && exec "$@"', runDir];
}

/**
 * Whether dockerd can get a private /run (root + unshare + mount). unshare and sh exec, so the
 * daemon's pid is dockerd's own and signals reach it.
 */
export function canIsolateRun(): Promise<boolean> {
  runIsolationProbe ??= (async () => {
    if (!isRoot() || process.platform !== "linux") return false;
    if ((await missingTools(["unshare", "mount", "sh"])).length > 0) return false;
    const dir = await makeTempDir("airpack-run-probe");
    try {
      const r = await run("unshare", [...runWrapperArgs(dir), "true"], { timeoutMs: 10_000 });
      return r.code === 0;
    } catch {
      return false;
    } finally {
      await removeDir(dir);
    }
  })();
  return runIsolationProbe;
}

/** The docker CLI's env: its own config dir, and nothing that points it at another daemon. */
function clientEnv(dir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_CONFIG: path.join(dir, "client") };
  for (const k of ["DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_API_VERSION"]) {
    delete env[k];
  }
  return env;
}

export async function startDocker(opts: DockerOptions = {}): Promise<Docker> {
  const dir = await makeTempDir("airpack-dkr");
  const socket = path.join(dir, "s", "docker.sock");
  if (Buffer.byteLength(socket) > 100) {
    await removeDir(dir);
    throw new Error(`dockerd socket path too long for a unix socket: ${socket} (set TMPDIR shorter)`);
  }
  let containerd: Containerd | null = null;
  let daemon: Daemon | null = null;
  try {
    for (const sub of ["s", "data", "exec", "run", "tmp", "client"]) {
      await fs.mkdir(path.join(dir, sub), { mode: 0o700 });
    }
    // dockerd 20.10 writes its identity key to /etc/docker/key.json unless daemon.json names a path
    // (there is no flag for it).
    const daemonJson = path.join(dir, "daemon.json");
    await fs.writeFile(daemonJson, JSON.stringify({ "deprecated-key-path": path.join(dir, "key.json") }) + "\n");
    containerd = await startContainerd();
    const host = `unix://${socket}`;
    const dockerdArgs = [
      "--config-file",
      daemonJson,
      `--containerd=${containerd.address}`,
      "--storage-driver",
      "vfs",
      "--iptables=false",
      "--bridge=none",
      "--data-root",
      path.join(dir, "data"),
      "--exec-root",
      path.join(dir, "exec"),
      "--pidfile",
      path.join(dir, "docker.pid"),
      "-H",
      host,
    ];
    const isolated = await canIsolateRun();
    const [cmd, args] = isolated
      ? ["unshare", [...runWrapperArgs(path.join(dir, "run")), "dockerd", ...dockerdArgs]]
      : ["dockerd", dockerdArgs];
    daemon = new Daemon(cmd, args, path.join(dir, "dockerd.log"), { ...process.env, TMPDIR: path.join(dir, "tmp") });
    const d = daemon;
    const env = clientEnv(dir);
    await waitUntil(d, "dockerd", opts.startTimeoutMs ?? 60_000, async () => {
      const r = await run("docker", ["-H", host, "info", "--format", "{{.ServerVersion}}"], { env, timeoutMs: 5000 });
      return r.code === 0;
    });
    return new DockerPeer(dir, host, containerd, isolated, d, env);
  } catch (err) {
    if (daemon) await daemon.kill();
    await containerd?.stop();
    await removeDir(dir);
    throw err;
  }
}

class DockerPeer implements Docker {
  readonly stop: () => Promise<void>;

  constructor(
    readonly dir: string,
    readonly host: string,
    readonly containerd: Containerd,
    readonly isolated: boolean,
    private readonly daemon: Daemon,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    this.stop = onceOnly(async () => {
      try {
        await this.daemon.kill(10_000);
      } finally {
        try {
          await this.containerd.stop();
        } finally {
          await removeDir(this.dir);
        }
      }
    });
  }

  get pid(): number | undefined {
    return this.daemon.pid;
  }

  docker(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return run("docker", ["-H", this.host, ...args], { ...opts, env: { ...this.env, ...(opts.env ?? {}) } });
  }

  dockerOk(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return runOk("docker", ["-H", this.host, ...args], { ...opts, env: { ...this.env, ...(opts.env ?? {}) } });
  }

  async load(source: string | Readable | Buffer, opts: DockerLoadOptions = {}): Promise<DockerLoadResult> {
    const fromStdin = typeof source !== "string";
    const args = fromStdin ? ["load"] : ["load", "-i", source];
    const runOpts: RunOptions = { timeoutMs: opts.timeoutMs ?? 300_000, ...(fromStdin ? { input: source } : {}) };
    const r = opts.check === false ? await this.docker(args, runOpts) : await this.dockerOk(args, runOpts);
    const loaded: string[] = [];
    const loadedIds: string[] = [];
    for (const line of r.stdout.toString("utf8").split("\n")) {
      const id = /^Loaded image ID:\s*(\S+)$/.exec(line.trim());
      const name = /^Loaded image:\s*(\S+)$/.exec(line.trim());
      if (id?.[1]) loadedIds.push(id[1]);
      else if (name?.[1]) loaded.push(name[1]);
    }
    return { ...r, loaded, loadedIds };
  }

  async images(): Promise<DockerImage[]> {
    const r = await this.dockerOk(["images", "--all", "--no-trunc", "--format", "{{json .}}"]);
    return r.stdout
      .toString("utf8")
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((line): DockerImage => {
        const o = asRecord(JSON.parse(line) as unknown, "docker images row");
        return { repository: stringField(o, "Repository"), tag: stringField(o, "Tag"), id: stringField(o, "ID") };
      });
  }

  async inspect(name: string): Promise<DockerInspect> {
    const r = await this.dockerOk(["image", "inspect", name]);
    const parsed: unknown = JSON.parse(r.stdout.toString("utf8"));
    const o = asRecord(Array.isArray(parsed) ? (parsed[0] as unknown) : undefined, `docker image inspect ${name}`);
    return {
      ...o,
      Id: stringField(o, "Id"),
      RepoTags: stringArray(o.RepoTags),
      RepoDigests: stringArray(o.RepoDigests),
    };
  }

  async removeAllImages(): Promise<void> {
    const ids = [...new Set((await this.images()).map((i) => i.id))];
    if (ids.length > 0) await this.dockerOk(["rmi", "--force", ...ids]);
  }

  logs(): string {
    return this.daemon.logs();
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
