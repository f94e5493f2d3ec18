/**
 * Long-running daemons (containerd, the registry): a background process whose
 * output goes to a log file and to memory, a readiness poll that fails fast
 * when the daemon dies, and onceOnly() for idempotent stop()/cleanup().
 * An exit hook SIGKILLs any daemon a test forgot to stop.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";

import { tail } from "./process";

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

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
export class Daemon {
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
export async function waitUntil(
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

export function onceOnly(fn: () => Promise<void>): () => Promise<void> {
  let pending: Promise<void> | null = null;
  return () => {
    pending ??= fn();
    return pending;
  };
}
