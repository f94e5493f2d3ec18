/**
 * End-to-end: airpack against a real registry with htpasswd (Basic) auth.
 * Credentials from --username/--password-stdin, docker's config.json
 * (DOCKER_CONFIG), containers' auth.json (REGISTRY_AUTH_FILE) and a docker
 * credential helper on PATH; wrong credentials and missing images fail with
 * one line and a consistent store; when a registry front redirects blob GETs
 * to another host ("object storage"), the credentials are not sent there.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs/promises";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { after, before, describe, test, type TestContext } from "node:test";

import { airpackOk, assertSnapshotsFor, pack, runAirpack } from "../helpers/cli";
import { startContainerd, type Containerd } from "../helpers/peers/containerd";
import { peersUnavailable, skipOrFail } from "../helpers/peers/process";
import { startRegistry, type Registry } from "../helpers/peers/registry";
import { createSkopeo, type Skopeo } from "../helpers/peers/skopeo";
import { makeTempDir, removeDir } from "../helpers/peers/temp";
import {
  assertCleanFailure,
  assertStoreConsistent,
  blobGetsSince,
  inspectBundle,
  layoutBlob,
  pushFixture,
  registryDigest,
  settledRequests,
} from "../helpers/registry-fixtures";

const TIMEOUT = 120_000;
const USER = "packer";
const PASSWORD = "Pw-7c1d-never-print-me";
const CREDS = `${USER}:${PASSWORD}`;

interface Peers {
  reg: Registry;
  sk: Skopeo;
  ctd: Containerd;
}

/** An environment where airpack finds no credentials except those a test puts there. */
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

interface Recorded {
  method: string;
  path: string;
  authorization: string | undefined;
}

function listen(server: http.Server): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port));
  });
}

function close(server: http.Server | null): Promise<void> {
  if (!server) return Promise.resolve();
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

describe("registry with htpasswd auth", { timeout: 600_000 }, () => {
  let unavailable: string | null = null;
  let peers: Peers | null = null;
  let work = "";
  let host = "";
  let mixed = "";
  let mixedDiffIds: string[] = [];
  let counter = 0;

  before(async () => {
    unavailable = await peersUnavailable(["docker-registry", "skopeo", "htpasswd", "containerd", "ctr"]);
    if (unavailable !== null) return;
    work = await makeTempDir("airpack-e2e-regauth");
    const reg = await startRegistry({ htpasswd: { user: USER, password: PASSWORD } });
    const sk = await createSkopeo();
    const ctd = await startContainerd();
    peers = { reg, sk, ctd };
    host = reg.host;
    await pushFixture(sk, "mixed", `${host}/test/mixed:1`, { creds: CREDS });
    mixed = await registryDigest(sk, `${host}/test/mixed:1`, ["--creds", CREDS]);
    const manifest = JSON.parse((await layoutBlob(mixed)).toString("utf8")) as { config: { digest: string } };
    mixedDiffIds = (
      JSON.parse((await layoutBlob(manifest.config.digest)).toString("utf8")) as { rootfs: { diff_ids: string[] } }
    ).rootfs.diff_ids;
  });

  after(async () => {
    await peers?.ctd.stop();
    await peers?.sk.cleanup();
    await peers?.reg.stop();
    if (work) await removeDir(work);
  });

  function ready(t: TestContext): Peers | null {
    if (skipOrFail(t, unavailable)) return null;
    assert.ok(peers);
    return peers;
  }

  /** A fresh dir under work with a HOME inside. */
  async function scratch(name: string): Promise<{ dir: string; home: string; cache: string; out: string }> {
    const dir = path.join(work, `${name}-${++counter}`);
    const home = path.join(dir, "home");
    await fs.mkdir(home, { recursive: true });
    return { dir, home, cache: path.join(dir, "cache"), out: path.join(dir, "out.tar") };
  }

  async function assertPacked(bundle: string, name: string): Promise<void> {
    const images = await inspectBundle(bundle);
    assert.deepEqual(
      images.map((i) => [i.name, i.digest]),
      [[name, mixed]],
    );
  }

  test("--username with --password-stdin; the bundle imports into containerd", { timeout: TIMEOUT }, async (t) => {
    const p = ready(t);
    if (!p) return;
    const s = await scratch("stdin");
    const ref = `${host}/test/mixed:1`;
    const r = await pack([ref], s.out, s.cache, ["--username", USER, "--password-stdin"], {
      input: `${PASSWORD}\n`,
      env: isolatedEnv(s.home),
    });
    assert.ok(!r.stderr.includes(PASSWORD) && !r.stdout.toString("utf8").includes(PASSWORD));
    await assertPacked(s.out, ref);
    const tar = await airpackOk(["unpack", s.out, "-o", "-"]);
    await p.ctd.importImage(tar.stdout, { namespace: "reg-auth" });
    const row = (await p.ctd.listImages("reg-auth")).find((x) => x.name === ref);
    assert.equal(row?.digest, mixed);
    await assertSnapshotsFor(p.ctd, "reg-auth", [{ ref, diffIds: mixedDiffIds }]);
  });

  test("docker config.json with auths (DOCKER_CONFIG, HOME elsewhere)", { timeout: TIMEOUT }, async (t) => {
    if (!ready(t)) return;
    const s = await scratch("docker-config");
    const dockerConfig = path.join(s.dir, "docker");
    await fs.mkdir(dockerConfig);
    await fs.writeFile(
      path.join(dockerConfig, "config.json"),
      JSON.stringify({ auths: { [host]: { auth: Buffer.from(CREDS).toString("base64") } } }),
      { mode: 0o600 },
    );
    const ref = `${host}/test/mixed:1`;
    await pack([ref], s.out, s.cache, [], { env: isolatedEnv(s.home, { DOCKER_CONFIG: dockerConfig }) });
    await assertPacked(s.out, ref);
  });

  test("containers auth.json via REGISTRY_AUTH_FILE", { timeout: TIMEOUT }, async (t) => {
    if (!ready(t)) return;
    const s = await scratch("auth-json");
    const authFile = path.join(s.dir, "auth.json");
    await fs.writeFile(
      authFile,
      JSON.stringify({ auths: { [host]: { auth: Buffer.from(CREDS).toString("base64") } } }),
      { mode: 0o600 },
    );
    const ref = `${host}/test/mixed:1`;
    await pack([ref], s.out, s.cache, [], { env: isolatedEnv(s.home, { REGISTRY_AUTH_FILE: authFile }) });
    await assertPacked(s.out, ref);
  });

  test("a docker credential helper from credHelpers, found on PATH", { timeout: TIMEOUT }, async (t) => {
    if (!ready(t)) return;
    const s = await scratch("cred-helper");
    const bin = path.join(s.dir, "bin");
    await fs.mkdir(bin);
    const calls = path.join(s.dir, "helper-calls.log");
    await fs.writeFile(
      path.join(bin, "docker-credential-fake"),
      [
        "#!/bin/sh",
        "input=$(cat)",
        `printf '%s %s\\n' "$1" "$input" >> ${JSON.stringify(calls)}`,
        'if [ "$1" = get ]; then',
        `  printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}' "$input" ${JSON.stringify(USER)} ${JSON.stringify(PASSWORD)}`,
        "  exit 0",
        "fi",
        "echo 'unsupported' >&2",
        "exit 1",
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
    const dockerConfig = path.join(s.dir, "docker");
    await fs.mkdir(dockerConfig);
    await fs.writeFile(path.join(dockerConfig, "config.json"), JSON.stringify({ credHelpers: { [host]: "fake" } }));
    const ref = `${host}/test/mixed:1`;
    await pack([ref], s.out, s.cache, [], {
      env: isolatedEnv(s.home, { DOCKER_CONFIG: dockerConfig, PATH: `${bin}:${process.env.PATH ?? ""}` }),
    });
    await assertPacked(s.out, ref);
    const log = (await fs.readFile(calls, "utf8")).trim().split("\n");
    assert.ok(log.length >= 1, "the helper was not called");
    for (const line of log) assert.equal(line, `get ${host}`);
  });

  test("wrong password, no credentials: one 401 line, password never printed", { timeout: TIMEOUT }, async (t) => {
    if (!ready(t)) return;
    const ref = `${host}/test/mixed:1`;
    const wrong = "Wrong-pw-5e3a-secret";
    let s = await scratch("wrong-pw");
    let r = await runAirpack(["pack", ref, "-o", s.out, "--cache", s.cache, "--username", USER, "--password-stdin"], {
      input: wrong,
      env: isolatedEnv(s.home),
    });
    let line = await assertCleanFailure(r, {
      message: /401/,
      cache: s.cache,
      output: s.out,
      secrets: [wrong, PASSWORD],
    });
    t.diagnostic(line);
    assert.ok(line.includes(`${host}/test/mixed`), line);

    // wrong password from a config file
    s = await scratch("wrong-config");
    const dockerConfig = path.join(s.dir, "docker");
    await fs.mkdir(dockerConfig);
    await fs.writeFile(
      path.join(dockerConfig, "config.json"),
      JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${USER}:${wrong}`).toString("base64") } } }),
    );
    r = await runAirpack(["pack", ref, "-o", s.out, "--cache", s.cache], {
      env: isolatedEnv(s.home, { DOCKER_CONFIG: dockerConfig }),
    });
    await assertCleanFailure(r, { message: /401/, cache: s.cache, output: s.out, secrets: [wrong, PASSWORD] });

    // no credentials at all
    s = await scratch("anonymous");
    r = await runAirpack(["pack", ref, "-o", s.out, "--cache", s.cache], { env: isolatedEnv(s.home) });
    line = await assertCleanFailure(r, { message: /401/, cache: s.cache, output: s.out });
    t.diagnostic(line);
    assert.match(line, /login|credentials|--username/i);
  });

  test("missing repository and missing tag: one 404 line each", { timeout: TIMEOUT }, async (t) => {
    if (!ready(t)) return;
    for (const ref of [`${host}/test/nothing-here:1`, `${host}/test/mixed:no-such-tag`]) {
      const s = await scratch("missing");
      const r = await runAirpack(
        ["pack", ref, "-o", s.out, "--cache", s.cache, "--username", USER, "--password-stdin"],
        { input: PASSWORD, env: isolatedEnv(s.home) },
      );
      const line = await assertCleanFailure(r, {
        message: /404/,
        cache: s.cache,
        output: s.out,
        secrets: [PASSWORD],
      });
      t.diagnostic(line);
      assert.ok(line.includes(ref), `${line} does not name ${ref}`);
      assert.match(line, /not found|unknown/i);
    }
  });

  test("blob GETs redirected to another host: credentials are not sent there", { timeout: TIMEOUT }, async (t) => {
    const p = ready(t);
    if (!p) return;
    const storageSeen: Recorded[] = [];
    const frontBlobGets: Recorded[] = [];
    const expectedAuth = `Basic ${Buffer.from(CREDS).toString("base64")}`;
    let storagePort = 0;
    // "object storage": serves blobs by digest, answers whatever the headers
    const storage = http.createServer((req, res) => {
      storageSeen.push({ method: req.method ?? "", path: req.url ?? "", authorization: req.headers.authorization });
      const m = /^\/blob\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? "");
      if (!m?.[1]) {
        res.writeHead(404).end();
        return;
      }
      layoutBlob(m[1]).then(
        (data) => {
          res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": data.length });
          res.end(req.method === "HEAD" ? undefined : data);
        },
        () => res.writeHead(404).end(),
      );
    });
    // the registry's front: blob GETs are checked, then redirected; everything else goes to the registry
    const front = http.createServer((req, res) => {
      const m = /^\/v2\/(.+)\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? "");
      if (req.method === "GET" && m?.[2]) {
        frontBlobGets.push({ method: "GET", path: req.url ?? "", authorization: req.headers.authorization });
        if (req.headers.authorization !== expectedAuth) {
          res.writeHead(401, { "WWW-Authenticate": 'Basic realm="airpack-test"', "Content-Type": "application/json" });
          res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
          return;
        }
        res.writeHead(307, { Location: `http://127.0.0.1:${storagePort}/blob/${m[2]}`, "Content-Length": 0 });
        res.end();
        return;
      }
      const upstream = http.request(
        { host: "127.0.0.1", port: p.reg.port, method: req.method, path: req.url, headers: req.headers, agent: false },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on("error", () => res.destroy());
      req.pipe(upstream);
    });
    try {
      storagePort = await listen(storage);
      const frontPort = await listen(front);
      const s = await scratch("redirect");
      const mark = (await settledRequests(p.reg)).length;
      const ref = `127.0.0.1:${frontPort}/test/mixed:1`;
      await pack([ref], s.out, s.cache, ["--username", USER, "--password-stdin"], {
        input: PASSWORD,
        env: isolatedEnv(s.home),
      });
      await assertPacked(s.out, ref);
      await airpackOk(["verify", s.out]);

      assert.ok(storageSeen.length >= 6, `object storage saw ${storageSeen.length} requests`);
      assert.deepEqual(
        storageSeen.filter((r) => r.authorization !== undefined),
        [],
        "an Authorization header reached the object storage",
      );
      assert.ok(frontBlobGets.length > 0);
      assert.ok(
        frontBlobGets.every((r) => r.authorization === expectedAuth),
        JSON.stringify(frontBlobGets),
      );
      // every blob came from the object storage, none from the registry itself
      await settledRequests(p.reg);
      assert.deepEqual(blobGetsSince(p.reg, mark), []);
      await assertStoreConsistent(s.cache);
    } finally {
      await close(front);
      await close(storage);
    }
  });
});
