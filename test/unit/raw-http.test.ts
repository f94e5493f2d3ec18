/**
 * The raw blob client (src/registry/raw-http.ts) and the registry download that uses it
 * (resumableBlob(...).feedInto). Servers here are scripted byte by byte on 127.0.0.1 (plain TCP,
 * or TLS with a certificate made by openssl), so every framing case is exact; the expected bytes
 * are the ones the server sent, compared with node:crypto.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import * as net from "node:net";
import * as tls from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { rawGet, RawUnsupported } from "../../src/registry/raw-http";
import { NetworkError, type HttpOptions } from "../../src/registry/http";
import { resumableBlob, statusError } from "../../src/registry/client";
import { createRegistryClient } from "../../src/registry/setup";
import { FileWriteStream, feedWriter, type BlockFeed, type BlockSink } from "../../src/util/file-writer";

const sha256 = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

const TRANSPORT: HttpOptions = { insecureHosts: [], connectTimeoutMs: 5000, idleTimeoutMs: 5000 };

/** What a scripted server does with one connection, given the request head it read. */
type Script = (socket: net.Socket, head: string) => void | Promise<void>;

interface Scripted {
  url: (path: string) => URL;
  heads: string[];
  close: () => Promise<void>;
}

/** A server that reads each request head and runs `script` on the socket. */
async function scripted(script: Script, tlsOptions?: tls.TlsOptions): Promise<Scripted> {
  const heads: string[] = [];
  const sockets = new Set<net.Socket>();
  const onConnection = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    let buffered = "";
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString("latin1");
      const end = buffered.indexOf("\r\n\r\n");
      if (end < 0) {
        if (!/^[A-Z]/.test(buffered)) socket.destroy(); // a TLS probe or garbage
        return;
      }
      socket.off("data", onData);
      const head = buffered.slice(0, end);
      heads.push(head);
      void Promise.resolve(script(socket, head)).catch(() => socket.destroy());
    };
    socket.on("data", onData);
  };
  const server = tlsOptions ? tls.createServer(tlsOptions, onConnection) : net.createServer(onConnection);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  const scheme = tlsOptions ? "https" : "http";
  return {
    url: (path) => new URL(`${scheme}://127.0.0.1:${port}${path}`),
    heads,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** An in-memory sink with small blocks whose room comes back a moment later, like a busy disk. */
class SlowSink implements BlockSink {
  readonly chunks: Buffer[] = [];
  private readonly block: Buffer;
  private fill = 0;
  private busy = false;

  constructor(
    blockSize = 64 * 1024,
    private readonly busyMs = 1,
  ) {
    this.block = Buffer.alloc(blockSize);
  }

  space(): Buffer | undefined {
    return this.busy ? undefined : this.block.subarray(this.fill);
  }

  filled(n: number): void {
    this.fill += n;
    if (this.fill === this.block.length) {
      this.chunks.push(Buffer.from(this.block));
      this.fill = 0;
      this.busy = true;
      setTimeout(() => (this.busy = false), this.busyMs);
    }
  }

  async whenSpace(): Promise<void> {
    while (this.busy) await sleep(1);
  }

  bytes(): Buffer {
    return Buffer.concat([...this.chunks, this.block.subarray(0, this.fill)]);
  }
}

const ok = (body: Buffer, extra = ""): Buffer =>
  Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n${extra}\r\n`), body]);

describe("raw GET client", () => {
  const data = randomBytes(5 * 1024 * 1024 + 123);
  let dir = "";
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "airpack-raw-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("pours a Content-Length body into a block writer: same bytes, request as sent", async () => {
    const server = await scripted((socket) => {
      socket.end(ok(data));
    });
    try {
      const res = await rawGet(server.url("/v2/r/blobs/x?a=1"), { authorization: "Bearer t" }, TRANSPORT);
      assert.equal(res.status, 200);
      assert.equal(res.headers["content-length"], String(data.length));
      const path = join(dir, "a");
      const file = new FileWriteStream(path, { flags: "wx", expect: { size: data.length } });
      await file.opened();
      await res.body.pourInto(file);
      file.end();
      await new Promise((resolve) => file.on("finish", resolve));
      assert.equal(res.body.delivered, data.length);
      assert.equal(sha256(await readFile(path)), sha256(data));
      const head = server.heads[0]!;
      assert.match(head, /^GET \/v2\/r\/blobs\/x\?a=1 HTTP\/1\.1\r\n/);
      assert.match(head, /\r\nHost: 127\.0\.0\.1:\d+\r\n/);
      assert.match(head, /\r\nauthorization: Bearer t\r\n/);
      assert.match(head, /\r\nConnection: close/);
    } finally {
      await server.close();
    }
  });

  it("a head sent a byte at a time, body bytes in its last packet, extra bytes after the body; slow sink", async () => {
    const body = data.subarray(0, 300_000);
    const server = await scripted(async (socket) => {
      const head = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nX-A: 1\r\nx-a: 2\r\n\r\n`);
      for (let i = 0; i < head.length - 1; i++) {
        socket.write(head.subarray(i, i + 1));
        await sleep(1);
      }
      socket.write(Buffer.concat([head.subarray(head.length - 1), body.subarray(0, 777)]));
      await sleep(5);
      socket.end(Buffer.concat([body.subarray(777), Buffer.from("bytes past Content-Length")]));
    });
    try {
      const res = await rawGet(server.url("/b"), {}, TRANSPORT);
      assert.equal(res.headers["x-a"], "1, 2");
      const sink = new SlowSink(1000);
      await res.body.pourInto(sink);
      assert.equal(sha256(sink.bytes()), sha256(body));
      assert.equal(res.body.delivered, body.length);
    } finally {
      await server.close();
    }
  });

  it("reads as a Readable: an error document, and a body that ends with the connection", async () => {
    const json = Buffer.from(JSON.stringify({ errors: [{ code: "BLOB_UNKNOWN", message: "blob unknown" }] }));
    const server = await scripted((socket, head) => {
      if (head.includes("/missing"))
        socket.end(
          Buffer.concat([Buffer.from(`HTTP/1.1 404 Not Found\r\nContent-Length: ${json.length}\r\n\r\n`), json]),
        );
      else socket.end(Buffer.concat([Buffer.from("HTTP/1.1 200 OK\r\n\r\n"), data.subarray(0, 200_000)]));
    });
    try {
      const missing = await rawGet(server.url("/missing"), {}, TRANSPORT);
      assert.equal(missing.status, 404);
      const err = await statusError(missing, "layer sha256:ab");
      assert.equal(err.message.split("\n").length, 1);
      assert.match(err.message, /HTTP 404: BLOB_UNKNOWN blob unknown/);
      const open = await rawGet(server.url("/open"), {}, TRANSPORT);
      const parts: Buffer[] = [];
      for await (const chunk of open.body) parts.push(chunk as Buffer);
      assert.equal(sha256(Buffer.concat(parts)), sha256(data.subarray(0, 200_000)));
    } finally {
      await server.close();
    }
  });

  it("refuses chunked bodies (RawUnsupported), oversized heads and header injection", async () => {
    const server = await scripted((socket, head) => {
      if (head.includes("/chunked"))
        socket.end("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
      else socket.end(`HTTP/1.1 200 OK\r\nX-Big: ${"a".repeat(70_000)}\r\n\r\n`);
    });
    try {
      await assert.rejects(rawGet(server.url("/chunked"), {}, TRANSPORT), RawUnsupported);
      await assert.rejects(rawGet(server.url("/big"), {}, TRANSPORT), /response head over 65536 bytes/);
      await assert.rejects(rawGet(server.url("/x"), { authorization: "a\r\nX-Evil: 1" }, TRANSPORT), /line break/);
    } finally {
      await server.close();
    }
  });

  it("a connection closed midway: a retryable error, and only whole reads counted", async () => {
    const server = await scripted((socket) => {
      const full = ok(data);
      socket.end(full.subarray(0, full.length - data.length + 1_000_000));
    });
    try {
      const res = await rawGet(server.url("/cut"), {}, TRANSPORT);
      const sink = new SlowSink();
      const err = await res.body.pourInto(sink).then(
        () => undefined,
        (e: Error) => e,
      );
      assert.ok(err instanceof NetworkError && err.retryable, String(err));
      assert.match(err.message, /connection closed after 1000000 of 5243003 bytes/);
      assert.equal(res.body.delivered, sink.bytes().length);
      assert.ok(sink.bytes().equals(data.subarray(0, sink.bytes().length)));
    } finally {
      await server.close();
    }
  });

  it("an abort signal stops a body that is still coming", async () => {
    const server = await scripted((socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${data.length}\r\n\r\n`);
      socket.write(data.subarray(0, 1000)); // and nothing more
    });
    try {
      const abort = new AbortController();
      const res = await rawGet(server.url("/slow"), {}, TRANSPORT, abort.signal);
      const poured = res.body.pourInto(new SlowSink());
      setTimeout(() => abort.abort(), 20);
      await assert.rejects(poured, { name: "AbortError" });
    } finally {
      await server.close();
    }
  });

  it("a failure while bytes wait for room: the pour settles last, nothing is written after it", async () => {
    const server = await scripted((socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${data.length}\r\n\r\n`);
      socket.write(data.subarray(0, 200_000)); // then nothing: the sink is what holds things up
    });
    try {
      const abort = new AbortController();
      const res = await rawGet(server.url("/wait"), {}, TRANSPORT, abort.signal);
      const sink = new SlowSink(1000, 40);
      const poured = res.body.pourInto(sink);
      setTimeout(() => abort.abort(), 150);
      await assert.rejects(poured, { name: "AbortError" });
      const atSettle = sink.bytes().length;
      assert.equal(res.body.delivered, atSettle);
      await sleep(300);
      assert.equal(sink.bytes().length, atSettle, "bytes were put into the sink after the pour settled");
      assert.ok(sink.bytes().equals(data.subarray(0, atSettle)));
    } finally {
      await server.close();
    }
  });

  describe("over TLS", () => {
    let cert = "";
    let key = "";
    before(async () => {
      const r = spawnSync(
        "openssl",
        [
          "req",
          "-x509",
          "-newkey",
          "rsa:2048",
          "-nodes",
          "-days",
          "1",
          "-subj",
          "/CN=127.0.0.1",
          "-addext",
          "subjectAltName=IP:127.0.0.1",
          "-keyout",
          join(dir, "k.pem"),
          "-out",
          join(dir, "c.pem"),
        ],
        { encoding: "utf8" },
      );
      assert.equal(r.status, 0, r.stderr);
      cert = await readFile(join(dir, "c.pem"), "utf8");
      key = await readFile(join(dir, "k.pem"), "utf8");
    });

    it("with the CA: the body comes through; without it: one line about the certificate", async () => {
      const server = await scripted((socket) => void socket.end(ok(data)), { cert, key });
      try {
        const res = await rawGet(server.url("/t"), {}, { ...TRANSPORT, ca: cert });
        const sink = new SlowSink();
        await res.body.pourInto(sink);
        assert.equal(sha256(sink.bytes()), sha256(data));
        await assert.rejects(rawGet(server.url("/t"), {}, TRANSPORT), /TLS certificate not trusted .*--ca-file/);
      } finally {
        await server.close();
      }
    });

    it("a response head over 64 KiB: one line, no hang", async () => {
      const big = `HTTP/1.1 200 OK\r\nX-Big: ${"a".repeat(200_000)}\r\n\r\n`;
      const server = await scripted((socket) => void socket.end(big), { cert, key });
      try {
        await assert.rejects(
          rawGet(server.url("/big"), {}, { ...TRANSPORT, ca: cert }),
          /response head over 65536 bytes/,
        );
      } finally {
        await server.close();
      }
    });
  });
});

describe("registry download into a block writer (feedInto)", () => {
  const blob = randomBytes(3 * 1024 * 1024 + 5);
  const digest = `sha256:${sha256(blob)}`;

  /** A download of `blob` from `server` as the store runs it: fed into a checked file writer. */
  async function feed(
    server: Scripted,
    dir: string,
    client = createRegistryClient({ backoffMs: 5 }, []),
  ): Promise<Buffer> {
    const url = server.url("/");
    const download = resumableBlob(client, url.host, "r", digest, blob.length, "layer") as ReturnType<
      typeof resumableBlob
    > &
      BlockFeed;
    const path = join(dir, `blob-${randomBytes(4).toString("hex")}`);
    await feedWriter(
      download,
      new FileWriteStream(path, { flags: "wx", expect: { size: blob.length }, errorLabel: "layer" }),
    );
    return readFile(path);
  }

  it("retries a 503, resumes with Range, falls back to node:http for a chunked answer and remembers the host", async () => {
    const dir = await mkdtemp(join(tmpdir(), "airpack-feed-"));
    let n = 0;
    const server = await scripted((socket, head) => {
      if (!head.startsWith("GET /v2/r/blobs/")) return void socket.end("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
      n++;
      const range = /\r\nrange: bytes=(\d+)-/i.exec(head);
      if (n === 1) {
        // a 503 whose body is cut: thrown away unread before the retry, its error must not crash anything
        socket.end("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 100\r\n\r\n0123456789");
      } else if (n === 2) {
        socket.end(
          Buffer.concat([
            Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${blob.length}\r\n\r\n`),
            blob.subarray(0, 1_234_567),
          ]),
        );
      } else if (n === 3) {
        // chunked: the raw client refuses it and the same request goes again through node:http
        socket.end("HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
      } else {
        const from = Number(range?.[1] ?? 0);
        const rest = blob.subarray(from);
        socket.end(
          Buffer.concat([Buffer.from(`HTTP/1.1 206 Partial Content\r\nContent-Length: ${rest.length}\r\n\r\n`), rest]),
        );
      }
    });
    try {
      const client = createRegistryClient({ backoffMs: 5 }, []);
      const got = await feed(server, dir, client);
      assert.equal(sha256(got), sha256(blob));
      const gets = server.heads.filter((h) => h.startsWith("GET /v2/r/blobs/"));
      assert.equal(gets.length, 4);
      assert.doesNotMatch(gets[0]!, /range:/i);
      assert.doesNotMatch(gets[1]!, /range:/i);
      const resumedFrom = /\r\nrange: bytes=(\d+)-/i.exec(gets[2]!)?.[1];
      assert.ok(Number(resumedFrom) > 0 && Number(resumedFrom) <= 1_234_567, `resumed from ${resumedFrom}`);
      assert.match(gets[3]!, new RegExp(`\\r\\nrange: bytes=${resumedFrom}-`, "i"));
      // the raw client's requests close their connection; the one asked again through node:http does not
      assert.match(gets[2]!, /\r\nConnection: close/);
      assert.doesNotMatch(gets[3]!, /Connection: close/i);
      // the client remembers: the next blob from that host goes straight through node:http
      const again = await feed(server, dir, client);
      assert.equal(sha256(again), sha256(blob));
      const later = server.heads.filter((h) => h.startsWith("GET /v2/r/blobs/")).slice(4);
      assert.equal(later.length, 1);
      assert.doesNotMatch(later[0]!, /Connection: close/i);
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a server that ignores Range: the bytes already in are dropped from its full answer (fed and streamed)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "airpack-feed-"));
    let n = 0;
    const server = await scripted((socket, head) => {
      if (!head.startsWith("GET /v2/r/blobs/")) return void socket.end("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
      n++;
      const full = ok(blob);
      // odd requests are cut after ~1 MB; even ones (the resumes) send everything from byte 0
      if (n % 2 === 1) socket.end(full.subarray(0, full.length - blob.length + 1_000_003));
      else socket.end(full);
    });
    try {
      const fed = await feed(server, dir);
      assert.equal(sha256(fed), sha256(blob));
      const client = createRegistryClient({ backoffMs: 5 }, []);
      const parts: Buffer[] = [];
      for await (const chunk of resumableBlob(client, server.url("/").host, "r", digest, blob.length, "layer"))
        parts.push(chunk as Buffer);
      assert.equal(sha256(Buffer.concat(parts)), sha256(blob));
      const gets = server.heads.filter((h) => h.startsWith("GET /v2/r/blobs/"));
      assert.equal(gets.length, 4);
      assert.match(gets[1]!, /\r\nrange: bytes=\d+-/i);
      assert.match(gets[3]!, /\r\nrange: bytes=\d+-/i);
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("more bytes than the descriptor's size: a size mismatch, not retried", async () => {
    const dir = await mkdtemp(join(tmpdir(), "airpack-feed-"));
    const server = await scripted((socket, head) => {
      if (!head.startsWith("GET /v2/r/blobs/")) return void socket.end("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
      socket.end(ok(Buffer.concat([blob, Buffer.from("extra")])));
    });
    try {
      await assert.rejects(feed(server, dir), /layer: size mismatch \(expected 3145733 bytes/);
      assert.equal(server.heads.filter((h) => h.startsWith("GET /v2/r/blobs/")).length, 1);
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
