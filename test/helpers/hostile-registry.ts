/**
 * A HOSTILE registry: a test double for the end-to-end tests of how airpack copes with a
 * registry that fights back (test/e2e/hostile-registry.test.ts). No real registry behaves like
 * this, which is why it is a double of its own and not a real registry behind a proxy.
 *
 * It is a plain `net` (or `tls`, with a self-signed certificate) server on 127.0.0.1 and a free
 * port that speaks just enough of the Distribution API to serve one small image made here
 * (makeImage: a gzip layer of random bytes, its config and manifest, digests computed with
 * node:crypto), answers each request on its own connection (`Connection: close`), and can,
 * per request path, instead of the normal answer:
 *
 * - trickle the answer (head and body, or only the body; optionally chunked) a few bytes at a time,
 * - redirect to any URL (ftp://, file://, http:// …),
 * - send raw bytes as the response (Transfer-Encoding with Content-Length, a bare CR in a header…),
 * - cut the body after N bytes, or never answer at all.
 *
 * With `auth`, every /v2/ request without the token gets a 401 Bearer challenge naming `auth.realm`
 * (any URL: ftp://, plain http:// on another host, …); GET /token on this server hands out the token.
 * Every request is recorded with the time its connection closed, so tests can count requests (a
 * protocol error must be asked once) and see when airpack hung up (SIGTERM).
 */
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs/promises";
import * as net from "node:net";
import * as tls from "node:tls";
import { gzipSync } from "node:zlib";
import * as tar from "tar-stream";

import type { SelfSignedCert } from "./peers/registry";

export type Behaviour =
  /** The normal answer, written `bytesPerTick` bytes every `tickMs`; `from: "body"` sends the head at once. */
  | { kind: "trickle"; bytesPerTick?: number; tickMs?: number; from?: "head" | "body"; chunked?: boolean }
  /** `status` (default 302) with this Location. */
  | { kind: "redirect"; location: string; status?: number }
  /** These bytes as the whole response (head and body; a string is taken as latin1), then the connection closes. */
  | { kind: "raw"; response: string | Buffer }
  /** The normal head and the first `afterBytes` bytes of the body, then FIN. */
  | { kind: "cut"; afterBytes: number }
  /** Never answer (the connection stays open until the client goes). */
  | { kind: "hang" };

export interface HostileRule {
  /** Tested against the path with its query string. */
  path: RegExp;
  method?: string;
  /** How many matching requests get it; default all. */
  times?: number;
  behaviour: Behaviour;
}

export interface HostileRequest {
  method: string;
  /** Path with the query string. */
  path: string;
  /** Request headers, names lower-cased. */
  headers: Record<string, string>;
  /** What was done: "normal 200", "trickle", "redirect ftp://…", … */
  answer: string;
  /** Date.now() when the request head was in. */
  time: number;
  /** Date.now() when its connection closed (undefined while open). */
  closedAt?: number;
  /** Response bytes written (head and body). */
  written: number;
}

export interface TestImage {
  repository: string;
  tag: string;
  manifest: Buffer;
  manifestDigest: string;
  config: Buffer;
  configDigest: string;
  layer: Buffer;
  layerDigest: string;
}

export interface HostileRegistry {
  /** "127.0.0.1:PORT" */
  readonly host: string;
  readonly port: number;
  /** "http://127.0.0.1:PORT" or "https://127.0.0.1:PORT" */
  readonly url: string;
  readonly image: TestImage;
  /** `REPOSITORY:TAG` on this registry, e.g. "127.0.0.1:PORT/hostile/app:1". */
  readonly ref: string;
  /** Replaces the rules (and their counters). */
  setRules(rules: readonly HostileRule[]): void;
  /** Bearer auth on (with this realm) or off (undefined). */
  setAuth(auth: { realm: string } | undefined): void;
  requests(): HostileRequest[];
  clearRequests(): void;
  /** Connections accepted so far (a request needs one; a TLS probe or a refused scheme may not make one). */
  connections(): number;
  stop(): Promise<void>;
}

export const TOKEN = "hostile-test-token";
const MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json";
const MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip";

function sha256(data: Buffer): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

function goArch(): string {
  return process.arch === "x64" ? "amd64" : process.arch;
}

async function tarOf(name: string, data: Buffer): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  await new Promise<void>((resolve, reject) =>
    pack.entry({ name, size: data.length, mode: 0o644, mtime: new Date(0) }, data, (err) =>
      err ? reject(err) : resolve(),
    ),
  );
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

/** One image for the host platform: a gzip layer of `layerBytes` random bytes, its config and manifest. */
export async function makeImage(layerBytes = 64 * 1024): Promise<TestImage> {
  const uncompressed = await tarOf("data.bin", randomBytes(layerBytes));
  const layer = gzipSync(uncompressed);
  const config = Buffer.from(
    JSON.stringify({
      architecture: goArch(),
      os: "linux",
      config: {},
      rootfs: { type: "layers", diff_ids: [sha256(uncompressed)] },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_MANIFEST,
      config: { mediaType: MEDIA_CONFIG, digest: sha256(config), size: config.length },
      layers: [{ mediaType: MEDIA_LAYER, digest: sha256(layer), size: layer.length }],
    }),
  );
  return {
    repository: "hostile/app",
    tag: "1",
    manifest,
    manifestDigest: sha256(manifest),
    config,
    configDigest: sha256(config),
    layer,
    layerDigest: sha256(layer),
  };
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

const REASONS: Record<number, string> = {
  200: "OK",
  301: "Moved Permanently",
  302: "Found",
  307: "Temporary Redirect",
  401: "Unauthorized",
  404: "Not Found",
};

function headOf(a: Answer, chunked: boolean): Buffer {
  const lines = [`HTTP/1.1 ${a.status} ${REASONS[a.status] ?? "Whatever"}`];
  const headers: Record<string, string> = {
    ...a.headers,
    ...(chunked ? { "Transfer-Encoding": "chunked" } : { "Content-Length": String(a.body.length) }),
    Connection: "close",
  };
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  return Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1");
}

function chunkedBody(body: Buffer, size: number): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at < body.length; at += size) {
    const piece = body.subarray(at, at + size);
    parts.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from("\r\n"));
  }
  parts.push(Buffer.from("0\r\n\r\n"));
  return Buffer.concat(parts);
}

class Hostile implements HostileRegistry {
  readonly host: string;
  readonly url: string;
  readonly ref: string;
  private rules: { rule: HostileRule; left: number }[] = [];
  private auth: { realm: string } | undefined;
  private records: HostileRequest[] = [];
  private accepted = 0;
  private readonly sockets = new Set<net.Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly server: net.Server,
    readonly port: number,
    secure: boolean,
    readonly image: TestImage,
  ) {
    this.host = `127.0.0.1:${port}`;
    this.url = `${secure ? "https" : "http"}://${this.host}`;
    this.ref = `${this.host}/${image.repository}:${image.tag}`;
    server.on(secure ? "secureConnection" : "connection", (socket: net.Socket) => this.onConnection(socket));
    // TLS handshakes that fail (a client probing with the wrong CA) are no business of the tests.
    server.on("tlsClientError", () => undefined);
  }

  setRules(rules: readonly HostileRule[]): void {
    this.rules = rules.map((rule) => ({ rule, left: rule.times ?? Infinity }));
  }

  setAuth(auth: { realm: string } | undefined): void {
    this.auth = auth;
  }

  requests(): HostileRequest[] {
    return this.records.map((r) => ({ ...r, headers: { ...r.headers } }));
  }

  clearRequests(): void {
    this.records = [];
  }

  connections(): number {
    return this.accepted;
  }

  stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private onConnection(socket: net.Socket): void {
    this.accepted++;
    this.sockets.add(socket);
    socket.on("error", () => undefined);
    let record: HostileRequest | undefined;
    socket.on("close", () => {
      this.sockets.delete(socket);
      if (record) record.closedAt = Date.now();
    });
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      if (!/^[A-Z]{0,16}( |$)/.test(buffered.subarray(0, 17).toString("latin1"))) {
        socket.destroy(); // not HTTP (a TLS hello on the plain server)
        return;
      }
      const end = buffered.indexOf("\r\n\r\n");
      if (end < 0) {
        if (buffered.length > 64 * 1024) socket.destroy();
        return;
      }
      socket.off("data", onData);
      socket.on("data", () => undefined); // the rest (no bodies expected) is ignored
      const lines = buffered.subarray(0, end).toString("latin1").split("\r\n");
      const [method = "", target = ""] = (lines[0] ?? "").split(" ");
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(":");
        if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      record = { method, path: target, headers, answer: "", time: Date.now(), written: 0 };
      this.records.push(record);
      this.answer(socket, record);
    };
    socket.on("data", onData);
  }

  private pick(method: string, path: string): Behaviour | undefined {
    for (const armed of this.rules) {
      if (armed.left <= 0) continue;
      if (armed.rule.method !== undefined && armed.rule.method !== method) continue;
      armed.rule.path.lastIndex = 0;
      if (!armed.rule.path.test(path)) continue;
      armed.left--;
      return armed.rule.behaviour;
    }
    return undefined;
  }

  /** The answer a well-behaved registry would give. */
  private normal(method: string, path: string, headers: Record<string, string>): Answer {
    const img = this.image;
    const json = (status: number, doc: unknown, extra: Record<string, string> = {}): Answer => ({
      status,
      headers: { "Content-Type": "application/json", ...extra },
      body: Buffer.from(JSON.stringify(doc)),
    });
    const pathname = path.split("?")[0] ?? "";
    if (pathname === "/token") return json(200, { token: TOKEN, expires_in: 300 });
    if (this.auth && pathname.startsWith("/v2/") && headers.authorization !== `Bearer ${TOKEN}`) {
      return json(
        401,
        { errors: [{ code: "UNAUTHORIZED", message: "authentication required" }] },
        { "WWW-Authenticate": `Bearer realm="${this.auth.realm}",service="hostile"` },
      );
    }
    if (pathname === "/v2/") return json(200, {}, { "Docker-Distribution-API-Version": "registry/2.0" });
    const prefix = `/v2/${img.repository}/`;
    let blob: { body: Buffer; type: string; digest: string } | undefined;
    if (pathname === `${prefix}manifests/${img.tag}` || pathname === `${prefix}manifests/${img.manifestDigest}`)
      blob = { body: img.manifest, type: MEDIA_MANIFEST, digest: img.manifestDigest };
    else if (pathname === `${prefix}blobs/${img.configDigest}`)
      blob = { body: img.config, type: "application/octet-stream", digest: img.configDigest };
    else if (pathname === `${prefix}blobs/${img.layerDigest}`)
      blob = { body: img.layer, type: "application/octet-stream", digest: img.layerDigest };
    if (!blob) return json(404, { errors: [{ code: "NOT_FOUND", message: `${pathname} is not here` }] });
    return {
      status: 200,
      headers: { "Content-Type": blob.type, "Docker-Content-Digest": blob.digest },
      body: method === "HEAD" ? Buffer.alloc(0) : blob.body,
    };
  }

  private answer(socket: net.Socket, record: HostileRequest): void {
    const { method, path } = record;
    const write = (data: Buffer | string): void => {
      if (socket.destroyed) return;
      record.written += Buffer.byteLength(data);
      socket.write(data);
    };
    const behaviour = this.pick(method, path);
    const normal = this.normal(method, path, record.headers);
    if (!behaviour) {
      record.answer = `normal ${normal.status}`;
      write(headOf(normal, false));
      if (method !== "HEAD") write(normal.body);
      socket.end();
      return;
    }
    switch (behaviour.kind) {
      case "redirect": {
        record.answer = `redirect ${behaviour.location}`;
        const a: Answer = {
          status: behaviour.status ?? 302,
          headers: { Location: behaviour.location },
          body: Buffer.alloc(0),
        };
        write(headOf(a, false));
        socket.end();
        return;
      }
      case "raw":
        record.answer = "raw";
        write(typeof behaviour.response === "string" ? Buffer.from(behaviour.response, "latin1") : behaviour.response);
        socket.end();
        return;
      case "cut": {
        record.answer = `cut after ${behaviour.afterBytes}`;
        write(headOf(normal, false));
        write(normal.body.subarray(0, behaviour.afterBytes));
        socket.end();
        return;
      }
      case "hang":
        record.answer = "hang";
        return;
      case "trickle": {
        record.answer = "trickle";
        const chunked = behaviour.chunked === true;
        const head = headOf(normal, chunked);
        const body = method === "HEAD" ? Buffer.alloc(0) : chunked ? chunkedBody(normal.body, 1) : normal.body;
        let rest = behaviour.from === "body" ? body : Buffer.concat([head, body]);
        if (behaviour.from === "body") write(head);
        const per = behaviour.bytesPerTick ?? 1;
        const timer = setInterval(() => {
          if (socket.destroyed || rest.length === 0) {
            clearInterval(timer);
            this.timers.delete(timer);
            if (!socket.destroyed) socket.end();
            return;
          }
          write(rest.subarray(0, per));
          rest = rest.subarray(per);
        }, behaviour.tickMs ?? 100);
        this.timers.add(timer);
        return;
      }
    }
  }
}

/**
 * Starts a hostile registry on 127.0.0.1 (a free port), plain HTTP or, given `tls`, HTTPS with
 * that certificate. Serves `image` (default: makeImage()).
 */
export async function startHostileRegistry(
  opts: { tls?: SelfSignedCert; image?: TestImage } = {},
): Promise<HostileRegistry> {
  const image = opts.image ?? (await makeImage());
  const server = opts.tls
    ? tls.createServer({ cert: await fs.readFile(opts.tls.certFile), key: await fs.readFile(opts.tls.keyFile) })
    : net.createServer();
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
    throw new Error("hostile registry: no TCP address");
  }
  return new Hostile(server, addr.port, opts.tls !== undefined, image);
}

/** A TCP listener that only counts connections (a target that must never be contacted). */
export async function startCountingListener(): Promise<{ port: number; connections(): number; stop(): Promise<void> }> {
  let count = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    count++;
    sockets.add(s);
    s.on("error", () => undefined);
    s.on("close", () => sockets.delete(s));
    s.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    connections: () => count,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
