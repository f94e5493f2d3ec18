/**
 * A fault-injecting HTTP/1.1 proxy on 127.0.0.1 for end-to-end tests: put it
 * between a client and a registry and it can cut responses after N body bytes,
 * delay them, or answer 429 / 503 (or any status) instead of the target — each
 * only for requests whose path matches a regex, and only the first K times, so
 * a client that retries or resumes eventually succeeds.
 *
 * One request per client connection: the proxy reads the request head, forwards
 * it with `Connection: close` (the target then closes after its response, and
 * says so to the client), pipes the request body through unchanged and relays
 * the response. Clients simply open a new connection per request.
 * The Host header is forwarded unchanged, so the registry builds Location URLs
 * (upload sessions) that point back at the proxy.
 * The request target may be origin-form (`/v2/…`) or absolute-form
 * (`http://host/v2/…`, when used as an HTTP proxy).
 */
import * as net from "node:net";

export type FaultAction =
  /**
   * Relay the response head and only `afterBytes` bytes of the body, then close the connection (FIN).
   * For HEAD requests (no body) the connection is closed before the response head.
   */
  | { kind: "cut"; afterBytes: number }
  /** Answer with this status instead of asking the target. */
  | { kind: "status"; status: number; headers?: Record<string, string>; body?: string }
  /** Wait before forwarding the request (adds to any other fault). */
  | { kind: "delay"; ms: number };

export interface FaultRule {
  /** Tested against the request path including the query string. */
  path: RegExp;
  /** Only requests with this method (e.g. "GET"); default any. */
  method?: string;
  /** How many matching requests get this fault; default unlimited. */
  times?: number;
  action: FaultAction;
}

export interface ProxyRequestRecord {
  method: string;
  /** Path including the query string. */
  path: string;
  /** The Range header, or null. */
  range: string | null;
  /** Request headers, names lower-cased (the last one wins for repeated names). */
  headers: Record<string, string>;
  /** Faults applied, e.g. ["delay 500ms", "cut after 100 bytes"] or ["status 429"]. */
  faults: string[];
  /** Response status seen (from the target, or the injected one); 0 when none was seen. */
  status: number;
  /** Body bytes relayed to the client. */
  bodyBytes: number;
  /** Date.now() when the request head arrived. */
  time: number;
}

export interface FaultProxy {
  readonly host: string;
  readonly port: number;
  /** "127.0.0.1:PORT" */
  readonly address: string;
  /** "http://127.0.0.1:PORT" */
  readonly url: string;
  /** Replaces the fault rules (and their counters). */
  setFaults(faults: readonly FaultRule[]): void;
  requests(): ProxyRequestRecord[];
  clearRequests(): void;
  stop(): Promise<void>;
}

/** Cut the body of the first `times` responses to matching requests after `afterBytes` bytes. */
export function cutAfter(path: RegExp, afterBytes: number, times = 1, method?: string): FaultRule {
  return { path, method, times, action: { kind: "cut", afterBytes } };
}

/** Let the target do the first `times` matching requests, then drop the connection before its answer. */
export function dropAnswer(path: RegExp, times = 1, method?: string): FaultRule {
  return { path, method, times, action: { kind: "cut", afterBytes: -1 } };
}

/** Answer the first `times` matching requests with `429 Too Many Requests` and `Retry-After`. */
export function tooManyRequests(path: RegExp, times = 1, retryAfterSeconds = 1, method?: string): FaultRule {
  return {
    path,
    method,
    times,
    action: { kind: "status", status: 429, headers: { "Retry-After": String(retryAfterSeconds) } },
  };
}

/** Answer the first `times` matching requests with `503 Service Unavailable`. */
export function serviceUnavailable(path: RegExp, times = 1, method?: string): FaultRule {
  return { path, method, times, action: { kind: "status", status: 503 } };
}

/** Delay the first `times` matching requests by `ms`. */
export function delayRequests(path: RegExp, ms: number, times = Infinity, method?: string): FaultRule {
  return { path, method, times, action: { kind: "delay", ms } };
}

const MAX_HEAD_BYTES = 64 * 1024;
const HEAD_END = Buffer.from("\r\n\r\n");

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  404: "Not Found",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

interface RequestHead {
  method: string;
  target: string;
  version: string;
  headers: Array<[string, string]>;
}

function parseRequestHead(head: Buffer): RequestHead | null {
  const lines = head.toString("latin1").split("\r\n");
  const m = /^([A-Z]+) (\S+) (HTTP\/1\.[01])$/.exec(lines[0] ?? "");
  if (!m) return null;
  const headers: Array<[string, string]> = [];
  for (const line of lines.slice(1)) {
    if (line === "") continue;
    const colon = line.indexOf(":");
    if (colon <= 0) return null;
    headers.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
  }
  return { method: m[1] ?? "", target: m[2] ?? "", version: m[3] ?? "", headers };
}

/** origin-form path of a request target (absolute-form is reduced to path + query). */
function originForm(target: string): string {
  if (/^https?:\/\//i.test(target)) {
    const u = new URL(target);
    return `${u.pathname}${u.search}`;
  }
  return target;
}

const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "proxy-authorization"]);

function rewriteHead(head: RequestHead, path: string): Buffer {
  const lines = [`${head.method} ${path} ${head.version}`];
  for (const [name, value] of head.headers) {
    if (!HOP_BY_HOP.has(name.toLowerCase())) lines.push(`${name}: ${value}`);
  }
  lines.push("Connection: close", "", "");
  return Buffer.from(lines.join("\r\n"), "latin1");
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

interface ArmedRule {
  rule: FaultRule;
  left: number;
}

class FaultProxyImpl implements FaultProxy {
  readonly host = "127.0.0.1";
  readonly address: string;
  readonly url: string;
  readonly stop: () => Promise<void>;
  private rules: ArmedRule[] = [];
  private records: ProxyRequestRecord[] = [];
  private readonly sockets = new Set<net.Socket>();
  private stopped = false;

  constructor(
    private readonly server: net.Server,
    readonly port: number,
    private readonly targetHost: string,
    private readonly targetPort: number,
    faults: readonly FaultRule[],
  ) {
    this.address = `${this.host}:${port}`;
    this.url = `http://${this.address}`;
    this.setFaults(faults);
    server.on("connection", (socket) => this.onClient(socket));
    let stopping: Promise<void> | null = null;
    this.stop = () => {
      stopping ??= new Promise<void>((resolve) => {
        this.stopped = true;
        this.server.close(() => resolve());
        for (const s of this.sockets) s.destroy();
      });
      return stopping;
    };
  }

  setFaults(faults: readonly FaultRule[]): void {
    this.rules = faults.map((rule) => ({ rule, left: rule.times ?? Infinity }));
  }

  requests(): ProxyRequestRecord[] {
    return this.records.map((r) => ({ ...r, faults: [...r.faults] }));
  }

  clearRequests(): void {
    this.records = [];
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on("close", () => this.sockets.delete(socket));
    // Errors (ECONNRESET, EPIPE) just end the exchange; "close" follows.
    socket.on("error", () => undefined);
  }

  private onClient(client: net.Socket): void {
    this.track(client);
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      // Not HTTP at all (e.g. a TLS ClientHello from a client probing https first): refuse at once,
      // as Go's server does, instead of waiting for a header block that never comes.
      if (!/^[A-Z]{0,16}( |$)/.test(buffered.subarray(0, 17).toString("latin1"))) {
        client.off("data", onData);
        this.reply(client, 400, {}, "Client sent an HTTP request to an HTTPS server or garbage.\n");
        return;
      }
      const end = buffered.indexOf(HEAD_END);
      if (end < 0) {
        if (buffered.length > MAX_HEAD_BYTES) client.destroy();
        return;
      }
      client.off("data", onData);
      client.pause();
      void this.onRequest(
        client,
        buffered.subarray(0, end + HEAD_END.length),
        buffered.subarray(end + HEAD_END.length),
      );
    };
    client.on("data", onData);
  }

  /** Consumes the matching rules: the sum of delays and the first terminal (cut/status) action. */
  private pickFaults(method: string, path: string): { delayMs: number; terminal: FaultAction | null } {
    let delayMs = 0;
    let terminal: FaultAction | null = null;
    for (const armed of this.rules) {
      const { rule } = armed;
      if (armed.left <= 0) continue;
      if (rule.method !== undefined && rule.method.toUpperCase() !== method) continue;
      rule.path.lastIndex = 0;
      if (!rule.path.test(path)) continue;
      if (rule.action.kind === "delay") {
        delayMs += rule.action.ms;
        armed.left--;
      } else if (terminal === null) {
        terminal = rule.action;
        armed.left--;
      }
    }
    return { delayMs, terminal };
  }

  private async onRequest(client: net.Socket, rawHead: Buffer, rest: Buffer): Promise<void> {
    const head = parseRequestHead(rawHead);
    if (head === null) {
      this.reply(client, 400, {}, "bad request\n");
      return;
    }
    let path: string;
    try {
      path = originForm(head.target);
    } catch {
      this.reply(client, 400, {}, "bad request target\n");
      return;
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of head.headers) headers[name.toLowerCase()] = value;
    const record: ProxyRequestRecord = {
      method: head.method,
      path,
      range: headers.range ?? null,
      headers,
      faults: [],
      status: 0,
      bodyBytes: 0,
      time: Date.now(),
    };
    this.records.push(record);

    const { delayMs, terminal } = this.pickFaults(head.method, path);
    if (delayMs > 0) {
      record.faults.push(`delay ${delayMs}ms`);
      await sleep(delayMs);
      if (this.stopped || client.destroyed) return;
    }
    if (terminal?.kind === "status") {
      record.faults.push(`status ${terminal.status}`);
      record.status = terminal.status;
      const body = terminal.body ?? `${terminal.status} ${STATUS_TEXT[terminal.status] ?? "injected"}\n`;
      record.bodyBytes = Buffer.byteLength(body);
      this.reply(client, terminal.status, terminal.headers ?? {}, head.method === "HEAD" ? "" : body);
      return;
    }
    const cutAt = terminal?.kind === "cut" ? terminal.afterBytes : null;
    this.forward(client, head, path, rest, record, cutAt);
  }

  /** Writes a whole response, then closes the connection (any request body is read and dropped). */
  private reply(client: net.Socket, status: number, headers: Record<string, string>, body: string): void {
    const lines = [`HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Injected"}`];
    const all: Record<string, string> = {
      "Content-Type": "text/plain; charset=utf-8",
      ...headers,
      "Content-Length": String(Buffer.byteLength(body)),
      Connection: "close",
    };
    for (const [k, v] of Object.entries(all)) lines.push(`${k}: ${v}`);
    client.on("data", () => undefined);
    client.resume();
    client.end(`${lines.join("\r\n")}\r\n\r\n${body}`);
  }

  private forward(
    client: net.Socket,
    head: RequestHead,
    path: string,
    rest: Buffer,
    record: ProxyRequestRecord,
    cutAt: number | null,
  ): void {
    const upstream = net.connect(this.targetPort, this.targetHost);
    this.track(upstream);
    upstream.on("close", () => {
      if (!client.destroyed) client.end();
    });
    client.on("close", () => upstream.destroy());

    upstream.write(rewriteHead(head, path));
    if (rest.length > 0) upstream.write(rest);
    // Do not pass the client's half-close on: Go's server would cancel the request.
    client.pipe(upstream, { end: false });
    client.resume();

    let headBuf: Buffer | null = Buffer.alloc(0);
    let done = false;
    const send = (data: Buffer): void => {
      if (data.length > 0 && !client.write(data)) {
        upstream.pause();
        client.once("drain", () => upstream.resume());
      }
    };
    const cut = (): void => {
      done = true;
      record.faults.push(`cut after ${cutAt ?? 0} bytes`);
      client.unpipe(upstream);
      upstream.destroy();
      // end() (FIN after the written bytes are flushed), so the client gets exactly cutAt bytes.
      client.end();
    };
    const sendBody = (chunk: Buffer): void => {
      if (done) return;
      if (cutAt !== null && record.bodyBytes + chunk.length >= cutAt) {
        const part = chunk.subarray(0, cutAt - record.bodyBytes);
        record.bodyBytes += part.length;
        send(part);
        cut();
        return;
      }
      record.bodyBytes += chunk.length;
      send(chunk);
    };
    upstream.on("data", (chunk: Buffer) => {
      if (done) return;
      if (headBuf === null) {
        sendBody(chunk);
        return;
      }
      headBuf = Buffer.concat([headBuf, chunk]);
      // Relay interim (1xx) responses and the final response head, then count body bytes.
      while (headBuf !== null) {
        const end = headBuf.indexOf(HEAD_END);
        if (end < 0) return;
        const responseHead = headBuf.subarray(0, end + HEAD_END.length);
        const after = headBuf.subarray(end + HEAD_END.length);
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(responseHead.toString("latin1"))?.[1] ?? 0);
        if (status >= 100 && status < 200) {
          send(responseHead);
          headBuf = after;
          continue;
        }
        record.status = status;
        headBuf = null;
        if (cutAt !== null && (head.method === "HEAD" || cutAt < 0)) {
          // No body to cut, or asked to: drop the connection before the response head instead
          // (the target has done the request; the client never hears how it went).
          cut();
          return;
        }
        send(responseHead);
        if (after.length > 0 || cutAt === 0) sendBody(after);
      }
    });
  }
}

/**
 * Starts a fault-injecting proxy on 127.0.0.1 (a free port) forwarding to targetHost:targetPort.
 * `faults` are checked in order for every request; see FaultRule.
 */
export async function startFaultProxy(
  targetHost: string,
  targetPort: number,
  faults: readonly FaultRule[] = [],
): Promise<FaultProxy> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address();
  if (addr === null || typeof addr === "string") {
    server.close();
    throw new Error("fault proxy: no TCP address");
  }
  return new FaultProxyImpl(server, addr.port, targetHost, targetPort, faults);
}
