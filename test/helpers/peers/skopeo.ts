/**
 * A real skopeo for the e2e tests: its own policy, registries.d, tmpdir and
 * (as root) a private /var/lib per helper; inspect(), copy(), and the one-shot
 * skopeo(). cleanup() removes the dir (idempotent: a second call waits for the
 * first one).
 *
 * Facts about skopeo's behaviour are recorded in docs/peers.md.
 */
import * as path from "node:path";

import { canIsolateVarLib, containersEnv, wrapVarLib, writeContainersFiles } from "./containers-image";
import { onceOnly } from "./daemon";
import { run, runOk, type RunOptions, type RunResult } from "./process";
import { makeTempDir, removeDir } from "./temp";

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
