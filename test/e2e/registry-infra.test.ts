/**
 * Proves the registry test infrastructure with real tools and without airpack:
 * the token server (test/helpers/token-server.ts) in front of the real
 * distribution registry configured with `auth.token`, driven by skopeo and
 * plain HTTP; and the fault proxy (test/helpers/fault-proxy.ts) driven by curl,
 * node:http and skopeo.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs/promises";
import * as http from "node:http";
import * as path from "node:path";
import { after, before, describe, test, type TestContext } from "node:test";

import { FIXTURES, sha256File, sha256Of } from "../helpers/cli";
import {
  cutAfter,
  delayRequests,
  serviceUnavailable,
  startFaultProxy,
  tooManyRequests,
  type FaultProxy,
} from "../helpers/fault-proxy";
import { peersUnavailable, run, skipOrFail } from "../helpers/peers/process";
import { startRegistry, type Registry } from "../helpers/peers/registry";
import { createSkopeo, type Skopeo } from "../helpers/peers/skopeo";
import { makeTempDir, removeDir } from "../helpers/peers/temp";
import {
  startTokenServer,
  type TokenAccess,
  type TokenAlg,
  type TokenKeyHeader,
  type TokenServer,
} from "../helpers/token-server";

const LAYOUT = path.join(FIXTURES, "oci");
const TIMEOUT = 180_000;
const USER = "alice";
const PASSWORD = "s3cret-pw";
const CREDS = `${USER}:${PASSWORD}`;
const MANIFEST_ACCEPT = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.oci.image.index.v1+json",
].join(", ");

interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One request on a fresh connection (no keep-alive agent). */
function request(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<HttpResult> {
  return new Promise<HttpResult>((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? "GET", headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.setTimeout(opts.timeoutMs ?? 10_000, () => req.destroy(new Error(`timeout: ${url}`)));
    req.on("error", reject);
    req.end();
  });
}

function bearer(token: string, extra: Record<string, string> = {}): Record<string, string> {
  return { Authorization: `Bearer ${token}`, ...extra };
}

/** Parses `Bearer realm="…",service="…",scope="…"` into its parameters. */
function parseChallenge(header: string | undefined): Record<string, string> {
  const m = /^Bearer\s+(.*)$/i.exec(header ?? "");
  assert.ok(m, `not a Bearer challenge: ${String(header)}`);
  const params: Record<string, string> = {};
  for (const p of (m[1] ?? "").matchAll(/(\w+)="([^"]*)"/g)) params[p[1] ?? ""] = p[2] ?? "";
  return params;
}

interface LayoutDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** The manifest of a tag in the fixture layout, read from index.json and the blob store. */
async function fixtureManifest(
  tag: string,
): Promise<{ digest: string; bytes: Buffer; layers: LayoutDescriptor[]; config: LayoutDescriptor }> {
  const index = JSON.parse(await fs.readFile(path.join(LAYOUT, "index.json"), "utf8")) as {
    manifests: LayoutDescriptor[];
  };
  const desc = index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag);
  assert.ok(desc, `fixture tag ${tag} missing`);
  const bytes = await fs.readFile(path.join(LAYOUT, "blobs", "sha256", desc.digest.slice("sha256:".length)));
  const manifest = JSON.parse(bytes.toString("utf8")) as { layers: LayoutDescriptor[]; config: LayoutDescriptor };
  return { digest: desc.digest, bytes, layers: manifest.layers, config: manifest.config };
}

const pull = (name: string): TokenAccess => ({ type: "repository", name, actions: ["pull"] });

// ---------------------------------------------------------------------------
// token auth
// ---------------------------------------------------------------------------

describe("token server + distribution registry (auth.token) with skopeo", { timeout: 600_000 }, () => {
  let unavailable: string | null = null;
  let ts: TokenServer | null = null;
  let reg: Registry | null = null;
  let sk: Skopeo | null = null;
  let mixedDigest = "";

  before(async () => {
    unavailable = await peersUnavailable(["docker-registry", "skopeo", "openssl"]);
    if (unavailable !== null) return;
    ts = await startTokenServer({ users: { [USER]: PASSWORD }, anonymousPull: ["public/"] });
    reg = await startRegistry({ token: ts.registryAuth });
    sk = await createSkopeo();
    mixedDigest = (await fixtureManifest("mixed")).digest;
  });

  after(async () => {
    await sk?.cleanup();
    await reg?.stop();
    await ts?.stop();
  });

  function ready(t: TestContext): { ts: TokenServer; reg: Registry; sk: Skopeo } | null {
    if (skipOrFail(t, unavailable)) return null;
    assert.ok(ts && reg && sk);
    return { ts, reg, sk };
  }

  test("unauthenticated requests get a Bearer challenge naming the token server", async (t) => {
    const p = ready(t);
    if (!p) return;
    const base = await request(`${p.reg.url}/v2/`);
    assert.equal(base.status, 401);
    const c = parseChallenge(base.headers["www-authenticate"]);
    assert.equal(c.realm, p.ts.realm);
    assert.equal(c.service, p.ts.service);

    const manifest = await request(`${p.reg.url}/v2/test/mixed/manifests/1`);
    assert.equal(manifest.status, 401);
    assert.equal(parseChallenge(manifest.headers["www-authenticate"]).scope, "repository:test/mixed:pull");
  });

  test(
    "skopeo pushes with --dest-creds through the token flow and reads the manifest back",
    { timeout: TIMEOUT },
    async (t) => {
      const p = ready(t);
      if (!p) return;
      p.ts.clearRequests();
      await p.sk.copy(`oci:${LAYOUT}:mixed`, `docker://${p.reg.host}/test/mixed:1`, [
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        CREDS,
      ]);
      const pushTokens = p.ts.requests();
      assert.ok(pushTokens.length > 0, "no token requests during the push");
      assert.ok(pushTokens.length <= 2, `token not cached: ${pushTokens.length} token requests for one push`);
      for (const r of pushTokens) {
        assert.equal(r.status, 200);
        assert.equal(r.hadAuth, true);
        assert.equal(r.user, USER);
        assert.deepEqual(r.query.service, [p.ts.service]);
      }
      assert.ok(
        pushTokens.some((r) =>
          r.granted.some((g) => g.name === "test/mixed" && g.actions.includes("push") && g.actions.includes("pull")),
        ),
        `no pull+push grant: ${JSON.stringify(pushTokens.map((r) => r.granted))}`,
      );

      const raw = await p.sk.inspectRawBytes(`docker://${p.reg.host}/test/mixed:1`, {
        tlsVerify: false,
        extraArgs: ["--creds", CREDS],
      });
      assert.equal(sha256Of(raw), mixedDigest);

      // The registry really enforced tokens: it answered 401 before the authorised requests.
      const regRequests = p.reg.requests();
      assert.ok(regRequests.some((r) => r.status === 401));
      assert.ok(
        regRequests.some((r) => r.method === "PUT" && r.path === "/v2/test/mixed/manifests/1" && r.status === 201),
      );
    },
  );

  test("wrong credentials fail at the token server", { timeout: TIMEOUT }, async (t) => {
    const p = ready(t);
    if (!p) return;
    p.ts.clearRequests();
    const r = await p.sk.run([
      "inspect",
      "--raw",
      "--tls-verify=false",
      "--creds",
      `${USER}:wrong`,
      `docker://${p.reg.host}/test/mixed:1`,
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /401|unauthorized|authentication required/i);
    const records = p.ts.requests();
    assert.ok(records.length > 0);
    assert.ok(records.every((x) => x.status === 401 && x.hadAuth && x.user === null));

    const direct = await request(`${p.ts.realm}?service=${p.ts.service}&scope=repository:test/mixed:pull`, {
      headers: { Authorization: `Basic ${Buffer.from(`${USER}:nope`).toString("base64")}` },
    });
    assert.equal(direct.status, 401);
  });

  test(
    "anonymous pull works only where the policy allows it; anonymous push never",
    { timeout: TIMEOUT },
    async (t) => {
      const p = ready(t);
      if (!p) return;
      await p.sk.copy(`oci:${LAYOUT}:mixed`, `docker://${p.reg.host}/public/mixed:1`, [
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        CREDS,
      ]);
      p.ts.clearRequests();
      const raw = await p.sk.inspectRawBytes(`docker://${p.reg.host}/public/mixed:1`, { tlsVerify: false });
      assert.equal(sha256Of(raw), mixedDigest);
      const anon = p.ts.issued();
      assert.ok(anon.length > 0);
      assert.ok(anon.every((r) => !r.hadAuth && r.user === null));
      assert.ok(anon.some((r) => r.granted.some((g) => g.name === "public/mixed" && g.actions.join() === "pull")));

      p.ts.clearRequests();
      const denied = await p.sk.run(["inspect", "--raw", "--tls-verify=false", `docker://${p.reg.host}/test/mixed:1`]);
      assert.notEqual(denied.code, 0);
      assert.match(denied.stderr, /unauthorized|denied|authentication required/i);
      // The token server issued an anonymous token without access; the registry refused it.
      assert.ok(p.ts.issued().some((r) => r.user === null && r.granted.length === 0));

      const push = await p.sk.run([
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        `oci:${LAYOUT}:uncompressed`,
        `docker://${p.reg.host}/public/anon:1`,
      ]);
      assert.notEqual(push.code, 0);
    },
  );

  test("what the registry accepts: scopes, audience, issuer, key, leeway", async (t) => {
    const p = ready(t);
    if (!p) return;
    const manifestUrl = `${p.reg.url}/v2/test/mixed/manifests/1`;
    const get = (token: string): Promise<HttpResult> =>
      request(manifestUrl, { headers: bearer(token, { Accept: MANIFEST_ACCEPT }) });
    const issue = p.ts.issueToken.bind(p.ts);

    const ok = await get(issue([pull("test/mixed")]));
    assert.equal(ok.status, 200);
    assert.equal(sha256Of(ok.body), mixedDigest);
    assert.equal((await get(issue([pull("test/mixed")], { keyHeader: "kid" }))).status, 200, "kid header");

    // No access for this repo: 401 with error="insufficient_scope".
    const other = await get(issue([pull("test/other")]));
    assert.equal(other.status, 401);
    assert.match(other.headers["www-authenticate"] ?? "", /insufficient_scope/);
    // A pull token cannot start an upload.
    const upload = await request(`${p.reg.url}/v2/test/mixed/blobs/uploads/`, {
      method: "POST",
      headers: bearer(issue([pull("test/mixed")])),
    });
    assert.equal(upload.status, 401);

    // distribution 2.8.2: `aud` must be a JSON string; an array is a malformed token.
    assert.equal((await get(issue([pull("test/mixed")], { audience: [p.ts.service] }))).status, 401);
    assert.equal((await get(issue([pull("test/mixed")], { audience: "someone-else" }))).status, 401);
    assert.equal((await get(issue([pull("test/mixed")], { issuer: "someone-else" }))).status, 401);
    // ES256 needs the JOSE r||s signature, not ASN.1 DER.
    if (p.ts.alg === "ES256") {
      assert.equal((await get(issue([pull("test/mixed")], { signatureEncoding: "der" }))).status, 401);
    }
    // exp is checked with 60 s of leeway.
    const insideLeeway = issue([pull("test/mixed")], { expiresInSeconds: 0, expOffsetSeconds: -50 });
    assert.equal((await get(insideLeeway)).status, 200);
    const expired = issue([pull("test/mixed")], { expiresInSeconds: 0, expOffsetSeconds: -65 });
    assert.equal((await get(expired)).status, 401);

    // A token from another server (a key not in the rootcertbundle) is refused.
    const stranger = await startTokenServer({ service: p.ts.service, issuer: p.ts.issuer });
    try {
      assert.equal((await get(stranger.issueToken([pull("test/mixed")]))).status, 401);
      assert.equal((await get(stranger.issueToken([pull("test/mixed")], { keyHeader: "kid" }))).status, 401);
    } finally {
      await stranger.stop();
    }
  });

  test("token endpoint: scopes, expires_in, recorded requests", async (t) => {
    const p = ready(t);
    if (!p) return;
    p.ts.clearRequests();
    p.ts.setExpiresIn(7);
    try {
      const basic = `Basic ${Buffer.from(CREDS).toString("base64")}`;
      const r = await request(
        `${p.ts.realm}?service=${p.ts.service}&scope=repository:a/b:pull,push&scope=${encodeURIComponent(
          "repository:public/x:pull registry:catalog:*",
        )}`,
        { headers: { Authorization: basic } },
      );
      assert.equal(r.status, 200);
      const body = JSON.parse(r.body.toString("utf8")) as Record<string, unknown>;
      assert.equal(body.expires_in, 7);
      assert.equal(typeof body.token, "string");
      assert.equal(body.access_token, body.token);
      assert.ok(!Number.isNaN(Date.parse(String(body.issued_at))));
      const [h, c] = String(body.token).split(".");
      const header = JSON.parse(Buffer.from(h ?? "", "base64url").toString("utf8")) as Record<string, unknown>;
      const claims = JSON.parse(Buffer.from(c ?? "", "base64url").toString("utf8")) as Record<string, unknown>;
      assert.equal(header.alg, p.ts.alg);
      assert.ok(Array.isArray(header.x5c));
      assert.equal(claims.aud, p.ts.service);
      assert.equal(claims.sub, USER);
      assert.equal(Number(claims.exp) - Number(claims.iat), 7);
      assert.deepEqual(claims.access, [
        { type: "repository", name: "a/b", actions: ["pull", "push"] },
        { type: "repository", name: "public/x", actions: ["pull"] },
      ]);
      const recs = p.ts.requests();
      assert.equal(recs.length, 1);
      assert.deepEqual(
        recs[0]?.scopes.map((s) => `${s.type}:${s.name}:${s.actions.join(",")}`),
        ["repository:a/b:pull,push", "repository:public/x:pull", "registry:catalog:*"],
      );
      assert.equal(recs[0]?.hadAuth, true);

      const anon = await request(`${p.ts.realm}?service=${p.ts.service}&scope=repository:a/b:pull,push`);
      assert.equal(anon.status, 200);
      assert.deepEqual(p.ts.requests()[1]?.granted, []);
      assert.equal((await request(`${p.ts.url}/other`)).status, 404);
    } finally {
      p.ts.setExpiresIn(300);
    }
  });
});

describe("token signing variants accepted by distribution 2.8.2", { timeout: 300_000 }, () => {
  let unavailable: string | null = null;
  before(async () => {
    unavailable = await peersUnavailable(["docker-registry", "openssl"]);
  });

  const variants: Array<[TokenAlg, TokenKeyHeader]> = [
    ["ES256", "x5c"],
    ["ES256", "kid"],
    ["RS256", "x5c"],
    ["RS256", "kid"],
  ];
  for (const [alg, keyHeader] of variants) {
    test(`${alg} with ${keyHeader}`, async (t) => {
      if (skipOrFail(t, unavailable)) return;
      const ts = await startTokenServer({ alg, keyHeader });
      let reg: Registry | null = null;
      try {
        reg = await startRegistry({ token: ts.registryAuth });
        const noToken = await request(`${reg.url}/v2/`);
        assert.equal(noToken.status, 401);
        const tok = await request(`${ts.realm}?service=${ts.service}`);
        const token = String((JSON.parse(tok.body.toString("utf8")) as { token: unknown }).token);
        const header = JSON.parse(Buffer.from(token.split(".")[0] ?? "", "base64url").toString("utf8")) as Record<
          string,
          unknown
        >;
        assert.equal(header.alg, alg);
        assert.equal(
          keyHeader === "kid" ? header.kid : (header.x5c as unknown[]).length,
          keyHeader === "kid" ? ts.keyId : 1,
        );
        assert.equal((await request(`${reg.url}/v2/`, { headers: bearer(token) })).status, 200);
        // Pull access to a repository that does not exist: authorised, so 404 rather than 401.
        const missing = await request(`${reg.url}/v2/nothing/here/manifests/1`, {
          headers: bearer(ts.issueToken([pull("nothing/here")])),
        });
        assert.equal(missing.status, 404);
      } finally {
        await reg?.stop();
        await ts.stop();
      }
    });
  }
});

// ---------------------------------------------------------------------------
// fault proxy
// ---------------------------------------------------------------------------

describe("fault proxy in front of the registry (curl, node:http, skopeo)", { timeout: 600_000 }, () => {
  let unavailable: string | null = null;
  let reg: Registry | null = null;
  let proxy: FaultProxy | null = null;
  let sk: Skopeo | null = null;
  let work = "";
  let mixedDigest = "";
  let bigLayer = { digest: "", size: 0 };

  before(async () => {
    unavailable = await peersUnavailable(["docker-registry", "skopeo", "curl"]);
    if (unavailable !== null) return;
    work = await makeTempDir("airpack-fault");
    reg = await startRegistry();
    sk = await createSkopeo();
    await sk.copy(`oci:${LAYOUT}:mixed`, `docker://${reg.host}/test/mixed:1`, [
      "--preserve-digests",
      "--dest-tls-verify=false",
    ]);
    const m = await fixtureManifest("mixed");
    mixedDigest = m.digest;
    const largest = [...m.layers].sort((a, b) => b.size - a.size)[0];
    assert.ok(largest);
    bigLayer = { digest: largest.digest, size: largest.size };
    proxy = await startFaultProxy("127.0.0.1", reg.port);
  });

  after(async () => {
    await proxy?.stop();
    await sk?.cleanup();
    await reg?.stop();
    if (work) await removeDir(work);
  });

  function ready(t: TestContext): { reg: Registry; proxy: FaultProxy; sk: Skopeo } | null {
    if (skipOrFail(t, unavailable)) return null;
    assert.ok(reg && proxy && sk);
    proxy.setFaults([]);
    proxy.clearRequests();
    return { reg, proxy, sk };
  }

  const curl = (args: readonly string[]): ReturnType<typeof run> =>
    run("curl", ["--noproxy", "*", "-sS", ...args], { timeoutMs: 60_000 });

  test("without faults it is transparent, for pulls and pushes (skopeo)", { timeout: TIMEOUT }, async (t) => {
    const p = ready(t);
    if (!p) return;
    const raw = await p.sk.inspectRawBytes(`docker://${p.proxy.address}/test/mixed:1`, { tlsVerify: false });
    assert.equal(sha256Of(raw), mixedDigest);
    // A push through the proxy: blob uploads (POST/PATCH/PUT with bodies), Location pointing back at the proxy.
    await p.sk.copy(`oci:${LAYOUT}:uncompressed`, `docker://${p.proxy.address}/test/unc:1`, [
      "--preserve-digests",
      "--dest-tls-verify=false",
    ]);
    const unc = await fixtureManifest("uncompressed");
    const direct = await p.sk.inspectRawBytes(`docker://${p.reg.host}/test/unc:1`, { tlsVerify: false });
    assert.equal(sha256Of(direct), unc.digest);
    const seen = p.proxy.requests();
    assert.ok(seen.some((r) => r.method === "PUT" && r.path === "/v2/test/unc/manifests/1" && r.status === 201));
    assert.ok(seen.every((r) => r.faults.length === 0));
  });

  test("a blob GET cut after N bytes; curl -C - resumes with Range: bytes=N-", async (t) => {
    const p = ready(t);
    if (!p) return;
    const cutAt = 10_000;
    assert.ok(bigLayer.size > cutAt);
    p.proxy.setFaults([cutAfter(/\/blobs\/sha256:/, cutAt, 1, "GET")]);
    const url = `${p.proxy.url}/v2/test/mixed/blobs/${bigLayer.digest}`;
    const out = path.join(work, "layer.bin");

    const first = await curl(["-o", out, url]);
    assert.equal(first.code, 18, `curl should report a partial file: ${first.stderr}`);
    assert.equal((await fs.stat(out)).size, cutAt);

    const second = await curl(["-C", "-", "-o", out, url]);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(await sha256File(out), bigLayer.digest);

    const gets = p.proxy.requests().filter((r) => r.method === "GET");
    assert.equal(gets.length, 2);
    assert.deepEqual(gets[0]?.faults, [`cut after ${cutAt} bytes`]);
    assert.equal(gets[0]?.status, 200);
    assert.equal(gets[0]?.bodyBytes, cutAt);
    assert.equal(gets[0]?.range, null);
    assert.equal(gets[1]?.range, `bytes=${cutAt}-`);
    assert.equal(gets[1]?.status, 206);
    assert.equal(gets[1]?.bodyBytes, bigLayer.size - cutAt);
    assert.ok(p.reg.blobGets("test/mixed").length >= 2);
  });

  test("a cut seen by node:http: the response ends early ('aborted')", async (t) => {
    const p = ready(t);
    if (!p) return;
    p.proxy.setFaults([cutAfter(/\/blobs\//, 100, 1)]);
    const url = `${p.proxy.url}/v2/test/mixed/blobs/${bigLayer.digest}`;
    await assert.rejects(request(url), /aborted|ECONNRESET|socket hang up/i);
    const ok = await request(url);
    assert.equal(ok.status, 200);
    assert.equal(sha256Of(ok.body), bigLayer.digest);
  });

  test("429 with Retry-After the first time; curl --retry honours it", async (t) => {
    const p = ready(t);
    if (!p) return;
    const url = `${p.proxy.url}/v2/test/mixed/manifests/1`;
    const accept = ["-H", `Accept: ${MANIFEST_ACCEPT}`];
    p.proxy.setFaults([tooManyRequests(/\/manifests\//, 1, 1)]);
    const limited = await curl(["-i", ...accept, url]);
    const text = limited.stdout.toString("utf8");
    assert.match(text, /^HTTP\/1\.1 429 /);
    assert.match(text, /\r\nRetry-After: 1\r\n/i);
    const okRes = await curl(["-o", "/dev/null", "-w", "%{http_code}", ...accept, url]);
    assert.equal(okRes.stdout.toString(), "200");

    p.proxy.setFaults([tooManyRequests(/\/manifests\//, 1, 1)]);
    p.proxy.clearRequests();
    const started = Date.now();
    const retried = await curl([
      "--retry",
      "2",
      "-o",
      path.join(work, "retried.json"),
      "-w",
      "%{http_code}",
      ...accept,
      url,
    ]);
    assert.equal(retried.stdout.toString(), "200", retried.stderr);
    assert.ok(Date.now() - started >= 900, "curl should have waited Retry-After: 1");
    assert.deepEqual(
      p.proxy.requests().map((r) => r.status),
      [429, 200],
    );
  });

  test("503 the first K times, then the target answers", async (t) => {
    const p = ready(t);
    if (!p) return;
    p.proxy.setFaults([serviceUnavailable(/^\/v2\/$/, 2)]);
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await request(`${p.proxy.url}/v2/`)).status);
    assert.deepEqual(statuses, [503, 503, 200]);
    assert.deepEqual(
      p.proxy.requests().map((r) => r.faults),
      [["status 503"], ["status 503"], []],
    );
  });

  test("delayed responses", async (t) => {
    const p = ready(t);
    if (!p) return;
    p.proxy.setFaults([delayRequests(/^\/v2\/$/, 400, 1)]);
    let started = Date.now();
    assert.equal((await request(`${p.proxy.url}/v2/`)).status, 200);
    assert.ok(Date.now() - started >= 380, "first request should be delayed");
    started = Date.now();
    assert.equal((await request(`${p.proxy.url}/v2/`)).status, 200);
    assert.ok(Date.now() - started < 380, "only the first request is delayed");
  });
});
