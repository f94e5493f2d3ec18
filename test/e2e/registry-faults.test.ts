/**
 * End-to-end: airpack pulling through a fault-injecting proxy in front of a
 * real registry (test/helpers/fault-proxy.ts): a connection cut mid-blob is
 * resumed with Range, 429/503 are retried, content that does not match its
 * digest is refused without entering the store; unreachable registries fail
 * in bounded time; a pack killed midway leaves a consistent store and the
 * rerun fetches only what is missing.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs/promises";
import * as net from "node:net";
import * as path from "node:path";
import { after, before, describe, test, type TestContext } from "node:test";

import { AIRPACK_BIN, REPO_ROOT, airpackOk, pack, runAirpack, type ImageManifest } from "../helpers/cli";
import {
  cutAfter,
  delayRequests,
  serviceUnavailable,
  startFaultProxy,
  tooManyRequests,
  type FaultProxy,
} from "../helpers/fault-proxy";
import { peersUnavailable, skipOrFail } from "../helpers/peers/process";
import { startRegistry, type Registry } from "../helpers/peers/registry";
import { createSkopeo, type Skopeo } from "../helpers/peers/skopeo";
import { freePort, makeTempDir, removeDir } from "../helpers/peers/temp";
import {
  MediaTypes,
  assertCleanFailure,
  assertStoreConsistent,
  blobGetsSince,
  countByDigest,
  inspectBundle,
  layoutManifest,
  layoutTag,
  pushFixture,
  registryDigest,
  settledRequests,
  storeBlobs,
} from "../helpers/registry-fixtures";

const TIMEOUT = 120_000;
/** Fast retries, so only a Retry-After header can make airpack wait long. */
const FAST_RETRY: NodeJS.ProcessEnv = { AIRPACK_BACKOFF_MS: "20" };

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

describe("registry behind a fault-injecting proxy", { timeout: 600_000 }, () => {
  let unavailable: string | null = null;
  let reg: Registry | null = null;
  let sk: Skopeo | null = null;
  let proxy: FaultProxy | null = null;
  let work = "";
  let counter = 0;
  let mixed = "";
  let mixedBytes: Buffer = Buffer.alloc(0);
  let mixedManifest: ImageManifest | null = null;

  before(async () => {
    unavailable = await peersUnavailable(["docker-registry", "skopeo"]);
    if (unavailable !== null) return;
    work = await makeTempDir("airpack-e2e-regfault");
    reg = await startRegistry();
    sk = await createSkopeo();
    await pushFixture(sk, "mixed", `${reg.host}/test/mixed:1`);
    mixed = await registryDigest(sk, `${reg.host}/test/mixed:1`);
    const fixture = await layoutManifest(await layoutTag("mixed"));
    assert.equal(fixture.desc.digest, mixed);
    mixedBytes = fixture.bytes;
    mixedManifest = fixture.manifest;
    proxy = await startFaultProxy("127.0.0.1", reg.port);
  });

  after(async () => {
    await proxy?.stop();
    await sk?.cleanup();
    await reg?.stop();
    if (work) await removeDir(work);
  });

  function ready(t: TestContext): { reg: Registry; proxy: FaultProxy; manifest: ImageManifest } | null {
    if (skipOrFail(t, unavailable)) return null;
    assert.ok(reg && proxy && mixedManifest);
    proxy.setFaults([]);
    proxy.clearRequests();
    return { reg, proxy, manifest: mixedManifest };
  }

  function scratch(): { cache: string; out: string } {
    const n = ++counter;
    return { cache: path.join(work, `cache-${n}`), out: path.join(work, `out-${n}.tar`) };
  }

  function largestLayer(m: ImageManifest): { digest: string; size: number } {
    const l = [...m.layers].sort((a, b) => b.size - a.size)[0];
    assert.ok(l);
    return l;
  }

  async function assertMixedPacked(out: string, name: string): Promise<void> {
    const [img] = await inspectBundle(out);
    assert.equal(img?.name, name);
    assert.equal(img?.digest, mixed);
    await airpackOk(["verify", out]);
  }

  test("a connection cut in the middle of a layer is resumed with Range", { timeout: TIMEOUT }, async (t) => {
    const p = ready(t);
    if (!p) return;
    const layer = largestLayer(p.manifest);
    const cutAt = Math.floor(layer.size / 2);
    const blobPath = `/v2/test/mixed/blobs/${layer.digest}`;
    p.proxy.setFaults([cutAfter(new RegExp(`^${escape(blobPath)}$`), cutAt, 1, "GET")]);
    const s = scratch();
    const ref = `${p.proxy.address}/test/mixed:1`;
    await pack([ref], s.out, s.cache, [], { env: FAST_RETRY });
    await assertMixedPacked(s.out, ref);
    const gets = p.proxy.requests().filter((r) => r.method === "GET" && r.path === blobPath);
    t.diagnostic(JSON.stringify(gets.map((g) => [g.range, g.status, g.bodyBytes, g.faults])));
    assert.equal(gets.length, 2, JSON.stringify(gets));
    assert.equal(gets[0]?.range, null);
    assert.equal(gets[0]?.bodyBytes, cutAt);
    assert.equal(gets[1]?.range, `bytes=${cutAt}-`);
    assert.equal(gets[1]?.status, 206);
    assert.equal(gets[1]?.bodyBytes, layer.size - cutAt);
    // Both went through airpack's raw body reader (src/registry/raw-http.ts), which closes each
    // connection; node:http would have asked for keep-alive.
    assert.deepEqual(
      gets.map((g) => g.headers.connection),
      ["close", "close"],
    );
    await assertStoreConsistent(s.cache);
  });

  test("429 with Retry-After: 1 is waited out", { timeout: TIMEOUT }, async (t) => {
    const p = ready(t);
    if (!p) return;
    p.proxy.setFaults([tooManyRequests(/^\/v2\/test\/mixed\/manifests\/1$/, 1, 1, "GET")]);
    const s = scratch();
    const ref = `${p.proxy.address}/test/mixed:1`;
    const started = Date.now();
    await pack([ref], s.out, s.cache, [], { env: FAST_RETRY });
    const elapsed = Date.now() - started;
    await assertMixedPacked(s.out, ref);
    const manifestGets = p.proxy.requests().filter((r) => r.path === "/v2/test/mixed/manifests/1");
    assert.deepEqual(
      manifestGets.map((r) => r.status),
      [429, 200],
    );
    const waited = (manifestGets[1]?.time ?? 0) - (manifestGets[0]?.time ?? 0);
    t.diagnostic(`waited ${waited} ms between the 429 and the retry; pack took ${elapsed} ms`);
    assert.ok(waited >= 950, `retried after ${waited} ms, before Retry-After: 1 had passed`);
    assert.ok(elapsed >= 950);
  });

  test("503 twice, then the registry answers", { timeout: TIMEOUT }, async (t) => {
    const p = ready(t);
    if (!p) return;
    const layer = largestLayer(p.manifest);
    const blobPath = `/v2/test/mixed/blobs/${layer.digest}`;
    p.proxy.setFaults([
      serviceUnavailable(/^\/v2\/test\/mixed\/manifests\/1$/, 2, "GET"),
      serviceUnavailable(new RegExp(`^${escape(blobPath)}$`), 2, "GET"),
    ]);
    const s = scratch();
    const ref = `${p.proxy.address}/test/mixed:1`;
    await pack([ref], s.out, s.cache, [], { env: FAST_RETRY });
    await assertMixedPacked(s.out, ref);
    const statuses = (pth: string): number[] =>
      p.proxy
        .requests()
        .filter((r) => r.path === pth && r.method === "GET")
        .map((r) => r.status);
    assert.deepEqual(statuses("/v2/test/mixed/manifests/1"), [503, 503, 200]);
    assert.deepEqual(statuses(blobPath), [503, 503, 200]);
  });

  test("a manifest whose bytes do not match Docker-Content-Digest: digest mismatch", async (t) => {
    const p = ready(t);
    if (!p) return;
    // the same manifest, re-serialised: valid JSON, other bytes
    const altered = JSON.stringify(JSON.parse(mixedBytes.toString("utf8")), null, 2);
    assert.notEqual(altered, mixedBytes.toString("utf8"));
    p.proxy.setFaults([
      {
        path: /^\/v2\/test\/mixed\/manifests\/1$/,
        method: "GET",
        action: {
          kind: "status",
          status: 200,
          headers: { "Content-Type": MediaTypes.ociManifest, "Docker-Content-Digest": mixed },
          body: altered,
        },
      },
    ]);
    const s = scratch();
    const r = await runAirpack(["pack", `${p.proxy.address}/test/mixed:1`, "-o", s.out, "--cache", s.cache], {
      env: FAST_RETRY,
    });
    const line = await assertCleanFailure(r, { message: /digest mismatch/i, cache: s.cache, output: s.out });
    t.diagnostic(line);
    assert.deepEqual(await storeBlobs(s.cache), [], "something entered the store");
  });

  test("a digest-pinned manifest with other bytes (no digest header): digest mismatch", async (t) => {
    const p = ready(t);
    if (!p) return;
    const altered = JSON.stringify(JSON.parse(mixedBytes.toString("utf8")), null, 1);
    p.proxy.setFaults([
      {
        path: new RegExp(`^/v2/test/mixed/manifests/${escape(mixed)}$`),
        method: "GET",
        action: { kind: "status", status: 200, headers: { "Content-Type": MediaTypes.ociManifest }, body: altered },
      },
    ]);
    const s = scratch();
    const r = await runAirpack(["pack", `${p.proxy.address}/test/mixed@${mixed}`, "-o", s.out, "--cache", s.cache], {
      env: FAST_RETRY,
    });
    const line = await assertCleanFailure(r, { message: /digest mismatch/i, cache: s.cache, output: s.out });
    t.diagnostic(line);
    assert.deepEqual(await storeBlobs(s.cache), [], "something entered the store");
  });

  test("a layer whose bytes do not match its digest: error names it, nothing stored", async (t) => {
    const p = ready(t);
    if (!p) return;
    const layer = largestLayer(p.manifest);
    p.proxy.setFaults([
      {
        path: new RegExp(`^/v2/test/mixed/blobs/${escape(layer.digest)}$`),
        method: "GET",
        action: {
          kind: "status",
          status: 200,
          headers: { "Content-Type": "application/octet-stream" },
          body: "x".repeat(layer.size),
        },
      },
    ]);
    const s = scratch();
    const r = await runAirpack(["pack", `${p.proxy.address}/test/mixed:1`, "-o", s.out, "--cache", s.cache], {
      env: FAST_RETRY,
    });
    const line = await assertCleanFailure(r, { message: /mismatch|does not match/i, cache: s.cache, output: s.out });
    t.diagnostic(line);
    assert.ok(line.includes(layer.digest.slice(0, "sha256:".length + 12)), `${line} does not name ${layer.digest}`);
    const stored = await storeBlobs(s.cache);
    assert.ok(!stored.includes(layer.digest), "the bad layer is in the store");
    const ingest = path.join(s.cache, "ingest");
    const leftovers = await fs.readdir(ingest).catch(() => [] as string[]);
    assert.deepEqual(leftovers, [], "partial data of the bad layer left in the store");
  });

  test("a pack killed midway; the rerun fetches only the missing blobs", { timeout: TIMEOUT }, async (t) => {
    const p = ready(t);
    if (!p) return;
    const layers = new Set(p.manifest.layers.map((l) => l.digest));
    p.proxy.setFaults([delayRequests(/\/blobs\/sha256:/, 600, Infinity, "GET")]);
    const s = scratch();
    const ref = `${p.proxy.address}/test/mixed:1`;
    const mark = (await settledRequests(p.reg)).length;
    const child = spawn(process.execPath, [AIRPACK_BIN, "pack", ref, "-o", s.out, "--cache", s.cache, "-j", "1"], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...FAST_RETRY },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
    const exited = new Promise<void>((resolve) => child.on("close", () => resolve()));
    const blobDir = path.join(s.cache, "blobs", "sha256");
    const deadline = Date.now() + 30_000;
    try {
      for (;;) {
        const names = await fs.readdir(blobDir).catch(() => [] as string[]);
        if (names.some((n) => layers.has(`sha256:${n}`))) break;
        assert.ok(child.exitCode === null, `airpack ended before the first layer landed: ${stderr}`);
        assert.ok(Date.now() < deadline, "no layer landed in 30 s");
        await sleep(10);
      }
    } finally {
      child.kill("SIGKILL");
      await exited;
    }
    const atKill = await assertStoreConsistent(s.cache);
    const layersAtKill = atKill.filter((d) => layers.has(d));
    t.diagnostic(`killed with ${atKill.length} blobs stored, ${layersAtKill.length} of ${layers.size} layers`);
    assert.ok(layersAtKill.length < layers.size, "the pack was not killed midway");
    await assert.rejects(fs.access(s.out), "a killed pack left its output file");

    p.proxy.setFaults([]);
    await pack([ref], s.out, s.cache, [], { env: FAST_RETRY });
    await assertMixedPacked(s.out, ref);
    await settledRequests(p.reg);
    const counts = countByDigest(blobGetsSince(p.reg, mark));
    t.diagnostic(JSON.stringify([...counts].map(([d, n]) => [d.slice(7, 19), n])));
    // Manifests come from /manifests/ (re-resolved by tag every time); layers and the config are blobs.
    const blobsAtKill = atKill.filter((d) => layers.has(d) || d === p.manifest.config.digest);
    for (const d of blobsAtKill) assert.equal(counts.get(d) ?? 0, 1, `${d} was in the store but fetched again`);
    const twice = [...counts].filter(([, n]) => n > 1);
    assert.ok(twice.length <= 1, `fetched more than once: ${JSON.stringify(twice)}`);
    for (const [d, n] of twice) assert.ok(n === 2 && !blobsAtKill.includes(d));
    for (const l of layers) assert.ok((counts.get(l) ?? 0) >= 1);
    const final = await assertStoreConsistent(s.cache);
    for (const l of layers) assert.ok(final.includes(l));
  });
});

describe("unreachable registries fail in bounded time", { timeout: 120_000 }, () => {
  const env: NodeJS.ProcessEnv = { AIRPACK_CONNECT_TIMEOUT_MS: "1000", AIRPACK_BACKOFF_MS: "100" };
  let work = "";

  before(async () => {
    work = await makeTempDir("airpack-e2e-unreachable");
  });

  after(async () => {
    if (work) await removeDir(work);
  });

  test("a closed port on 127.0.0.1", async (t) => {
    const port = await freePort();
    const cache = path.join(work, "cache-closed");
    const out = path.join(work, "closed.tar");
    const started = Date.now();
    const r = await runAirpack(["pack", `127.0.0.1:${port}/test/mixed:1`, "-o", out, "--cache", cache], {
      env,
      timeoutMs: 60_000,
    });
    const elapsed = Date.now() - started;
    const line = await assertCleanFailure(r, { message: /refused|unreachable|connect/i, cache, output: out });
    t.diagnostic(`${elapsed} ms: ${line}`);
    assert.ok(line.includes(`127.0.0.1:${port}`), line);
    assert.ok(elapsed < 30_000, `took ${elapsed} ms`);
  });

  test("a host that accepts connections and never answers", async (t) => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => {
      sockets.add(socket);
      socket.on("error", () => undefined);
      socket.on("close", () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", () => resolve()));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const cache = path.join(work, "cache-silent");
      const out = path.join(work, "silent.tar");
      const started = Date.now();
      const r = await runAirpack(["pack", `127.0.0.1:${port}/test/mixed:1`, "-o", out, "--cache", cache], {
        env,
        timeoutMs: 60_000,
      });
      const elapsed = Date.now() - started;
      const line = await assertCleanFailure(r, { message: /timed out|timeout|no data/i, cache, output: out });
      t.diagnostic(`${elapsed} ms: ${line}`);
      assert.ok(line.includes(`127.0.0.1:${port}`), line);
      assert.ok(elapsed < 30_000, `took ${elapsed} ms`);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  test("a non-routable address (10.255.255.1)", async (t) => {
    // Some sandboxes route all egress through a transparent proxy that answers for any address;
    // then the connection succeeds and the failure is whatever that proxy causes (a TLS error).
    const intercepted = await new Promise<boolean>((resolve) => {
      const probe = net.connect({ host: "10.255.255.1", port: 5000, timeout: 1500 });
      const done = (connected: boolean): void => {
        probe.destroy();
        resolve(connected);
      };
      probe.once("connect", () => done(true));
      probe.once("timeout", () => done(false));
      probe.once("error", () => done(false));
    });
    const cache = path.join(work, "cache-blackhole");
    const out = path.join(work, "blackhole.tar");
    const started = Date.now();
    const r = await runAirpack(["pack", "10.255.255.1:5000/test/mixed:1", "-o", out, "--cache", cache], {
      env,
      timeoutMs: 60_000,
    });
    const elapsed = Date.now() - started;
    const line = await assertCleanFailure(r, {
      message: intercepted ? /./ : /timed out|timeout|unreachable|connect/i,
      cache,
      output: out,
    });
    t.diagnostic(`${intercepted ? "egress intercepted here; " : ""}${elapsed} ms: ${line}`);
    assert.ok(line.includes("10.255.255.1"), line);
    assert.ok(elapsed < 30_000, `took ${elapsed} ms`);
  });
});
