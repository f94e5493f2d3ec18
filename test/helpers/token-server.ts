/**
 * A small Docker registry token server (the "bearer token" auth flow of
 * distribution's `auth.token`) for end-to-end tests.
 *
 * Flow: the registry answers 401 with
 * `WWW-Authenticate: Bearer realm="<this>/token",service="…",scope="repository:NAME:pull"`;
 * the client asks GET /token?service=…&scope=… (with Basic credentials or
 * anonymously) and gets a JWT signed by a key whose self-signed certificate is
 * the registry's `rootcertbundle`; the registry verifies it and the access list.
 *
 * Verified against distribution 2.8.2 (see test/e2e/registry-infra.test.ts):
 * ES256 (JOSE r||s signature) and RS256 are both accepted, with the key named
 * by `x5c` (base64 DER certificate chain) or by `kid` (libtrust key id of a key
 * in the bundle). `aud` must be a JSON string (an array is a malformed token),
 * and exp/nbf are checked with 60 s of leeway.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from "node:crypto";
import * as fs from "node:fs/promises";
import * as http from "node:http";
import * as path from "node:path";

import { runOk } from "./peers/process";
import type { RegistryTokenAuth } from "./peers/registry";
import { makeTempDir, removeDir } from "./peers/temp";

export type TokenAlg = "ES256" | "RS256";
/** How the token names its signing key: the certificate itself (`x5c`) or its libtrust key id (`kid`). */
export type TokenKeyHeader = "x5c" | "kid";

/** One scope of a token request, e.g. `repository:test/mixed:pull,push`. */
export interface TokenScope {
  type: string;
  name: string;
  actions: string[];
}

/** One entry of the token's `access` claim. */
export interface TokenAccess {
  type: string;
  name: string;
  actions: string[];
}

/** Decides which of a scope's actions a user (null = anonymous) gets. */
export type TokenPolicy = (user: string | null, scope: TokenScope) => string[];

export interface TokenRequestRecord {
  method: string;
  /** Path without the query string. */
  path: string;
  /** Every query parameter, in order of appearance. */
  query: Record<string, string[]>;
  /** The parsed `scope` parameters (several per parameter when space-separated). */
  scopes: TokenScope[];
  /** An Authorization header was sent (of any kind). */
  hadAuth: boolean;
  /** The authenticated user; null when anonymous or rejected. */
  user: string | null;
  status: number;
  /** What the issued token grants (empty when none was issued). */
  granted: TokenAccess[];
  /** Date.now() when the request arrived. */
  time: number;
}

export interface TokenServerOptions {
  /** `aud` of the tokens and the registry's `service`. Default "airpack-test-registry". */
  service?: string;
  /** `iss` of the tokens. Default "airpack-test-token-server". */
  issuer?: string;
  /** user → password accepted with Basic auth. Users get pull+push on every repository. */
  users?: Record<string, string>;
  /** Repository name prefixes anonymous clients may pull (e.g. ["public/"]); default none. */
  anonymousPull?: readonly string[];
  /** Reported `expires_in` and lifetime of the `exp` claim, in seconds. Default 300. */
  expiresInSeconds?: number;
  /**
   * Added to the `exp` claim only (not to `expires_in`). The registry allows 60 s of
   * leeway, so e.g. -60 makes tokens stop working at the registry after expiresInSeconds.
   */
  expOffsetSeconds?: number;
  /** Signing algorithm. Default ES256 (EC P-256). */
  alg?: TokenAlg;
  /** Default "x5c". */
  keyHeader?: TokenKeyHeader;
  /** Replaces the default policy (see `users` and `anonymousPull`). */
  policy?: TokenPolicy;
}

export interface IssueTokenOptions {
  /** `sub`; default "" (anonymous). */
  subject?: string;
  expiresInSeconds?: number;
  expOffsetSeconds?: number;
  /** Overrides `aud` (e.g. to test what the registry rejects). */
  audience?: string | string[];
  /** Overrides `iss`. */
  issuer?: string;
  keyHeader?: TokenKeyHeader;
  /** ES256 only: "der" makes a (wrong) ASN.1 DER signature instead of JOSE r||s, to test rejection. */
  signatureEncoding?: "jose" | "der";
}

export interface TokenServer {
  /** "http://127.0.0.1:PORT" */
  readonly url: string;
  /** The token endpoint: url + "/token". */
  readonly realm: string;
  readonly service: string;
  readonly issuer: string;
  readonly alg: TokenAlg;
  /** PEM file with the self-signed certificate of the signing key. */
  readonly rootCertBundle: string;
  /** libtrust key id of the signing key (what a `kid` header carries). */
  readonly keyId: string;
  /** Pass as startRegistry({ token: server.registryAuth }). */
  readonly registryAuth: RegistryTokenAuth;
  requests(): TokenRequestRecord[];
  /** Requests that got a token (status 200). */
  issued(): TokenRequestRecord[];
  clearRequests(): void;
  /** Changes the lifetime of tokens issued from now on. */
  setExpiresIn(seconds: number, expOffsetSeconds?: number): void;
  /** Signs a token with the server's key, outside of any HTTP request. */
  issueToken(access: readonly TokenAccess[], opts?: IssueTokenOptions): string;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------
// encoding helpers
// ---------------------------------------------------------------------------

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString("base64url");
}

const BASE32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

function base32NoPad(data: Buffer): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const byte of data) {
    value = ((value << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += BASE32_ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32_ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

/**
 * libtrust's key id: sha256 of the DER SubjectPublicKeyInfo, first 240 bits,
 * base32, in 12 colon-separated groups of 4 characters.
 */
export function libtrustKeyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: "spki", format: "der" });
  const b32 = base32NoPad(createHash("sha256").update(der).digest().subarray(0, 30));
  return (b32.match(/.{4}/g) ?? []).join(":");
}

/** Parses `type:name:actions` (the name may itself contain colons). */
export function parseScope(text: string): TokenScope | null {
  const first = text.indexOf(":");
  const last = text.lastIndexOf(":");
  if (first <= 0 || last === first) return null;
  const actions = text
    .slice(last + 1)
    .split(",")
    .map((a) => a.trim())
    .filter((a) => a !== "");
  return { type: text.slice(0, first), name: text.slice(first + 1, last), actions };
}

function parseBasicAuth(header: string | undefined): { user: string; password: string } | null {
  const m = /^Basic\s+(\S+)\s*$/i.exec(header ?? "");
  if (!m) return null;
  const decoded = Buffer.from(m[1] ?? "", "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return null;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

// ---------------------------------------------------------------------------
// the server
// ---------------------------------------------------------------------------

function defaultPolicy(users: Record<string, string>, anonymousPull: readonly string[]): TokenPolicy {
  return (user, scope) => {
    if (scope.type !== "repository") return [];
    if (user !== null && Object.prototype.hasOwnProperty.call(users, user)) {
      return scope.actions.filter((a) => a === "pull" || a === "push");
    }
    if (anonymousPull.some((prefix) => scope.name.startsWith(prefix))) {
      return scope.actions.filter((a) => a === "pull");
    }
    return [];
  };
}

async function makeSigningKey(
  dir: string,
  alg: TokenAlg,
): Promise<{ privateKey: KeyObject; publicKey: KeyObject; certFile: string; certDerBase64: string }> {
  const { privateKey, publicKey } =
    alg === "ES256"
      ? generateKeyPairSync("ec", { namedCurve: "P-256" })
      : generateKeyPairSync("rsa", { modulusLength: 2048 });
  const keyFile = path.join(dir, "signing-key.pem");
  const certFile = path.join(dir, "signing-cert.pem");
  await fs.writeFile(keyFile, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
  // node:crypto cannot create certificates; openssl makes a self-signed one for the key.
  await runOk("openssl", [
    "req",
    "-new",
    "-x509",
    "-key",
    keyFile,
    "-out",
    certFile,
    "-days",
    "2",
    "-subj",
    "/CN=airpack-test-token-signer",
  ]);
  const cert = new X509Certificate(await fs.readFile(certFile));
  return { privateKey, publicKey, certFile, certDerBase64: cert.raw.toString("base64") };
}

class TokenServerImpl implements TokenServer {
  readonly realm: string;
  readonly registryAuth: RegistryTokenAuth;
  readonly keyId: string;
  readonly stop: () => Promise<void>;
  private records: TokenRequestRecord[] = [];
  private expiresIn: number;
  private expOffset: number;
  private readonly policy: TokenPolicy;

  constructor(
    private readonly server: http.Server,
    private readonly dir: string,
    readonly url: string,
    readonly service: string,
    readonly issuer: string,
    readonly alg: TokenAlg,
    readonly rootCertBundle: string,
    private readonly key: { privateKey: KeyObject; publicKey: KeyObject; certDerBase64: string },
    private readonly opts: TokenServerOptions,
  ) {
    this.realm = `${url}/token`;
    this.registryAuth = { realm: this.realm, service, issuer, rootCertBundle };
    this.keyId = libtrustKeyId(key.publicKey);
    this.expiresIn = opts.expiresInSeconds ?? 300;
    this.expOffset = opts.expOffsetSeconds ?? 0;
    this.policy = opts.policy ?? defaultPolicy(opts.users ?? {}, opts.anonymousPull ?? []);
    let stopping: Promise<void> | null = null;
    this.stop = () => {
      stopping ??= new Promise<void>((resolve) => {
        this.server.close(() => resolve());
        this.server.closeAllConnections();
      }).then(() => removeDir(this.dir));
      return stopping;
    };
    server.on("request", (req, res) => this.handle(req, res));
  }

  requests(): TokenRequestRecord[] {
    return [...this.records];
  }

  issued(): TokenRequestRecord[] {
    return this.records.filter((r) => r.status === 200);
  }

  clearRequests(): void {
    this.records = [];
  }

  setExpiresIn(seconds: number, expOffsetSeconds?: number): void {
    this.expiresIn = seconds;
    if (expOffsetSeconds !== undefined) this.expOffset = expOffsetSeconds;
  }

  issueToken(access: readonly TokenAccess[], opts: IssueTokenOptions = {}): string {
    const now = Math.floor(Date.now() / 1000);
    const keyHeader = opts.keyHeader ?? this.opts.keyHeader ?? "x5c";
    const header: Record<string, unknown> = { typ: "JWT", alg: this.alg };
    if (keyHeader === "x5c") header.x5c = [this.key.certDerBase64];
    else header.kid = this.keyId;
    const claims = {
      iss: opts.issuer ?? this.issuer,
      sub: opts.subject ?? "",
      aud: opts.audience ?? this.service,
      exp: now + (opts.expiresInSeconds ?? this.expiresIn) + (opts.expOffsetSeconds ?? this.expOffset),
      nbf: now,
      iat: now,
      jti: randomBytes(16).toString("hex"),
      access: access.map((a) => ({ type: a.type, name: a.name, actions: [...a.actions] })),
    };
    const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
    const signature =
      this.alg === "ES256"
        ? sign("sha256", Buffer.from(signingInput), {
            key: this.key.privateKey,
            dsaEncoding: opts.signatureEncoding === "der" ? "der" : "ieee-p1363",
          })
        : sign("sha256", Buffer.from(signingInput), this.key.privateKey);
    return `${signingInput}.${base64url(signature)}`;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? "/", this.url);
    const query: Record<string, string[]> = {};
    for (const [k, v] of url.searchParams) (query[k] ??= []).push(v);
    const scopes: TokenScope[] = [];
    for (const param of url.searchParams.getAll("scope")) {
      for (const part of param.split(" ")) {
        const scope = part === "" ? null : parseScope(part);
        if (scope) scopes.push(scope);
      }
    }
    const authHeader = req.headers.authorization;
    const record: TokenRequestRecord = {
      method: req.method ?? "",
      path: url.pathname,
      query,
      scopes,
      hadAuth: authHeader !== undefined,
      user: null,
      status: 0,
      granted: [],
      time: Date.now(),
    };
    this.records.push(record);
    // Drain any request body (e.g. an OAuth2 POST we do not implement).
    req.resume();

    const reply = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      record.status = status;
      const text = JSON.stringify(body);
      res.writeHead(status, {
        "Content-Type": "application/json",
        "Content-Length": String(Buffer.byteLength(text)),
        ...headers,
      });
      res.end(text);
    };

    if (url.pathname !== "/token" || req.method !== "GET") {
      // Docker's OAuth2 POST falls back to GET on 404.
      reply(404, { errors: [{ code: "NOT_FOUND", message: "only GET /token" }] });
      return;
    }
    let user: string | null = null;
    if (authHeader !== undefined) {
      const basic = parseBasicAuth(authHeader);
      const users = this.opts.users ?? {};
      if (
        basic === null ||
        !Object.prototype.hasOwnProperty.call(users, basic.user) ||
        users[basic.user] !== basic.password
      ) {
        reply(
          401,
          { errors: [{ code: "UNAUTHORIZED", message: "invalid credentials" }] },
          {
            "WWW-Authenticate": 'Basic realm="airpack-test-token-server"',
          },
        );
        return;
      }
      user = basic.user;
    }
    record.user = user;
    const granted: TokenAccess[] = [];
    for (const scope of scopes) {
      const actions = this.policy(user, scope);
      if (actions.length > 0) granted.push({ type: scope.type, name: scope.name, actions });
    }
    record.granted = granted;
    const issuedAt = new Date();
    const token = this.issueToken(granted, { subject: user ?? "" });
    reply(200, {
      token,
      access_token: token,
      expires_in: this.expiresIn,
      issued_at: issuedAt.toISOString(),
    });
  }
}

/** Starts a token server on 127.0.0.1 (a free port) with a fresh signing key and certificate. */
export async function startTokenServer(opts: TokenServerOptions = {}): Promise<TokenServer> {
  const dir = await makeTempDir("airpack-token");
  const server = http.createServer();
  try {
    const alg = opts.alg ?? "ES256";
    const key = await makeSigningKey(dir, alg);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    const addr = server.address();
    if (addr === null || typeof addr === "string") throw new Error("token server: no TCP address");
    return new TokenServerImpl(
      server,
      dir,
      `http://127.0.0.1:${addr.port}`,
      opts.service ?? "airpack-test-registry",
      opts.issuer ?? "airpack-test-token-server",
      alg,
      key.certFile,
      key,
      opts,
    );
  } catch (err) {
    if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    await removeDir(dir);
    throw err;
  }
}
