/**
 * End-to-end: airpack against a real registry over TLS (self-signed
 * certificate on 127.0.0.1: verified unless --insecure-registry, trusted with
 * --ca-file) and against a registry with bearer token auth (the token server
 * of test/helpers/token-server.ts): credentials, anonymous pulls, few token
 * requests, and a token the registry stops accepting mid-run.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { after, before, describe, test, type TestContext } from "node:test";

import { airpackOk, assertSnapshotsFor, pack, runAirpack } from "../helpers/cli";
import { delayRequests, startFaultProxy, type FaultProxy } from "../helpers/fault-proxy";
import { startContainerd, type Containerd } from "../helpers/peers/containerd";
import { peersUnavailable, skipOrFail } from "../helpers/peers/process";
import { makeSelfSignedCert, startRegistry, type Registry, type SelfSignedCert } from "../helpers/peers/registry";
import { createSkopeo, type Skopeo } from "../helpers/peers/skopeo";
import { makeTempDir, removeDir } from "../helpers/peers/temp";
import {
  assertCleanFailure,
  assertStoreConsistent,
  inspectBundle,
  layoutBlob,
  pushFixture,
  registryDigest,
  settledRequests,
} from "../helpers/registry-fixtures";
import { startTokenServer, type TokenServer } from "../helpers/token-server";

const TIMEOUT = 120_000;
const USER = "tokenuser";
const PASSWORD = "Tk-pw-93b1-never-print-me";
const CREDS = `${USER}:${PASSWORD}`;

/** An environment where airpack finds no stored credentials. */
function isolatedEnv(home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    HOME: home,
    DOCKER_CONFIG: undefined,
    REGISTRY_AUTH_FILE: undefined,
    XDG_RUNTIME_DIR: undefined,
    XDG_CONFIG_HOME: undefined,
    ...extra,
  };
}

async function diffIdsOf(manifestDigest: string): Promise<string[]> {
  const manifest = JSON.parse((await layoutBlob(manifestDigest)).toString("utf8")) as { config: { digest: string } };
  return (JSON.parse((await layoutBlob(manifest.config.digest)).toString("utf8")) as { rootfs: { diff_ids: string[] } })
    .rootfs.diff_ids;
}

describe("registry over TLS with a self-signed certificate", { timeout: 300_000 }, () => {
  let unavailable: string | null = null;
  let cert: SelfSignedCert | null = null;
  let reg: Registry | null = null;
  let sk: Skopeo | null = null;
  let work = "";
  let home = "";
  let mixed = "";
  let counter = 0;

  before(async () => {
    unavailable = await peersUnavailable(["docker-registry", "skopeo", "openssl"]);
    if (unavailable !== null) return;
    work = await makeTempDir("airpack-e2e-regtls");
    home = path.join(work, "home");
    await fs.mkdir(home);
    cert = await makeSelfSignedCert();
    reg = await startRegistry({ tls: { certFile: cert.certFile, keyFile: cert.keyFile } });
    sk = await createSkopeo();
    await pushFixture(sk, "mixed", `${reg.host}/test/mixed:1`, { certDir: cert.certDir });
    mixed = await registryDigest(sk, `${reg.host}/test/mixed:1`, ["--cert-dir", cert.certDir]);
  });

  after(async () => {
    await sk?.cleanup();
    await reg?.stop();
    await cert?.cleanup();
    if (work) await removeDir(work);
  });

  function ready(t: TestContext): { reg: Registry; cert: SelfSignedCert } | null {
    if (skipOrFail(t, unavailable)) return null;
    assert.ok(reg && cert);
    return { reg, cert };
  }

  function scratch(): { cache: string; out: string } {
    const n = ++counter;
    return { cache: path.join(work, `cache-${n}`), out: path.join(work, `out-${n}.tar`) };
  }

  test("without --ca-file: one line about the certificate, no fallback to plain HTTP", async (t) => {
    const p = ready(t);
    if (!p) return;
    const s = scratch();
    const mark = (await settledRequests(p.reg)).length;
    const r = await runAirpack(["pack", `${p.reg.host}/test/mixed:1`, "-o", s.out, "--cache", s.cache], {
      env: isolatedEnv(home, { AIRPACK_BACKOFF_MS: "50" }),
    });
    const line = await assertCleanFailure(r, {
      message: /certificate|\bCA\b|TLS/i,
      cache: s.cache,
      output: s.out,
    });
    t.diagnostic(line);
    assert.ok(line.includes(p.reg.host), line);
    // Only the unauthenticated `GET /v2/` that probes whether a loopback registry speaks TLS may have
    // been answered: no request for the image went out, neither unverified nor over plain HTTP.
    await settledRequests(p.reg);
    assert.deepEqual(
      p.reg
        .requests()
        .slice(mark)
        .filter((x) => x.path !== "/v2/")
        .map((x) => `${x.method} ${x.path} ${x.status}`),
      [],
    );
  });

  test("with --ca-file: packed over verified TLS", { timeout: TIMEOUT }, async (t) => {
    const p = ready(t);
    if (!p) return;
    const s = scratch();
    const ref = `${p.reg.host}/test/mixed:1`;
    const mark = (await settledRequests(p.reg)).length;
    await pack([ref], s.out, s.cache, ["--ca-file", p.cert.certFile], { env: isolatedEnv(home) });
    const [img] = await inspectBundle(s.out);
    assert.equal(img?.name, ref);
    assert.equal(img?.digest, mixed);
    await settledRequests(p.reg);
    assert.ok(
      p.reg
        .requests()
        .slice(mark)
        .some((x) => x.method === "GET" && x.path === "/v2/test/mixed/manifests/1" && x.status === 200),
    );
    await airpackOk(["verify", s.out]);
  });

  test("with --insecure-registry: TLS without verification", { timeout: TIMEOUT }, async (t) => {
    const p = ready(t);
    if (!p) return;
    const s = scratch();
    const ref = `${p.reg.host}/test/mixed:1`;
    await pack([ref], s.out, s.cache, ["--insecure-registry", p.reg.host], { env: isolatedEnv(home) });
    const [img] = await inspectBundle(s.out);
    assert.equal(img?.digest, mixed);
  });

  test("--ca-file naming a missing file: one line", async (t) => {
    const p = ready(t);
    if (!p) return;
    const s = scratch();
    const missing = path.join(work, "no-such-ca.pem");
    const r = await runAirpack(
      ["pack", `${p.reg.host}/test/mixed:1`, "-o", s.out, "--cache", s.cache, "--ca-file", missing],
      { env: isolatedEnv(home) },
    );
    const line = await assertCleanFailure(r, { message: /--ca-file/, cache: s.cache, output: s.out });
    assert.ok(line.includes(missing), line);
  });
});

describe("registry with bearer token auth (token server)", { timeout: 300_000 }, () => {
  let unavailable: string | null = null;
  let ts: TokenServer | null = null;
  let reg: Registry | null = null;
  let sk: Skopeo | null = null;
  let ctd: Containerd | null = null;
  let work = "";
  let home = "";
  let mixed = "";
  let unc = "";
  let counter = 0;

  before(async () => {
    unavailable = await peersUnavailable(["docker-registry", "skopeo", "openssl", "containerd", "ctr"]);
    if (unavailable !== null) return;
    work = await makeTempDir("airpack-e2e-regtoken");
    home = path.join(work, "home");
    await fs.mkdir(home);
    ts = await startTokenServer({ users: { [USER]: PASSWORD }, anonymousPull: ["public/"] });
    reg = await startRegistry({ token: ts.registryAuth });
    sk = await createSkopeo();
    ctd = await startContainerd();
    await pushFixture(sk, "mixed", `${reg.host}/test/mixed:1`, { creds: CREDS });
    await pushFixture(sk, "uncompressed", `${reg.host}/test/mixed:2`, { creds: CREDS });
    await pushFixture(sk, "mixed", `${reg.host}/public/mixed:1`, { creds: CREDS });
    mixed = await registryDigest(sk, `${reg.host}/test/mixed:1`, ["--creds", CREDS]);
    unc = await registryDigest(sk, `${reg.host}/test/mixed:2`, ["--creds", CREDS]);
  });

  after(async () => {
    await ctd?.stop();
    await sk?.cleanup();
    await reg?.stop();
    await ts?.stop();
    if (work) await removeDir(work);
  });

  function ready(t: TestContext): { ts: TokenServer; reg: Registry; ctd: Containerd } | null {
    if (skipOrFail(t, unavailable)) return null;
    assert.ok(ts && reg && ctd);
    ts.clearRequests();
    ts.setExpiresIn(300, 0);
    return { ts, reg, ctd };
  }

  function scratch(): { cache: string; out: string } {
    const n = ++counter;
    return { cache: path.join(work, `cache-${n}`), out: path.join(work, `out-${n}.tar`) };
  }

  test("with credentials: packed, few token requests, imports into containerd", { timeout: TIMEOUT }, async (t) => {
    const p = ready(t);
    if (!p) return;
    const s = scratch();
    const ref = `${p.reg.host}/test/mixed:1`;
    const r = await pack([ref], s.out, s.cache, ["--username", USER, "--password-stdin"], {
      input: PASSWORD,
      env: isolatedEnv(home),
    });
    assert.ok(!r.stderr.includes(PASSWORD));
    const [img] = await inspectBundle(s.out);
    assert.equal(img?.digest, mixed);

    const tokens = p.ts.requests();
    t.diagnostic(`token requests: ${tokens.length}`);
    assert.ok(tokens.length >= 1 && tokens.length <= 3, `${tokens.length} token requests for one image`);
    for (const x of tokens) {
      assert.equal(x.status, 200);
      assert.equal(x.user, USER);
      assert.deepEqual(x.query.service, [p.ts.service]);
    }
    assert.ok(tokens.some((x) => x.granted.some((g) => g.name === "test/mixed" && g.actions.includes("pull"))));
    // the registry enforced the tokens
    assert.ok(p.reg.requests().some((x) => x.status === 401));

    const ns = "reg-token";
    const tar = await airpackOk(["unpack", s.out, "-o", "-"]);
    await p.ctd.importImage(tar.stdout, { namespace: ns });
    const row = (await p.ctd.listImages(ns)).find((x) => x.name === ref);
    assert.equal(row?.digest, mixed);
    await assertSnapshotsFor(p.ctd, ns, [{ ref, diffIds: await diffIdsOf(mixed) }]);
  });

  test("anonymous pull of a repository the token server allows", { timeout: TIMEOUT }, async (t) => {
    const p = ready(t);
    if (!p) return;
    const s = scratch();
    const ref = `${p.reg.host}/public/mixed:1`;
    await pack([ref], s.out, s.cache, [], { env: isolatedEnv(home) });
    const [img] = await inspectBundle(s.out);
    assert.equal(img?.digest, mixed);
    const tokens = p.ts.requests();
    assert.ok(tokens.length >= 1 && tokens.length <= 3, `${tokens.length} token requests`);
    assert.ok(tokens.every((x) => !x.hadAuth && x.status === 200));
    assert.ok(tokens.some((x) => x.granted.some((g) => g.name === "public/mixed")));
  });

  test("anonymous pull of a private repository: one line", { timeout: TIMEOUT }, async (t) => {
    const p = ready(t);
    if (!p) return;
    const s = scratch();
    const r = await runAirpack(["pack", `${p.reg.host}/test/mixed:1`, "-o", s.out, "--cache", s.cache], {
      env: isolatedEnv(home),
    });
    const line = await assertCleanFailure(r, { message: /401|unauthori[sz]ed|denied/i, cache: s.cache, output: s.out });
    t.diagnostic(line);
  });

  test("wrong password at the token server: one line, password never printed", { timeout: TIMEOUT }, async (t) => {
    const p = ready(t);
    if (!p) return;
    const s = scratch();
    const wrong = "Tk-wrong-0b77-secret";
    const r = await runAirpack(
      ["pack", `${p.reg.host}/test/mixed:1`, "-o", s.out, "--cache", s.cache, "--username", USER, "--password-stdin"],
      { input: wrong, env: isolatedEnv(home) },
    );
    const line = await assertCleanFailure(r, {
      message: /401|authentication failed/i,
      cache: s.cache,
      output: s.out,
      secrets: [wrong, PASSWORD],
    });
    t.diagnostic(line);
  });

  test("a token the registry stops accepting is fetched again (401 → new token)", { timeout: TIMEOUT }, async (t) => {
    const p = ready(t);
    if (!p) return;
    // expires_in 10 s (airpack keeps it a few seconds), but exp is set so that the registry,
    // with its 60 s of leeway, refuses it about 3 s after it was issued
    p.ts.setExpiresIn(10, -67);
    // the second image's manifest GET reaches the registry 3.5 s after airpack sent it
    const proxy: FaultProxy = await startFaultProxy("127.0.0.1", p.reg.port, [
      delayRequests(/^\/v2\/test\/mixed\/manifests\/2$/, 3500, 1, "GET"),
    ]);
    try {
      const s = scratch();
      const refs = [`${proxy.address}/test/mixed:1`, `${proxy.address}/test/mixed:2`];
      await pack(refs, s.out, s.cache, ["--username", USER, "--password-stdin"], {
        input: PASSWORD,
        env: isolatedEnv(home),
      });
      const images = await inspectBundle(s.out);
      assert.deepEqual(
        images.map((i) => [i.name, i.digest]),
        [
          [refs[0], mixed],
          [refs[1], unc],
        ],
      );
      await assertStoreConsistent(s.cache);
      const statuses = proxy
        .requests()
        .filter((x) => x.path === "/v2/test/mixed/manifests/2")
        .map((x) => x.status);
      t.diagnostic(`manifests/2 statuses: ${statuses.join(" ")}; token requests: ${p.ts.requests().length}`);
      assert.deepEqual(statuses.slice(0, 1), [401], "the stale token was not refused: the test did not test anything");
      assert.equal(statuses[statuses.length - 1], 200);
      assert.ok(p.ts.issued().length >= 2, "no second token");
      assert.ok(p.ts.issued().length <= 4, `${p.ts.issued().length} tokens`);
    } finally {
      await proxy.stop();
      p.ts.setExpiresIn(300, 0);
    }
  });
});
