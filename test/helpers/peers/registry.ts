/**
 * A real registry for the e2e tests (CNCF distribution 2.x, `docker-registry
 * serve`) on 127.0.0.1 with its storage in a temp dir: optional htpasswd,
 * bearer token auth or TLS (makeSelfSignedCert), and its parsed access log.
 * stop() kills it and removes the dir (idempotent: a second call waits for the
 * first one).
 *
 * Facts about the registry's behaviour are recorded in docs/peers.md.
 */
import * as fs from "node:fs/promises";
import * as http from "node:http";
import * as https from "node:https";
import * as path from "node:path";

import { Daemon, onceOnly, waitUntil } from "./daemon";
import { sha256Hex } from "./oci-builders";
import { runOk } from "./process";
import { freePort, makeTempDir, removeDir } from "./temp";

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
