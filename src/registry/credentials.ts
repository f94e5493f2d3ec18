import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";

export interface Credential {
  username: string;
  password: string;
}

/** Finds credentials for a registry host. Never logs or prints them. */
export interface CredentialProvider {
  get(registry: string): Promise<Credential | undefined>;
}

interface AuthFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
}

/** The keys a config file may use for a registry: docker.io has its historical URL. */
function candidateKeys(registry: string): string[] {
  if (registry === "docker.io") {
    return [
      "https://index.docker.io/v1/",
      "index.docker.io",
      "docker.io",
      "registry-1.docker.io",
      "https://index.docker.io/v1",
    ];
  }
  return [registry, `https://${registry}`, `http://${registry}`, `https://${registry}/v1/`, `https://${registry}/v2/`];
}

/** The server URL a credential helper is asked about. */
function helperServerUrl(registry: string): string {
  return registry === "docker.io" ? "https://index.docker.io/v1/" : registry;
}

function normalizeKey(key: string): string {
  return key
    .replace(/^https?:\/\//, "")
    .replace(/\/v[12]\/?$/, "")
    .replace(/\/$/, "");
}

async function readAuthFile(path: string): Promise<AuthFile | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as AuthFile;
  } catch {
    throw new Error(`${path}: not valid JSON`);
  }
}

/** Run `docker-credential-<helper> get` (the docker credential helper protocol). */
export function runCredentialHelper(helper: string, serverUrl: string): Promise<Credential | undefined> {
  return new Promise((resolve, reject) => {
    const child = spawn(`docker-credential-${helper}`, ["get"], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    child.on("error", (e) => reject(new Error(`credential helper docker-credential-${helper}: ${e.message}`)));
    child.on("close", (code) => {
      if (code !== 0) {
        // "credentials not found" is the protocol's way to say: none.
        if (/not found/i.test(out + err)) resolve(undefined);
        else reject(new Error(`credential helper docker-credential-${helper} failed (exit ${String(code)})`));
        return;
      }
      try {
        const doc = JSON.parse(out) as { Username?: string; Secret?: string };
        if (!doc.Secret) resolve(undefined);
        else resolve({ username: doc.Username ?? "", password: doc.Secret });
      } catch {
        reject(new Error(`credential helper docker-credential-${helper} returned invalid JSON`));
      }
    });
    child.stdin.end(serverUrl);
  });
}

function fromEntry(entry: NonNullable<AuthFile["auths"]>[string]): Credential | undefined {
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (entry.username && entry.password) return { username: entry.username, password: entry.password };
  return undefined;
}

async function lookup(file: AuthFile, registry: string): Promise<Credential | undefined> {
  const keys = candidateKeys(registry);
  const helper = keys.map((k) => file.credHelpers?.[k]).find(Boolean);
  if (helper) return runCredentialHelper(helper, helperServerUrl(registry));
  for (const [key, entry] of Object.entries(file.auths ?? {})) {
    if (keys.includes(key) || normalizeKey(key) === normalizeKey(keys[0]!)) {
      const cred = fromEntry(entry);
      if (cred) return cred;
    }
  }
  if (file.credsStore) return runCredentialHelper(file.credsStore, helperServerUrl(registry));
  return undefined;
}

export interface CredentialOptions {
  /** --username/--password-stdin: used for the registries named on the command line. */
  explicit?: { registries: string[]; credential: Credential };
  env?: NodeJS.ProcessEnv;
}

/**
 * Where credentials come from, in order: --username/--password-stdin; containers' auth.json
 * (REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json);
 * docker's config.json ($DOCKER_CONFIG or ~/.docker), with credHelpers and credsStore.
 */
export function defaultCredentials(opts: CredentialOptions = {}): CredentialProvider {
  const env = opts.env ?? process.env;
  const home = env.HOME ?? homedir();
  const files = [
    env.REGISTRY_AUTH_FILE,
    env.XDG_RUNTIME_DIR ? join(env.XDG_RUNTIME_DIR, "containers", "auth.json") : undefined,
    join(env.XDG_CONFIG_HOME ?? join(home, ".config"), "containers", "auth.json"),
    join(env.DOCKER_CONFIG ?? join(home, ".docker"), "config.json"),
  ].filter((f): f is string => Boolean(f));
  const cache = new Map<string, Promise<Credential | undefined>>();
  return {
    get(registry: string): Promise<Credential | undefined> {
      if (opts.explicit?.registries.includes(registry)) return Promise.resolve(opts.explicit.credential);
      let found = cache.get(registry);
      if (!found) {
        found = (async () => {
          for (const path of files) {
            const file = await readAuthFile(path);
            if (!file) continue;
            const cred = await lookup(file, registry);
            if (cred) return cred;
          }
          return undefined;
        })();
        cache.set(registry, found);
      }
      return found;
    },
  };
}
