/**
 * A real podman for the e2e tests: vfs storage, config and runroot in a temp
 * dir, and (as root) a private /var/lib; load(), images(), imageInspect(), ...
 * cleanup()/stop() removes the dir (idempotent: a second call waits for the
 * first one).
 *
 * Facts about podman's behaviour are recorded in docs/peers.md.
 */
import * as fs from "node:fs/promises";
import * as path from "node:path";
import type { Readable } from "node:stream";

import { canIsolateVarLib, containersEnv, wrapVarLib, writeContainersFiles } from "./containers-image";
import { onceOnly } from "./daemon";
import { run, runOk, tomlString, type RunOptions, type RunResult } from "./process";
import { makeTempDir, removeDir } from "./temp";

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
