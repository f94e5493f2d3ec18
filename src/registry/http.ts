import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import * as tls from "node:tls";
import type { Readable } from "node:stream";

export interface HttpOptions {
  /** Extra CA certificates (PEM) to trust for every host. */
  ca?: string;
  /** Hosts (host or host:port) where plain HTTP or unverified TLS is allowed. */
  insecureHosts: string[];
  connectTimeoutMs: number;
  /** Idle time allowed on a response before it is treated as dropped. */
  idleTimeoutMs: number;
  /** From HTTPS_PROXY / HTTP_PROXY / NO_PROXY unless overridden. */
  proxy?: ProxySettings;
}

export interface ProxySettings {
  https?: URL;
  http?: URL;
  noProxy: string[];
}

export function proxyFromEnv(env: NodeJS.ProcessEnv = process.env): ProxySettings {
  const pick = (...names: string[]): URL | undefined => {
    for (const n of names) {
      const v = env[n];
      if (v) {
        try {
          return new URL(v.includes("://") ? v : `http://${v}`);
        } catch {
          throw new Error(`${n}: invalid proxy URL "${v}"`);
        }
      }
    }
    return undefined;
  };
  const noProxy = (env.NO_PROXY ?? env.no_proxy ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  const settings: ProxySettings = { noProxy };
  const httpsProxy = pick("HTTPS_PROXY", "https_proxy");
  const httpProxy = pick("HTTP_PROXY", "http_proxy");
  if (httpsProxy) settings.https = httpsProxy;
  if (httpProxy) settings.http = httpProxy;
  return settings;
}

function bypassProxy(host: string, noProxy: string[]): boolean {
  const h = host.toLowerCase();
  return noProxy.some(
    (p) => p === "*" || h === p || h === p.replace(/^\./, "") || h.endsWith(p.startsWith(".") ? p : `.${p}`),
  );
}

/** localhost and loopback may use plain HTTP, like docker. */
export function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "::1" || hostname === "[::1]" || /^127\./.test(hostname);
}

export function isInsecureHost(host: string, opts: HttpOptions): boolean {
  const hostname = host.replace(/:\d+$/, "");
  return opts.insecureHosts.includes(host) || opts.insecureHosts.includes(hostname);
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Readable;
  url: URL;
}

export class NetworkError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

/** Open a CONNECT tunnel through an HTTP proxy. */
function tunnel(proxy: URL, host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { host: `${host}:${port}` };
    if (proxy.username) {
      headers["proxy-authorization"] =
        "Basic " +
        Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString("base64");
    }
    const req = http.request({
      host: proxy.hostname,
      port: Number(proxy.port || 80),
      method: "CONNECT",
      path: `${host}:${port}`,
      headers,
      timeout: timeoutMs,
    });
    req.on("connect", (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        reject(new NetworkError(`proxy ${proxy.host} refused CONNECT to ${host}:${port} (${res.statusCode})`, false));
      } else resolve(socket);
    });
    req.on("timeout", () => req.destroy(new NetworkError(`proxy ${proxy.host}: connect timed out`, true)));
    req.on("error", (err) =>
      reject(err instanceof NetworkError ? err : new NetworkError(`proxy ${proxy.host}: ${err.message}`, true)),
    );
    req.end();
  });
}

/** A time-out: no response within the connect time-out, or no data within the idle one (retryable). */
export function timeoutError(url: URL, opts: HttpOptions, phase: "connect" | "idle"): NetworkError {
  return new NetworkError(
    phase === "connect"
      ? `${url.host}: connection timed out after ${opts.connectTimeoutMs / 1000}s`
      : `${url.host}: no data for ${opts.idleTimeoutMs / 1000}s; connection dropped`,
    true,
  );
}

/** The proxy a request to `url` goes through, if any (never for loopback or NO_PROXY hosts). */
export function proxyFor(url: URL, opts: HttpOptions): URL | undefined {
  const proxy = url.protocol === "https:" ? opts.proxy?.https : opts.proxy?.http;
  if (!proxy || bypassProxy(url.hostname, opts.proxy?.noProxy ?? []) || isLoopback(url.hostname)) return undefined;
  return proxy;
}

export interface RequestInit {
  method?: "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";
  headers?: Record<string, string>;
  /** Sent whole (uploads go up in bounded chunks, each one a Buffer, so a retry can send it again). */
  body?: Buffer;
  signal?: AbortSignal;
}

/** One HTTP(S) request with bounded connect and idle time-outs; no redirects, no retries. */
export async function request(url: URL, init: RequestInit, opts: HttpOptions): Promise<HttpResponse> {
  const secure = url.protocol === "https:";
  const host = url.hostname;
  const port = Number(url.port || (secure ? 443 : 80));
  const proxy = proxyFor(url, opts);
  const useProxy = proxy !== undefined;
  const insecure = isInsecureHost(url.host, opts);

  let tunnelSocket: net.Socket | undefined;
  const reqOptions: https.RequestOptions = {
    method: init.method ?? "GET",
    host,
    port,
    path: url.pathname + url.search,
    headers: {
      "user-agent": "airpack",
      ...(init.body !== undefined ? { "content-length": String(init.body.length) } : {}),
      ...(init.headers ?? {}),
    },
    timeout: opts.connectTimeoutMs,
    ...(init.signal ? { signal: init.signal } : {}),
  };
  if (secure) {
    reqOptions.servername = net.isIP(host) ? undefined : host;
    reqOptions.rejectUnauthorized = !insecure;
    if (opts.ca) reqOptions.ca = [...tls.rootCertificates, opts.ca];
    reqOptions.agent = false;
    if (useProxy) {
      const socket = await tunnel(proxy, host, port, opts.connectTimeoutMs);
      tunnelSocket = socket;
      reqOptions.createConnection = () =>
        tls.connect({
          socket,
          servername: net.isIP(host) ? undefined : host,
          rejectUnauthorized: !insecure,
          ...(opts.ca ? { ca: [...tls.rootCertificates, opts.ca] } : {}),
        });
    }
  } else if (useProxy) {
    reqOptions.host = proxy.hostname;
    reqOptions.port = Number(proxy.port || 80);
    reqOptions.path = url.toString();
    reqOptions.headers = { ...reqOptions.headers, host: url.host };
  }
  const mod = secure ? https : http;
  return new Promise<HttpResponse>((resolve, reject) => {
    const req = mod.request(reqOptions, (res) => {
      req.setTimeout(0);
      res.on("close", () => tunnelSocket?.destroy());
      // The socket may be kept alive and reused: its listener goes when this response is done.
      const socket = res.socket;
      const onIdle = (): void => {
        res.destroy(timeoutError(url, opts, "idle"));
      };
      socket.setTimeout(opts.idleTimeoutMs);
      socket.on("timeout", onIdle);
      res.on("close", () => socket.off("timeout", onIdle));
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url });
    });
    req.on("timeout", () => {
      req.destroy(timeoutError(url, opts, "connect"));
    });
    req.on("error", (err: NodeJS.ErrnoException) => {
      // A failed TLS handshake over a CONNECT tunnel leaves the raw tunnel open otherwise.
      tunnelSocket?.destroy();
      reject(describeNetworkError(err, url));
    });

    req.end(init.body);
  });
}

export function describeNetworkError(err: NodeJS.ErrnoException, url: URL): Error {
  if (err instanceof NetworkError) return err;
  if (err.name === "AbortError") return err;
  const code = err.code ?? "";
  const tlsCodes = [
    "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    "SELF_SIGNED_CERT_IN_CHAIN",
    "DEPTH_ZERO_SELF_SIGNED_CERT",
    "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
    "CERT_HAS_EXPIRED",
    "ERR_TLS_CERT_ALTNAME_INVALID",
  ];
  if (tlsCodes.includes(code)) {
    return new NetworkError(
      `${url.host}: TLS certificate not trusted (${code}); pass --ca-file with the registry's CA, or --insecure-registry ${url.host}`,
      false,
    );
  }
  if (code === "EPROTO" || /wrong version number|packet length too long/.test(err.message)) {
    return new NetworkError(
      `${url.host}: TLS handshake failed (is it plain HTTP? use --insecure-registry ${url.host})`,
      false,
    );
  }
  if (code === "ENOTFOUND" || code === "EAI_AGAIN")
    return new NetworkError(`${url.host}: host not found (${code})`, code === "EAI_AGAIN");
  if (code === "ECONNREFUSED") return new NetworkError(`${url.host}: connection refused`, true);
  return new NetworkError(`${url.host}: ${err.message}${code ? ` (${code})` : ""}`, true);
}

/** Read a small response body with a cap. */
export async function readBody(res: HttpResponse, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      res.body.destroy();
      throw new Error(`${res.url.host}: response over the ${limit}-byte limit`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
