/**
 * HTTP_PROXY / HTTPS_PROXY / NO_PROXY against the real registry. The registry is reached under a
 * name that does not resolve (registry.test), so the pull can only work through the proxy: an
 * HTTP proxy written for the test that forwards absolute-URI requests and CONNECT tunnels to the
 * registry on 127.0.0.1, and records what it saw.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { after, before, describe, test, type TestContext } from "node:test";
import { pack, runAirpack } from "../helpers/cli";
import { peersUnavailable, skipOrFail } from "../helpers/peers/process";
import { startRegistry, type Registry } from "../helpers/peers/registry";
import { createSkopeo, type Skopeo } from "../helpers/peers/skopeo";
import { makeTempDir, removeDir } from "../helpers/peers/temp";
import { inspectBundle, pushFixture, registryDigest } from "../helpers/registry-fixtures";

const TIMEOUT = 120_000;
const NAME = "registry.test";

interface Proxy {
  url: string;
  seen: string[];
  stop(): Promise<void>;
}

/** A forward proxy that maps registry.test:PORT to 127.0.0.1:PORT. */
async function startProxy(): Promise<Proxy> {
  const seen: string[] = [];
  const target = (hostPort: string): { host: string; port: number } => {
    const [host, port] = hostPort.split(":");
    return { host: host === NAME ? "127.0.0.1" : host!, port: Number(port) };
  };
  const server = http.createServer((req, res) => {
    seen.push(`${req.method ?? ""} ${req.url ?? ""}`);
    const url = new URL(req.url ?? "");
    const { host, port } = target(url.host);
    const upstream = http.request(
      { host, port, method: req.method, path: url.pathname + url.search, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  server.on("connect", (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    seen.push(`CONNECT ${req.url ?? ""}`);
    const { host, port } = target(req.url ?? "");
    const upstream = net.connect(port, host, () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

let unavailable: string | null = null;
let reg: Registry | undefined;
let sk: Skopeo | undefined;
let proxy: Proxy | undefined;
let work = "";

describe("proxies from the environment", () => {
  before(async () => {
    unavailable = await peersUnavailable(["docker-registry", "skopeo"]);
    if (unavailable !== null) return;
    work = await makeTempDir("airpack-e2e-proxy");
    reg = await startRegistry();
    sk = await createSkopeo();
    proxy = await startProxy();
    await pushFixture(sk, "mixed", `${reg.host}/test/mixed:1`);
  });
  after(async () => {
    await proxy?.stop();
    await sk?.cleanup();
    await reg?.stop();
    if (work) await removeDir(work);
  });

  function ready(t: TestContext): { reg: Registry; sk: Skopeo; proxy: Proxy } | null {
    if (skipOrFail(t, unavailable)) return null;
    assert.ok(reg && sk && proxy);
    return { reg, sk, proxy };
  }

  test("pulls through HTTP_PROXY/HTTPS_PROXY", { timeout: TIMEOUT }, async (t) => {
    const p = ready(t);
    if (!p) return;
    const hostPort = `${NAME}:${p.reg.port}`;
    const bundle = path.join(work, "via-proxy.tar");
    const env = { HTTP_PROXY: p.proxy.url, HTTPS_PROXY: p.proxy.url, NO_PROXY: "" };
    await pack([`${hostPort}/test/mixed:1`], bundle, path.join(work, "cache"), ["--insecure-registry", hostPort], {
      env,
    });
    const [img] = await inspectBundle(bundle);
    assert.equal(img?.digest, await registryDigest(p.sk, `${p.reg.host}/test/mixed:1`));
    assert.ok(
      p.proxy.seen.some((s) => s.startsWith(`GET http://${hostPort}/v2/test/mixed/blobs/sha256:`)),
      `the proxy saw: ${p.proxy.seen.join(" | ")}`,
    );
  });

  test("NO_PROXY sends the registry's requests direct", { timeout: TIMEOUT }, async (t) => {
    const p = ready(t);
    if (!p) return;
    const before = p.proxy.seen.length;
    const hostPort = `${NAME}:${p.reg.port}`;
    const env = { HTTP_PROXY: p.proxy.url, HTTPS_PROXY: p.proxy.url, NO_PROXY: `.test,example.com` };
    const r = await runAirpack(
      [
        "pack",
        `${hostPort}/test/mixed:1`,
        "--insecure-registry",
        hostPort,
        "--cache",
        path.join(work, "c2"),
        "-o",
        path.join(work, "direct.tar"),
      ],
      { env: { ...env, AIRPACK_BACKOFF_MS: "50" } },
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr.trim(), new RegExp(`${NAME.replace(".", "\\.")}:${p.reg.port}: host not found`));
    assert.equal(p.proxy.seen.length, before, "nothing went through the proxy");
  });
});
