/**
 * Running commands for the e2e tests: run()/runOk() with captured output,
 * CommandError, PATH look-ups (which, missingTools) and the skip-or-fail policy
 * for tests whose real peers are missing (isCI, peersUnavailable, skipOrFail).
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import type { Readable } from "node:stream";
import type { TestContext } from "node:test";

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

/** Quotes a string for a TOML config file (containerd's config.toml, podman's storage.conf and containers.conf). */
export function tomlString(s: string): string {
  return JSON.stringify(s);
}

/** The end of `text` (at most `max` characters), trimmed, for error messages. */
export function tail(text: string, max: number): string {
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

export function isRoot(): boolean {
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
