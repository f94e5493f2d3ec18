/**
 * A real containerd for the e2e tests, with its own config, root, state and
 * unix sockets in a temp dir, driven through ctr (ctr(), importImage(),
 * listImages(), ...), plus parseCtrImages() for `ctr images ls` output.
 * stop() kills it and removes the dir (idempotent: a second call waits for the
 * first one).
 *
 * Facts about containerd's behaviour are recorded in docs/peers.md.
 */
import * as fs from "node:fs/promises";
import * as path from "node:path";
import type { Readable } from "node:stream";

import { Daemon, onceOnly, waitUntil } from "./daemon";
import { run, runOk, tomlString, type RunOptions, type RunResult } from "./process";
import { makeTempDir, removeDir } from "./temp";

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

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
