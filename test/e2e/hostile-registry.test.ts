/**
 * End-to-end: `airpack pack` against a registry that fights back (test/helpers/hostile-registry.ts,
 * a test double on loopback: no real registry trickles, redirects to ftp:// or sends malformed
 * heads). Each behaviour either fails at once or in bounded time, with exit 1 and one stderr line
 * that names the registry, URL or layer (no stack trace), or succeeds where it is legal; every run
 * is timed and its peak RSS measured (/usr/bin/time -f %M). Protocol errors are asked once
 * (counted on the server side); SIGTERM during a trickled manifest ends the process at once.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { after, before, describe, test, type TestContext } from "node:test";

import { AIRPACK_BIN, REPO_ROOT } from "../helpers/cli";
import {
  startCountingListener,
  startHostileRegistry,
  type HostileRegistry,
  type HostileRequest,
} from "../helpers/hostile-registry";
import { missingTools } from "../helpers/peers/process";
import { makeSelfSignedCert, type SelfSignedCert } from "../helpers/peers/registry";
import { makeTempDir, removeDir } from "../helpers/peers/temp";
import { assertCleanFailure, inspectBundle } from "../helpers/registry-fixtures";

/** Every run must end within this (the throughput rule is tuned down by ENV below). */
const TIME_BOUND_MS = 30_000;
/** Peak RSS of every run. */
const RSS_BOUND_MB = 150;
/** Fast back-off; the throughput rule at 1 KiB/s over 1 s windows; small documents get 4 s. */
const ENV: NodeJS.ProcessEnv = {
  AIRPACK_BACKOFF_MS: "20",
  AIRPACK_MIN_SPEED: "1024",
  AIRPACK_SPEED_TIME_MS: "1000",
  AIRPACK_DOC_TIMEOUT_MS: "4000",
  AIRPACK_CONNECT_TIMEOUT_MS: "5000",
};

interface Measured {
  code: number;
  stdout: Buffer;
  stderr: string;
  ms: number;
  rssMb: number;
}

function short(digest: string): string {
  return digest.slice(0, "sha256:".length + 12);
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Runs a command in a process group of its own and kills the whole group (airpack under
 * /usr/bin/time too) if it runs past the time bound: then the result says so instead of hanging.
 */
function runGroup(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  input?: string,
): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd: REPO_ROOT, env, detached: true, stdio: "pipe" });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    child.stdin.on("error", () => undefined);
    child.stdin.end(input ?? "");
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      process.kill(-child.pid!, "SIGKILL");
    }, TIME_BOUND_MS + 15_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString("utf8");
      if (timedOut) reject(new Error(`still running after ${TIME_BOUND_MS + 15_000} ms (killed); stderr: ${stderr}`));
      else resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr });
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

describe("a hostile registry (test double on loopback)", { timeout: 900_000 }, () => {
  let work = "";
  let home = "";
  let cert: SelfSignedCert | null = null;
  let plain: HostileRegistry | null = null;
  let secure: HostileRegistry | null = null;
  let counter = 0;
  let noTime: string | null = null;

  before(async () => {
    work = await makeTempDir("airpack-e2e-hostile");
    home = path.join(work, "home");
    await fs.mkdir(home);
    plain = await startHostileRegistry();
    const missing = await missingTools(["openssl"]);
    if (missing.length === 0) {
      cert = await makeSelfSignedCert();
      secure = await startHostileRegistry({ tls: cert, image: plain.image });
    }
    noTime = (await fs.access("/usr/bin/time").then(
      () => true,
      () => false,
    ))
      ? null
      : "no /usr/bin/time";
  });

  after(async () => {
    await plain?.stop();
    await secure?.stop();
    await cert?.cleanup();
    if (work) await removeDir(work);
  });

  function reg(t: TestContext, which: "plain" | "secure" = "plain"): HostileRegistry | null {
    if (noTime) {
      t.skip(noTime);
      return null;
    }
    const r = which === "plain" ? plain : secure;
    if (!r) {
      t.skip("openssl is missing (no certificate for the HTTPS double)");
      return null;
    }
    for (const x of [plain, secure]) {
      x?.setRules([]);
      x?.setAuth(undefined);
      x?.clearRequests();
    }
    return r;
  }

  function scratch(): { cache: string; out: string } {
    const n = ++counter;
    return { cache: path.join(work, `cache-${n}`), out: path.join(work, `out-${n}.tar`) };
  }

  /** `airpack pack REF -o OUT --cache CACHE …` under /usr/bin/time, in a home without credentials. */
  async function pack(
    r: HostileRegistry,
    s: { cache: string; out: string },
    extra: readonly string[] = [],
    opts: { env?: NodeJS.ProcessEnv; input?: string } = {},
  ): Promise<Measured> {
    const rssFile = path.join(work, `rss-${++counter}`);
    const args = [
      "pack",
      r.ref,
      "-o",
      s.out,
      "--cache",
      s.cache,
      ...(r.url.startsWith("https") && cert ? ["--ca-file", cert.certFile] : []),
      ...extra,
    ];
    const started = Date.now();
    const res = await runGroup(
      ["/usr/bin/time", "-f", "%M", "-o", rssFile, process.execPath, AIRPACK_BIN, ...args],
      {
        ...process.env,
        HOME: home,
        DOCKER_CONFIG: path.join(home, "docker"),
        REGISTRY_AUTH_FILE: path.join(home, "auth.json"),
        XDG_RUNTIME_DIR: home,
        XDG_CONFIG_HOME: home,
        ...ENV,
        ...(opts.env ?? {}),
      },
      opts.input,
    );
    const ms = Date.now() - started;
    const lines = (await fs.readFile(rssFile, "utf8")).trim().split("\n");
    const rssMb = Number(lines[lines.length - 1]) / 1024;
    return { code: res.code, stdout: res.stdout, stderr: res.stderr, ms, rssMb };
  }

  function bounded(t: TestContext, m: Measured): void {
    t.diagnostic(
      `exit ${m.code} after ${m.ms} ms, peak RSS ${m.rssMb.toFixed(1)} MB: ${m.stderr.trim().split("\n")[0] ?? ""}`,
    );
    assert.ok(m.ms < TIME_BOUND_MS, `took ${m.ms} ms`);
    assert.ok(m.rssMb > 0 && m.rssMb < RSS_BOUND_MB, `peak RSS ${m.rssMb} MB`);
    assert.ok(!/\n\s+at /.test(m.stderr), `a stack trace on stderr:\n${m.stderr}`);
  }

  async function fails(
    t: TestContext,
    m: Measured,
    s: { cache: string; out: string },
    message: RegExp,
    names: readonly string[],
  ): Promise<string> {
    bounded(t, m);
    const line = await assertCleanFailure(
      { code: m.code, stdout: m.stdout, stderr: m.stderr },
      {
        message,
        cache: s.cache,
        output: s.out,
      },
    );
    for (const n of names) assert.ok(line.includes(n), `"${line}" does not name ${n}`);
    return line;
  }

  async function packed(t: TestContext, m: Measured, r: HostileRegistry, s: { out: string }): Promise<void> {
    bounded(t, m);
    assert.equal(m.code, 0, m.stderr);
    const [img] = await inspectBundle(s.out);
    assert.equal(img?.digest, r.image.manifestDigest);
    assert.deepEqual(
      img?.platforms[0]?.layers.map((l) => l.digest),
      [r.image.layerDigest],
    );
  }

  function asked(r: HostileRegistry, pathRe: RegExp, method = "GET"): HostileRequest[] {
    return r.requests().filter((q) => q.method === method && pathRe.test(q.path));
  }

  const blobPath = (r: HostileRegistry): RegExp =>
    new RegExp(`^/v2/${escape(r.image.repository)}/blobs/${escape(r.image.layerDigest)}$`);
  const manifestPath = (r: HostileRegistry): RegExp => new RegExp(`^/v2/${escape(r.image.repository)}/manifests/1$`);

  // ------------------------------------------------------------------ slow bodies

  describe("slow bodies", () => {
    test("a layer trickled at 10 B/s is dropped by the throughput rule; the error names the layer", async (t) => {
      const r = reg(t);
      if (!r) return;
      r.setRules([{ path: blobPath(r), behaviour: { kind: "trickle", from: "body", bytesPerTick: 1, tickMs: 100 } }]);
      const s = scratch();
      const m = await pack(r, s);
      const line = await fails(t, m, s, /slower than 1024 B\/s/, [short(r.image.layerDigest)]);
      const gets = asked(r, blobPath(r));
      t.diagnostic(`${gets.length} GETs of the layer: ${line}`);
      assert.ok(gets.length >= 1 && gets.length <= 5, `${gets.length} GETs`);
    });

    test("a chunked layer trickled (read through node:http) is dropped the same way", async (t) => {
      const r = reg(t);
      if (!r) return;
      r.setRules([
        {
          path: blobPath(r),
          behaviour: { kind: "trickle", from: "body", chunked: true, bytesPerTick: 5, tickMs: 100 },
        },
      ]);
      const s = scratch();
      const m = await pack(r, s);
      await fails(t, m, s, /slower than 1024 B\/s/, [short(r.image.layerDigest)]);
    });

    test("a layer whose response head is trickled is dropped too", async (t) => {
      const r = reg(t);
      if (!r) return;
      r.setRules([{ path: blobPath(r), behaviour: { kind: "trickle", from: "head", bytesPerTick: 1, tickMs: 50 } }]);
      const s = scratch();
      const m = await pack(r, s);
      await fails(t, m, s, /slower than 1024 B\/s/, [short(r.image.layerDigest)]);
      // Five attempts in all: client.send retries an unanswered request, the download does not again.
      assert.equal(asked(r, blobPath(r)).length, 5);
    });

    test("a manifest trickled at 10 B/s is dropped by the throughput rule", async (t) => {
      const r = reg(t);
      if (!r) return;
      r.setRules([{ path: manifestPath(r), behaviour: { kind: "trickle", bytesPerTick: 1, tickMs: 100 } }]);
      const s = scratch();
      const m = await pack(r, s);
      await fails(t, m, s, /slower than 1024 B\/s/, [r.host]);
    });

    test("a manifest fast enough for the throughput rule still has its deadline; asked once", async (t) => {
      const r = reg(t);
      if (!r) return;
      r.setRules([{ path: manifestPath(r), behaviour: { kind: "trickle", bytesPerTick: 1, tickMs: 20 } }]);
      const s = scratch();
      const m = await pack(r, s, [], { env: { AIRPACK_MIN_SPEED: "0", AIRPACK_DOC_TIMEOUT_MS: "2000" } });
      await fails(t, m, s, /not complete after 2 s/, [r.host, "manifests/1"]);
      assert.equal(asked(r, manifestPath(r)).length, 1);
    });

    test("a layer paced at 20 kB/s (above the minimum) is taken", async (t) => {
      const r = reg(t);
      if (!r) return;
      r.setRules([{ path: blobPath(r), behaviour: { kind: "trickle", from: "body", bytesPerTick: 1000, tickMs: 50 } }]);
      const s = scratch();
      const m = await pack(r, s);
      await packed(t, m, r, s);
      assert.equal(asked(r, blobPath(r)).length, 1);
    });

    test("SIGTERM during a trickled manifest ends the process within 2 s (exit 130)", async (t) => {
      const r = reg(t);
      if (!r) return;
      r.setRules([{ path: manifestPath(r), behaviour: { kind: "trickle", bytesPerTick: 1, tickMs: 200 } }]);
      const s = scratch();
      const child = spawn(process.execPath, [AIRPACK_BIN, "pack", r.ref, "-o", s.out, "--cache", s.cache], {
        cwd: REPO_ROOT,
        // The throughput rule and the deadline off: only the signal can end it.
        env: { ...process.env, HOME: home, AIRPACK_MIN_SPEED: "0", AIRPACK_DOC_TIMEOUT_MS: "600000" },
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
      const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
      const deadline = Date.now() + 20_000;
      for (;;) {
        const req = asked(r, manifestPath(r))[0];
        if (req && req.written > 10) break;
        assert.ok(child.exitCode === null, `airpack ended early: ${stderr}`);
        assert.ok(Date.now() < deadline, "the manifest request never started");
        await sleep(20);
      }
      const signalled = Date.now();
      child.kill("SIGTERM");
      const stuck = setTimeout(() => child.kill("SIGKILL"), 10_000);
      const code = await exited;
      clearTimeout(stuck);
      const took = Date.now() - signalled;
      const req = asked(r, manifestPath(r))[0];
      const hungUp = (req?.closedAt ?? Infinity) - signalled;
      t.diagnostic(`exit ${code} ${took} ms after SIGTERM; the manifest connection closed after ${hungUp} ms`);
      assert.equal(code, 130, stderr);
      assert.ok(took < 2000, `took ${took} ms`);
      // The request itself is tied to the signal: it stops at once, not when the grace period ends the process.
      assert.ok(hungUp < 500, `the manifest request went on for ${hungUp} ms after SIGTERM`);
      await assert.rejects(fs.access(s.out));
    });
  });

  // ------------------------------------------------------------------ schemes

  describe("scheme downgrades", () => {
    test("HTTPS: a layer redirected to ftp:// is refused at once, naming the URL", async (t) => {
      const r = reg(t, "secure");
      if (!r) return;
      const ftp = await startCountingListener();
      try {
        const target = `ftp://127.0.0.1:${ftp.port}/layer`;
        r.setRules([{ path: blobPath(r), behaviour: { kind: "redirect", location: target } }]);
        const s = scratch();
        const m = await pack(r, s);
        await fails(t, m, s, /ftp:/, [target]);
        assert.equal(asked(r, blobPath(r)).length, 1);
        assert.equal(ftp.connections(), 0, "airpack connected to the ftp:// target");
      } finally {
        await ftp.stop();
      }
    });

    test("HTTPS: a tagged manifest redirected to ftp:// is refused at once", async (t) => {
      const r = reg(t, "secure");
      if (!r) return;
      const ftp = await startCountingListener();
      try {
        const target = `ftp://127.0.0.1:${ftp.port}/manifest`;
        r.setRules([{ path: manifestPath(r), behaviour: { kind: "redirect", location: target } }]);
        const s = scratch();
        const m = await pack(r, s);
        await fails(t, m, s, /ftp:/, [target]);
        assert.equal(asked(r, manifestPath(r)).length, 1);
        assert.equal(ftp.connections(), 0, "airpack connected to the ftp:// target");
      } finally {
        await ftp.stop();
      }
    });

    test("a layer redirected to file:///etc/passwd is refused at once, naming the URL", async (t) => {
      const r = reg(t);
      if (!r) return;
      r.setRules([{ path: blobPath(r), behaviour: { kind: "redirect", location: "file:///etc/passwd" } }]);
      const s = scratch();
      const m = await pack(r, s);
      await fails(t, m, s, /file:\/\/\/etc\/passwd/, []);
      assert.equal(asked(r, blobPath(r)).length, 1);
    });

    test("a redirect to plain HTTP on a host not allowed plain HTTP is refused at once", async (t) => {
      const r = reg(t);
      if (!r) return;
      const target = `http://192.0.2.1:5000/v2/${r.image.repository}/blobs/${r.image.layerDigest}`;
      r.setRules([{ path: blobPath(r), behaviour: { kind: "redirect", location: target } }]);
      const s = scratch();
      const m = await pack(r, s);
      await fails(t, m, s, /plain HTTP/, ["192.0.2.1:5000", "--insecure-registry"]);
      assert.equal(asked(r, blobPath(r)).length, 1);
    });

    test("HTTPS: a layer redirected to plain HTTP on loopback is legal and taken", async (t) => {
      const r = reg(t, "secure");
      if (!r || !plain) return;
      r.setRules([
        {
          path: blobPath(r),
          behaviour: {
            kind: "redirect",
            location: `${plain.url}/v2/${r.image.repository}/blobs/${r.image.layerDigest}`,
          },
        },
      ]);
      const s = scratch();
      const m = await pack(r, s);
      await packed(t, m, r, s);
      assert.equal(asked(plain, blobPath(plain)).length, 1);
    });

    test("a redirect to a Location that is not a URL names it", async (t) => {
      const r = reg(t);
      if (!r) return;
      r.setRules([{ path: blobPath(r), behaviour: { kind: "redirect", location: "http://[::1" } }]);
      const s = scratch();
      const m = await pack(r, s);
      await fails(t, m, s, /not a URL/, ['"http://[::1"', r.host]);
      assert.equal(asked(r, blobPath(r)).length, 1);
    });
  });

  // ------------------------------------------------------------------ token realms

  describe("token realms", () => {
    test("a realm on ftp:// is refused at once, naming it; nothing connects there", async (t) => {
      const r = reg(t);
      if (!r) return;
      const ftp = await startCountingListener();
      try {
        const realm = `ftp://127.0.0.1:${ftp.port}/token`;
        r.setAuth({ realm });
        const s = scratch();
        const m = await pack(r, s);
        await fails(t, m, s, /realm/, [realm, r.host]);
        assert.equal(ftp.connections(), 0, "airpack connected to the ftp:// realm");
      } finally {
        await ftp.stop();
      }
    });

    test("a realm on plain HTTP off loopback is refused at once", async (t) => {
      const r = reg(t);
      if (!r) return;
      r.setAuth({ realm: "http://192.0.2.1:8080/token" });
      const s = scratch();
      const m = await pack(r, s);
      await fails(t, m, s, /realm/, ["http://192.0.2.1:8080", r.host]);
      assert.equal(asked(r, manifestPath(r)).length, 1);
    });

    test("a realm on another host gets the Basic credentials (documented); --debug names it", async (t) => {
      const r = reg(t, "secure");
      if (!r) return;
      const realmHost = `localhost:${r.port}`;
      r.setAuth({ realm: `https://${realmHost}/token` });
      const s = scratch();
      const m = await pack(r, s, ["--debug", "--username", "alice", "--password-stdin"], { input: "s3cret-pw\n" });
      bounded(t, m);
      assert.equal(m.code, 0, m.stderr);
      assert.ok(!m.stderr.includes("s3cret-pw"), "the password on stderr");
      const debug = m.stderr.split("\n").filter((l) => /realm/.test(l));
      t.diagnostic(debug.join(" | "));
      assert.ok(
        debug.some((l) => l.includes(realmHost) && l.includes(r.host)),
        `no --debug line names the realm host:\n${m.stderr}`,
      );
      const tokens = r.requests().filter((q) => q.path.startsWith("/token"));
      assert.ok(tokens.length >= 1);
      for (const q of tokens) {
        assert.equal(q.headers.host, realmHost);
        assert.equal(q.headers.authorization, `Basic ${Buffer.from("alice:s3cret-pw").toString("base64")}`);
      }
      const [img] = await inspectBundle(s.out);
      assert.equal(img?.digest, r.image.manifestDigest);
    });
  });

  // ------------------------------------------------------------------ protocol errors

  describe("protocol errors fail at once", () => {
    const teAndCl = (body: string): string =>
      `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nContent-Length: ${body.length}\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    const bareCr = (body: string): string =>
      `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Evil: a\rb\r\nContent-Length: ${body.length}\r\n\r\n${body}`;

    for (const [what, make] of [
      ["Transfer-Encoding with Content-Length", teAndCl],
      ["a bare CR in a header", bareCr],
    ] as const) {
      test(`a manifest answer with ${what}: asked once, the error names the registry`, async (t) => {
        const r = reg(t);
        if (!r) return;
        r.setRules([
          { path: manifestPath(r), behaviour: { kind: "raw", response: make(r.image.manifest.toString("latin1")) } },
        ]);
        const s = scratch();
        const m = await pack(r, s);
        await fails(t, m, s, /malformed|invalid/i, [r.host]);
        assert.equal(asked(r, manifestPath(r)).length, 1);
      });

      test(`a layer answer with ${what}: asked once, the error names the layer`, async (t) => {
        const r = reg(t);
        if (!r) return;
        r.setRules([
          { path: blobPath(r), behaviour: { kind: "raw", response: make(r.image.layer.toString("latin1")) } },
        ]);
        const s = scratch();
        const m = await pack(r, s);
        await fails(t, m, s, /malformed|invalid/i, [short(r.image.layerDigest), r.host]);
        assert.equal(asked(r, blobPath(r)).length, 1);
      });
    }

    test("a layer that is always cut short: bounded retries, the error names the layer", async (t) => {
      const r = reg(t);
      if (!r) return;
      r.setRules([{ path: blobPath(r), behaviour: { kind: "cut", afterBytes: 1000 } }]);
      const s = scratch();
      const m = await pack(r, s);
      await fails(t, m, s, /connection closed after/, [short(r.image.layerDigest), r.host]);
      const gets = asked(r, blobPath(r)).length;
      assert.ok(gets >= 2 && gets <= 5, `${gets} GETs`);
    });
  });
});
