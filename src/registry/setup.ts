import { readFileSync } from "node:fs";
import { RegistryClient } from "./client";
import { defaultCredentials, type Credential } from "./credentials";
import { proxyFromEnv } from "./http";

export interface RegistryOptions {
  insecureRegistries?: string[];
  caFile?: string;
  credential?: Credential;
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
  /** The command's signal: every request and every retry wait stops when it aborts. */
  signal?: AbortSignal;
  attempts?: number;
  backoffMs?: number;
  onRequest?: (method: string, url: URL) => void;
}

/**
 * One client for every registry a command talks to. `registries` are the hosts the command names
 * (e.g. "docker.io", "127.0.0.1:5000"): an explicit --username credential applies to them only.
 */
export function createRegistryClient(opts: RegistryOptions, registries: string[]): RegistryClient {
  let ca: string | undefined;
  if (opts.caFile) {
    try {
      ca = readFileSync(opts.caFile, "utf8");
    } catch (err) {
      throw new Error(`--ca-file ${opts.caFile}: ${(err as Error).message}`, { cause: err });
    }
  }
  const env = process.env;
  return new RegistryClient({
    transport: {
      ...(ca ? { ca } : {}),
      insecureHosts: opts.insecureRegistries ?? [],
      connectTimeoutMs: opts.connectTimeoutMs ?? Number(env.AIRPACK_CONNECT_TIMEOUT_MS ?? 15_000),
      idleTimeoutMs: opts.idleTimeoutMs ?? Number(env.AIRPACK_IDLE_TIMEOUT_MS ?? 60_000),
      // Under 1 KiB/s for a minute drops an answer (as curl --speed-limit 1024 --speed-time 60).
      minSpeed: Number(env.AIRPACK_MIN_SPEED ?? 1024),
      speedTimeMs: Number(env.AIRPACK_SPEED_TIME_MS ?? 60_000),
      // A manifest, config or token answer must be complete within 2 minutes.
      docTimeoutMs: Number(env.AIRPACK_DOC_TIMEOUT_MS ?? 120_000),
      proxy: proxyFromEnv(env),
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(env.AIRPACK_DEBUG ? { debug: (line: string) => process.stderr.write(`airpack: debug: ${line}\n`) } : {}),
    },
    credentials: defaultCredentials(opts.credential ? { explicit: { registries, credential: opts.credential } } : {}),
    attempts: opts.attempts ?? 5,
    backoffMs: opts.backoffMs ?? Number(env.AIRPACK_BACKOFF_MS ?? 500),
    ...(opts.onRequest ? { onRequest: opts.onRequest } : {}),
  });
}
