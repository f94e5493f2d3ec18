import { createReadStream } from "node:fs";
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import bcrypt from "bcryptjs";
import * as http from "node:http";
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import { pipeline } from "node:stream/promises";
import type { Readable } from "node:stream";
import type { Descriptor } from "../oci/descriptor";
import { DigestStream } from "../oci/digest";
import { isDigest } from "../oci/digest";
import type { BlobLocation, Catalog, ServedRepository } from "./catalog";

export interface ServerOptions {
  catalog: Catalog;
  host: string;
  port: number;
  tls?: { cert: Buffer; key: Buffer };
  /** htpasswd users (bcrypt hashes): every request then needs Basic auth. */
  users?: Map<string, string>;
  log: (line: string) => void;
}

export interface RunningServer {
  /** "host:port" as bound (port 0 picks a free one). */
  address: string;
  close(): Promise<void>;
}

const NAME = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const ROUTE = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/;
const TAGS = /^\/v2\/(.+)\/tags\/list$/;

/** A registry error in the distribution spec's shape. */
function fail(res: http.ServerResponse, status: number, code: string, message: string): number {
  const body = JSON.stringify({ errors: [{ code, message }] });
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
  return status;
}

function json(res: http.ServerResponse, req: http.IncomingMessage, doc: unknown): number {
  const body = JSON.stringify(doc);
  res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(req.method === "HEAD" ? undefined : body);
  return 200;
}

/** `bytes=a-b`, `bytes=a-`, `bytes=-n` → [start, end] within size; null when unsatisfiable. */
export function parseRange(header: string, size: number): [number, number] | null {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null;
  if (m[1] === "") {
    const n = Math.min(Number(m[2]), size);
    return n > 0 ? [size - n, size - 1] : null;
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (!Number.isSafeInteger(start) || start >= size || end < start) return null;
  return [start, end];
}

/**
 * A read-only Distribution API over verified images: /v2/, manifests by tag or digest, blobs with
 * Range, tags/list and _catalog. Names are checked against the reference grammar and files are
 * only ever found by digest, so a request can't reach outside what is served.
 */
export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const { catalog } = opts;
  const allowed = new Set<string>(); // sha256 of "user:password" pairs that matched, to skip bcrypt next time
  const authorized = async (req: http.IncomingMessage): Promise<boolean> => {
    if (!opts.users) return true;
    const m = /^Basic ([A-Za-z0-9+/=]+)$/.exec(req.headers.authorization ?? "");
    if (!m) return false;
    const pair = Buffer.from(m[1]!, "base64").toString("utf8");
    const key = createHash("sha256").update(pair).digest("hex");
    if (allowed.has(key)) return true;
    const colon = pair.indexOf(":");
    const hash = colon > 0 ? opts.users.get(pair.slice(0, colon)) : undefined;
    if (!hash || !(await bcrypt.compare(pair.slice(colon + 1), hash))) return false;
    allowed.add(key);
    return true;
  };
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<number> => {
    res.setHeader("docker-distribution-api-version", "registry/2.0");
    if (!(await authorized(req))) {
      res.setHeader("www-authenticate", 'Basic realm="airpack serve"');
      return fail(res, 401, "UNAUTHORIZED", "authentication required");
    }
    const url = new URL(req.url ?? "/", "http://x");
    if (req.method !== "GET" && req.method !== "HEAD")
      return fail(res, 405, "UNSUPPORTED", "this registry is read-only (airpack serve)");
    const path = url.pathname;
    if (path === "/v2/" || path === "/v2") return json(res, req, {});
    if (path === "/v2/_catalog") {
      const names = [...catalog.repositories.keys()].sort();
      const last = url.searchParams.get("last");
      const n = Math.min(Number(url.searchParams.get("n") ?? 1000) || 1000, 10_000);
      return json(res, req, { repositories: names.filter((x) => last === null || x > last).slice(0, n) });
    }
    const tags = TAGS.exec(path);
    if (tags) {
      const repo = pick(tags[1]!, url);
      if (!repo) return fail(res, 404, "NAME_UNKNOWN", "repository name not known to registry");
      return json(res, req, { name: tags[1], tags: [...repo.tags.keys()].sort() });
    }
    const route = ROUTE.exec(path);
    if (!route) return fail(res, 404, "NOT_FOUND", "no such route");
    const [, name, kind, reference] = route as unknown as [string, string, string, string];
    const repo = pick(name, url);
    if (!repo) return fail(res, 404, "NAME_UNKNOWN", "repository name not known to registry");
    if (kind === "manifests") {
      const desc = isDigest(reference)
        ? repo.manifests.get(reference)
        : TAG.test(reference)
          ? repo.tags.get(reference)
          : undefined;
      if (!desc) return fail(res, 404, "MANIFEST_UNKNOWN", "manifest unknown");
      const at = catalog.files.get(desc.digest)!;
      await at.check?.();
      const bytes = await readAt(at, desc);
      res.writeHead(200, {
        "content-type": desc.mediaType,
        "content-length": bytes.length,
        "docker-content-digest": desc.digest,
        etag: `"${desc.digest}"`,
      });
      res.end(req.method === "HEAD" ? undefined : bytes);
      return 200;
    }
    const desc: Descriptor | undefined = isDigest(reference)
      ? (repo.blobs.get(reference) ?? repo.manifests.get(reference))
      : undefined;
    if (!desc) return fail(res, 404, "BLOB_UNKNOWN", "blob unknown to registry");
    const at = catalog.files.get(desc.digest)!;
    await at.check?.(); // never an unchecked byte: a blob that fails gets a 500, and the log says why
    return sendBlob(req, res, desc, at);
  };

  const pick = (name: string, url: URL): ServedRepository | undefined => {
    if (!NAME.test(name) || name.length > 255) return undefined;
    const list = catalog.repositories.get(name);
    const ns = url.searchParams.get("ns");
    return (ns ? list?.find((r) => r.host === ns) : undefined) ?? list?.[0];
  };

  const listener = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const started = Date.now();
    handle(req, res).then(
      (status) =>
        opts.log(`${req.socket.remoteAddress ?? "-"} ${req.method} ${req.url} ${status} ${Date.now() - started}ms`),
      (err: Error) => {
        opts.log(`${req.socket.remoteAddress ?? "-"} ${req.method} ${req.url} 500 ${err.message}`);
        if (!res.headersSent) fail(res, 500, "UNKNOWN", "internal error");
        else res.destroy();
      },
    );
  };
  // Slow or idle clients are cut off (a request's head must arrive within AIRPACK_SERVE_HEADERS_MS,
  // checked every second); the number of connections is bounded.
  const headersTimeout = Number(process.env.AIRPACK_SERVE_HEADERS_MS) || 10_000;
  const limits = {
    headersTimeout,
    requestTimeout: Math.max(headersTimeout, 60_000),
    keepAliveTimeout: 5_000,
    connectionsCheckingInterval: 1_000,
  };
  const server = opts.tls
    ? https.createServer({ ...limits, cert: opts.tls.cert, key: opts.tls.key }, listener)
    : http.createServer(limits, listener);
  server.maxConnections = 2_000;
  // A connection with nothing going either way for a minute (idle, or a client that stopped reading) goes.
  server.setTimeout(60_000, (socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  return {
    address: `${host}:${addr.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Blobs up to this size from a compressed bundle are decoded and checked whole before a byte is sent. */
const CHECK_FIRST_BYTES = 1024 * 1024;

async function collect(data: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of data) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** The whole blob, decoded and checked against its digest. */
async function readChecked(at: BlobLocation, desc: Descriptor): Promise<Buffer> {
  const bytes = await collect(at.read!(0, desc.size - 1));
  const got = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  if (bytes.length !== desc.size || got !== desc.digest) throw new Error(`blob ${desc.digest} failed its check`);
  return bytes;
}

async function readAt(at: BlobLocation, desc: Descriptor): Promise<Buffer> {
  if (at.read) return readChecked(at, desc);
  const size = desc.size;
  const fh = await open(at.path, "r");
  try {
    const buf = Buffer.alloc(size);
    const { bytesRead } = await fh.read(buf, 0, size, at.start);
    if (bytesRead !== size) throw new Error(`${at.path}: short read at ${at.start}`);
    return buf;
  } finally {
    await fh.close();
  }
}

async function sendBlob(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  desc: Descriptor,
  at: BlobLocation,
): Promise<number> {
  const headers: http.OutgoingHttpHeaders = {
    "content-type": "application/octet-stream",
    "docker-content-digest": desc.digest,
    "accept-ranges": "bytes",
    etag: `"${desc.digest}"`,
  };
  let start = 0;
  let end = desc.size - 1;
  let status = 200;
  const range = req.headers.range;
  if (range !== undefined && desc.size > 0) {
    const r = parseRange(range, desc.size);
    if (!r) {
      res.writeHead(416, { "content-range": `bytes */${desc.size}` });
      res.end();
      return 416;
    }
    [start, end] = r;
    status = 206;
    headers["content-range"] = `bytes ${start}-${end}/${desc.size}`;
  }
  headers["content-length"] = desc.size === 0 ? 0 : end - start + 1;
  res.writeHead(status, headers);
  if (req.method === "HEAD" || desc.size === 0) {
    res.end();
    return status;
  }
  if (!at.read) {
    await pipeline(createReadStream(at.path, { start: at.start + start, end: at.start + end }), res);
    return status;
  }
  if (status === 200 && desc.size <= CHECK_FIRST_BYTES) {
    res.end(await readChecked(at, desc));
    return status;
  }
  // A whole blob is hashed as it goes: a mismatch ends the transfer broken, never complete. A
  // range is sent from blocks whose blob was checked in the indexing pass (and by xz's own checks).
  const label = `blob ${desc.digest}`;
  const data = at.read(start, end);
  if (status === 200) await pipeline(data, new DigestStream(desc, label), res);
  else await pipeline(data, res);
  return status;
}
