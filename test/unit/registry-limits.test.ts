/**
 * The registry client's limits (src/registry/http.ts): the minimum-throughput rule counts only the
 * time the server makes airpack wait (a slow reader or a busy sink is not the server's slowness),
 * the small-document deadline, and the scheme rule. Servers are plain TCP on 127.0.0.1, scripted.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import * as net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { NetworkError, request, schemeRefusal, type HttpOptions } from "../../src/registry/http";
import { rawGet } from "../../src/registry/raw-http";
import type { BlockSink } from "../../src/util/file-writer";

const sha256 = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

/** 1 MiB/s over 300 ms windows: a reader at a few hundred KiB/s would fail it if it counted. */
const LIMITS: HttpOptions = {
  insecureHosts: [],
  connectTimeoutMs: 5000,
  idleTimeoutMs: 5000,
  minSpeed: 1024 * 1024,
  speedTimeMs: 300,
};

type Answer = (socket: net.Socket) => void;

async function serve(answer: Answer): Promise<{ url: (p: string) => URL; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    let head = "";
    const onData = (c: Buffer): void => {
      head += c.toString("latin1");
      if (!head.includes("\r\n\r\n")) return;
      socket.off("data", onData);
      answer(socket);
    };
    socket.on("data", onData);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: (p) => new URL(`http://127.0.0.1:${port}${p}`),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const head = (n: number): string => `HTTP/1.1 200 OK\r\nContent-Length: ${n}\r\nConnection: close\r\n\r\n`;

/** Everything at once. */
const fast =
  (body: Buffer): Answer =>
  (socket) =>
    socket.end(Buffer.concat([Buffer.from(head(body.length)), body]));

/** The head, then one byte every 20 ms. */
const trickle =
  (n: number): Answer =>
  (socket) => {
    socket.write(head(n));
    let left = n;
    const timer = setInterval(() => {
      if (socket.destroyed || left-- <= 0) clearInterval(timer);
      else socket.write("x");
    }, 20);
  };

/** Reads a stream 64 KiB per 200 ms (about 320 KiB/s, under the 1 MiB/s minimum). */
async function slowRead(body: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) {
    chunks.push(c as Buffer);
    await sleep(((c as Buffer).length / 65536) * 200);
  }
  return Buffer.concat(chunks);
}

/** A sink whose room comes back 200 ms after each 64 KiB block, like a very busy disk. */
class BusySink implements BlockSink {
  private readonly chunks: Buffer[] = [];
  private readonly block = Buffer.alloc(64 * 1024);
  private fill = 0;
  private busy = false;

  space(): Buffer | undefined {
    return this.busy ? undefined : this.block.subarray(this.fill);
  }

  filled(n: number): void {
    this.fill += n;
    if (this.fill === this.block.length) {
      this.chunks.push(Buffer.from(this.block));
      this.fill = 0;
      this.busy = true;
      setTimeout(() => (this.busy = false), 200);
    }
  }

  async whenSpace(): Promise<void> {
    while (this.busy) await sleep(5);
  }

  bytes(): Buffer {
    return Buffer.concat([...this.chunks, this.block.subarray(0, this.fill)]);
  }
}

describe("the minimum-throughput rule", { timeout: 30_000 }, () => {
  const data = randomBytes(1024 * 1024);

  it("node:http: a fast server and a slow reader complete (airpack's own pace is not counted)", async () => {
    const server = await serve(fast(data));
    try {
      const res = await request(server.url("/v2/r/blobs/x"), { stream: true }, LIMITS);
      assert.equal(sha256(await slowRead(res.body)), sha256(data));
    } finally {
      await server.close();
    }
  });

  it("node:http: a trickling server is dropped, naming host and path (retryable)", async () => {
    const server = await serve(trickle(data.length));
    try {
      const res = await request(server.url("/v2/r/blobs/x"), { stream: true }, LIMITS);
      await assert.rejects(slowRead(res.body), (err: Error) => {
        assert.ok(err instanceof NetworkError && err.retryable, String(err));
        assert.match(
          err.message,
          /^127\.0\.0\.1:\d+: \/v2\/r\/blobs\/x: slower than 1048576 B\/s for 0\.[3-9] s \(\d+ bytes\)/,
        );
        return true;
      });
    } finally {
      await server.close();
    }
  });

  it("raw reader: a slow stream reader and a busy sink complete", async () => {
    const server = await serve(fast(data));
    try {
      const streamed = await rawGet(server.url("/a"), {}, LIMITS);
      assert.equal(sha256(await slowRead(streamed.body)), sha256(data));
      const poured = await rawGet(server.url("/b"), {}, LIMITS);
      const sink = new BusySink();
      await poured.body.pourInto(sink);
      assert.equal(sha256(sink.bytes()), sha256(data));
    } finally {
      await server.close();
    }
  });

  it("raw reader: a trickling server is dropped", async () => {
    const server = await serve(trickle(data.length));
    try {
      const res = await rawGet(server.url("/v2/r/blobs/y"), {}, LIMITS);
      await assert.rejects(res.body.pourInto(new BusySink()), /\/v2\/r\/blobs\/y: slower than 1048576 B\/s/);
    } finally {
      await server.close();
    }
  });
});

describe("the small-document deadline", { timeout: 30_000 }, () => {
  const opts: HttpOptions = { ...LIMITS, minSpeed: 0, docTimeoutMs: 300 };

  it("bounds a document answer as a whole, not retryable; a blob body has none", async () => {
    const server = await serve(trickle(40));
    try {
      const started = Date.now();
      const res = await request(server.url("/v2/r/manifests/1"), {}, opts);
      await assert.rejects(slowRead(res.body), (err: Error) => {
        assert.ok(err instanceof NetworkError && !err.retryable, String(err));
        assert.match(err.message, /GET \/v2\/r\/manifests\/1: not complete after 0\.3 s/);
        return true;
      });
      assert.ok(Date.now() - started < 2000);
      const blob = await request(server.url("/v2/r/blobs/x"), { stream: true }, opts);
      assert.equal((await slowRead(blob.body)).length, 40); // 40 bytes at 50 B/s: 0.8 s, past the deadline
    } finally {
      await server.close();
    }
  });
});

describe("the scheme rule", () => {
  const opts: HttpOptions = { insecureHosts: ["insecure.example:5000"], connectTimeoutMs: 1, idleTimeoutMs: 1 };
  const cases: [string, RegExp | undefined][] = [
    ["https://registry.example/v2/", undefined],
    ["http://127.0.0.1:5000/v2/", undefined],
    ["http://localhost/v2/", undefined],
    ["http://[::1]:5000/v2/", undefined],
    ["http://insecure.example:5000/v2/", undefined],
    ["http://registry.example/v2/", /plain HTTP .*--insecure-registry registry\.example/],
    ["http://insecure.example:5001/v2/", /plain HTTP/],
    ["ftp://127.0.0.1/x", /not an http\(s\) URL/],
    ["file:///etc/passwd", /not an http\(s\) URL/],
    ["gopher://registry.example/", /not an http\(s\) URL/],
  ];
  for (const [url, refused] of cases) {
    it(`${url}: ${refused ? "refused" : "allowed"}`, () => {
      const why = schemeRefusal(new URL(url), opts);
      if (refused) assert.match(why ?? "", refused);
      else assert.equal(why, undefined);
    });
  }

  it("request() refuses another scheme at once, naming the URL", async () => {
    await assert.rejects(request(new URL("file:///etc/passwd"), {}, opts), (err: Error) => {
      assert.ok(err instanceof NetworkError && !err.retryable);
      assert.match(err.message, /^refusing file:\/\/\/etc\/passwd \(not an http\(s\) URL\)$/);
      return true;
    });
  });
});
