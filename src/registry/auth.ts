import type { Credential, CredentialProvider } from "./credentials";
import { readBody, request, schemeRefusal, type HttpOptions } from "./http";

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parse a WWW-Authenticate header: `Bearer realm="…",service="…",scope="…"`. */
export function parseChallenge(header: string): Challenge | undefined {
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[2]!)) !== null) params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? "").replace(/\\(.)/g, "$1");
  return { scheme: m[1]!.toLowerCase(), params };
}

interface CachedToken {
  token: string;
  expires: number;
}

export class AuthError extends Error {}

/**
 * Bearer tokens per (registry, scope), fetched from the realm the registry names, cached until
 * shortly before they expire. Basic credentials go only to their own registry and its realm; the
 * realm may be on another host (that is the token protocol: docker sends them there too), but
 * only over HTTPS, or plain HTTP where plain HTTP is allowed (loopback, --insecure-registry).
 */
export class Authenticator {
  private readonly tokens = new Map<string, CachedToken>();
  private readonly schemes = new Map<string, Challenge>();

  constructor(
    private readonly credentials: CredentialProvider,
    private readonly transport: HttpOptions,
  ) {}

  /** The Authorization header to send to `registry` for `scope`, if we know the scheme yet. */
  async header(registry: string, scope: string): Promise<string | undefined> {
    const challenge = this.schemes.get(registry);
    if (!challenge) return undefined;
    if (challenge.scheme === "basic") {
      const cred = await this.credentials.get(registry);
      return cred ? basic(cred) : undefined;
    }
    const cached = this.tokens.get(`${registry} ${scope}`);
    if (cached && cached.expires > Date.now()) return `Bearer ${cached.token}`;
    return undefined;
  }

  /** Handle a 401: learn the scheme and fetch a fresh token. Returns false when nothing can help. */
  async onUnauthorized(
    registry: string,
    scope: string,
    wwwAuthenticate: string | undefined,
    hadAuth: boolean,
  ): Promise<boolean> {
    const challenge = wwwAuthenticate ? parseChallenge(wwwAuthenticate) : undefined;
    if (!challenge) return false;
    const known = this.schemes.get(registry);
    this.schemes.set(registry, challenge);
    if (challenge.scheme === "basic") {
      if (hadAuth && known?.scheme === "basic") return false;
      return (await this.credentials.get(registry)) !== undefined;
    }
    if (challenge.scheme !== "bearer") throw new AuthError(`${registry}: unsupported auth scheme ${challenge.scheme}`);
    this.tokens.delete(`${registry} ${scope}`);
    const wanted = challenge.params.scope ?? scope;
    const token = await this.fetchToken(registry, challenge, wanted);
    this.tokens.set(`${registry} ${scope}`, token);
    return true;
  }

  private async fetchToken(registry: string, challenge: Challenge, scope: string): Promise<CachedToken> {
    const realm = challenge.params.realm;
    if (!realm) throw new AuthError(`${registry}: bearer challenge without a realm`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new AuthError(`${registry}: bearer realm "${realm}" is not a URL`);
    }
    const refused = schemeRefusal(url, this.transport);
    if (refused) throw new AuthError(`${registry}: refusing the token realm ${realm} (${refused})`);
    if (challenge.params.service) url.searchParams.set("service", challenge.params.service);
    for (const s of scope.split(" ").filter(Boolean)) url.searchParams.append("scope", s);
    const cred = await this.credentials.get(registry);
    this.transport.debug?.(
      `${registry}: token realm ${url.protocol}//${url.host}${url.pathname}` +
        (cred ? ` gets the Basic credentials for ${registry}` : " (anonymous)"),
    );
    const headers: Record<string, string> = { accept: "application/json" };
    if (cred) headers.authorization = basic(cred);
    const res = await request(url, { headers }, this.transport);
    const body = await readBody(res, 1 << 20);
    if (res.status === 401 || res.status === 403) {
      throw new AuthError(
        `${registry}: authentication failed (${res.status} from ${url.host})${cred ? "; check the credentials for this registry" : "; log in first (docker login / podman login) or pass --username"}`,
      );
    }
    if (res.status !== 200)
      throw new AuthError(`${registry}: token request to ${url.host} failed with HTTP ${res.status}`);
    let doc: { token?: string; access_token?: string; expires_in?: number };
    try {
      doc = JSON.parse(body.toString("utf8")) as typeof doc;
    } catch {
      throw new AuthError(`${registry}: token server ${url.host} returned invalid JSON`);
    }
    const token = doc.token ?? doc.access_token;
    if (!token) throw new AuthError(`${registry}: token server ${url.host} returned no token`);
    const lifetime = Math.max(10, doc.expires_in ?? 60);
    return { token, expires: Date.now() + (lifetime - 5) * 1000 };
  }
}

function basic(cred: Credential): string {
  return "Basic " + Buffer.from(`${cred.username}:${cred.password}`).toString("base64");
}
