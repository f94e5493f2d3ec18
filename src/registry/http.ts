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
  /**
   * The minimum-throughput rule (curl's --speed-limit/--speed-time): an answer that brings fewer
   * than `minSpeed` bytes a second over `speedTimeMs` while airpack waits for it is dropped
   * (retryable: a blob resumes with Range). 0 turns it off.
   */
  minSpeed?: number;
  speedTimeMs?: number;
  /** Whole-exchange deadline of a request for a small document (not a blob body, not an upload); 0: none. */
  docTimeoutMs?: number;
  /** The command's signal (Ctrl-C, SIGTERM): every request stops when it aborts. */
  signal?: AbortSignal;
  /** --debug lines (registry decisions: token realms, redirects). */
  debug?: (line: string) => void;
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

/** Plain HTTP is allowed for loopback and for hosts named by --insecure-registry. */
export function plainHttpAllowed(url: URL, opts: HttpOptions): boolean {
  return isLoopback(url.hostname) || isInsecureHost(url.host, opts);
}

/** How a URL is named in an error: its host, or the whole URL when it has none (file:///…). */
export function where(url: URL): string {
  return url.host || url.href;
}

/** A URL's path for an error line, digests shortened (`/v2/app/blobs/sha256:0123456789ab…`). */
export function shortPath(url: URL): string {
  return url.pathname.replace(/(sha256:[0-9a-f]{12})[0-9a-f]{52}/g, "$1…");
}

/**
 * The scheme rule for every URL airpack asks: https always, http only where plain HTTP is allowed
 * for that host, nothing else. Returns why a URL is refused, or undefined.
 */
export function schemeRefusal(url: URL, opts: HttpOptions): string | undefined {
  if (url.protocol === "https:") return undefined;
  if (url.protocol !== "http:") return "not an http(s) URL";
  if (plainHttpAllowed(url, opts)) return undefined;
  return `plain HTTP to a host that is not loopback; --insecure-registry ${url.host} allows it`;
}

/** Throws (not retryable) when schemeRefusal() refuses `url`. */
export function checkScheme(url: URL, opts: HttpOptions): void {
  const why = schemeRefusal(url, opts);
  if (why) throw new NetworkError(`${url.host ? `${url.host}: ` : ""}refusing ${url.href} (${why})`, false);
}

/** The command's signal together with a request's own. */
export function combinedSignal(opts: HttpOptions, signal: AbortSignal | undefined): AbortSignal | undefined {
  if (!opts.signal) return signal;
  if (!signal || signal === opts.signal) return opts.signal;
  return AbortSignal.any([opts.signal, signal]);
}

export function abortError(): Error {
  const err = new Error("The operation was aborted") as NodeJS.ErrnoException;
  err.name = "AbortError";
  err.code = "ABORT_ERR";
  return err;
}

/**
 * Applies the minimum-throughput rule to a socket while a response is awaited. Samples
 * socket.bytesRead four times a window; a window counts only while `held()` is false (airpack itself
 * is not reading: back-pressure from the disk or a converter is not the server's slowness).
 * Returns a function that stops watching.
 */
export function watchSpeed(
  socket: net.Socket,
  url: URL,
  opts: HttpOptions,
  held: () => boolean,
  fail: (err: NetworkError) => void,
): () => void {
  const min = opts.minSpeed ?? 0;
  const windowMs = opts.speedTimeMs ?? 0;
  if (!(min > 0 && windowMs > 0)) return () => undefined;
  let startBytes = socket.bytesRead;
  let startTime = Date.now();
  const timer = setInterval(
    () => {
      const now = Date.now();
      const bytes = socket.bytesRead;
      if (held()) {
        startBytes = bytes;
        startTime = now;
        return;
      }
      const elapsed = now - startTime;
      if (elapsed < windowMs) return;
      const got = bytes - startBytes;
      if (got < (min * elapsed) / 1000) {
        clearInterval(timer);
        fail(
          new NetworkError(
            `${where(url)}: ${shortPath(url)}: slower than ${min} B/s for ${seconds(elapsed)} s (${got} bytes); ` +
              "connection dropped (AIRPACK_MIN_SPEED, AIRPACK_SPEED_TIME_MS)",
            true,
          ),
        );
        return;
      }
      startBytes = bytes;
      startTime = now;
    },
    Math.max(10, Math.floor(windowMs / 4)),
  );
  timer.unref();
  return () => clearInterval(timer);
}

function seconds(ms: number): string {
  return ms >= 10_000 ? String(Math.round(ms / 1000)) : String(Math.round(ms / 100) / 10);
}

/** The small-document deadline passed: not retried (the speed rule handles stalls). */
export function deadlineError(url: URL, method: string, ms: number): NetworkError {
  return new NetworkError(
    `${where(url)}: ${method} ${shortPath(url)}: not complete after ${seconds(ms)} s ` +
      "(the limit for manifests and other small documents, AIRPACK_DOC_TIMEOUT_MS)",
    false,
  );
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
      ? `${where(url)}: connection timed out after ${opts.connectTimeoutMs / 1000}s`
      : `${where(url)}: no data for ${opts.idleTimeoutMs / 1000}s; connection dropped`,
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
  /** A blob body of any size: no overall deadline (the throughput rule still applies). */
  stream?: boolean;
}

/**
 * One HTTP(S) request with bounded connect and idle time-outs, the throughput rule, and (for
 * small documents) an overall deadline; tied to the command's signal. No redirects, no retries.
 */
export async function request(url: URL, init: RequestInit, opts: HttpOptions): Promise<HttpResponse> {
  checkScheme(url, opts);
  const signal = combinedSignal(opts, init.signal);
  signal?.throwIfAborted();
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
  const method = init.method ?? "GET";
  const deadlineMs = init.stream || init.body !== undefined ? 0 : (opts.docTimeoutMs ?? 0);
  return new Promise<HttpResponse>((resolve, reject) => {
    const req = mod.request(reqOptions, (res) => {
      req.setTimeout(0);
      response = res;
      res.on("close", () => {
        tunnelSocket?.destroy();
        stop();
      });
      // The socket may be kept alive and reused: its listener goes when this response is done.
      const socket = res.socket;
      const onIdle = (): void => {
        res.destroy(timeoutError(url, opts, "idle"));
      };
      socket.setTimeout(opts.idleTimeoutMs);
      socket.on("timeout", onIdle);
      res.on("close", () => socket.off("timeout", onIdle));
      // An upload's answer is watched from its head on (the server may read the body slowly first).
      if (init.body !== undefined) watch(socket);
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url });
    });
    let response: http.IncomingMessage | undefined;
    let stopSpeed: (() => void) | undefined;
    const fail = (err: Error): void => {
      if (response) response.destroy(err);
      else req.destroy(err);
    };
    const watch = (socket: net.Socket): void => {
      stopSpeed?.();
      stopSpeed = watchSpeed(
        socket,
        url,
        opts,
        // Bytes waiting in the response (or a paused socket) mean airpack is the slow one.
        () => socket.isPaused() || (response?.readableLength ?? 0) > 0,
        fail,
      );
    };
    const deadline =
      deadlineMs > 0 ? setTimeout(() => fail(deadlineError(url, method, deadlineMs)), deadlineMs) : undefined;
    deadline?.unref();
    const onAbort = (): void => fail(abortError());
    signal?.addEventListener("abort", onAbort, { once: true });
    const stop = (): void => {
      stopSpeed?.();
      clearTimeout(deadline);
      signal?.removeEventListener("abort", onAbort);
    };
    if (init.body === undefined) req.on("socket", (socket) => watch(socket));
    req.on("close", () => {
      if (!response) stop();
    });
    req.on("timeout", () => {
      req.destroy(timeoutError(url, opts, "connect"));
    });
    req.on("error", (err: NodeJS.ErrnoException) => {
      // A failed TLS handshake over a CONNECT tunnel leaves the raw tunnel open otherwise.
      tunnelSocket?.destroy();
      if (!response) stop();
      reject(describeNetworkError(err, url));
    });

    req.end(init.body);
  });
}

export function describeNetworkError(err: NodeJS.ErrnoException, url: URL): Error {
  if (err instanceof NetworkError) return err;
  if (err.name === "AbortError") return err;
  const code = err.code ?? "";
  const host = where(url);
  // The answer broke HTTP (Transfer-Encoding with Content-Length, a bare CR in a header, …): asking
  // again gets the same answer.
  if (code.startsWith("HPE_")) {
    return new NetworkError(`${host}: malformed HTTP response to ${shortPath(url)} (${err.message}, ${code})`, false);
  }
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
      `${host}: TLS certificate not trusted (${code}); pass --ca-file with the registry's CA, or --insecure-registry ${url.host}`,
      false,
    );
  }
  if (code === "EPROTO" || /wrong version number|packet length too long/.test(err.message)) {
    return new NetworkError(
      `${host}: TLS handshake failed (is it plain HTTP? use --insecure-registry ${url.host})`,
      false,
    );
  }
  if (code === "ENOTFOUND" || code === "EAI_AGAIN")
    return new NetworkError(`${host}: host not found (${code})`, code === "EAI_AGAIN");
  if (code === "ECONNREFUSED") return new NetworkError(`${host}: connection refused`, true);
  return new NetworkError(`${host}: ${err.message}${code ? ` (${code})` : ""}`, true);
}

/** Read a small response body with a cap. */
export async function readBody(res: HttpResponse, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      res.body.destroy();
      throw new Error(`${where(res.url)}: response over the ${limit}-byte limit`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
