/**
 * End-to-end: `airpack push` of a digest-preserving bundle into a second real registry (with
 * htpasswd auth), and `airpack copy`. The target must end up with the source registry's exact
 * manifests and indexes: both are read back with `skopeo inspect --raw` and hashed here. Then real
 * containerd pulls from the target.
 */
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { after, before, describe, test, type TestContext } from "node:test";

import { spawn } from "node:child_process";
import { AIRPACK_BIN, airpackOk, runAirpack, sha256Of, tarMembers } from "../helpers/cli";
import {
  delayRequests,
  dropAnswer,
  serviceUnavailable,
  startFaultProxy,
  tooManyRequests,
  type FaultProxy,
} from "../helpers/fault-proxy";
import { startContainerd, type Containerd } from "../helpers/peers/containerd";
import { peersUnavailable, skipOrFail } from "../helpers/peers/process";
import { startRegistry, type Registry } from "../helpers/peers/registry";
import { createSkopeo, type Skopeo } from "../helpers/peers/skopeo";
import { makeTempDir, removeDir } from "../helpers/peers/temp";
import { pushDockerManifestList, pushFixture, registryDigest } from "../helpers/registry-fixtures";
import { startTokenServer } from "../helpers/token-server";

const USER = "site";
const PASSWORD = "offline-pass-42";
const CREDS = `${USER}:${PASSWORD}`;

interface Peers {
  source: Registry;
  target: Registry;
  /** In front of the target: counts requests and injects faults. */
  proxy: FaultProxy;
  sk: Skopeo;
  ctd: Containerd;
}

interface PushJson {
  images: { name: string; target: string; digest: string }[];
  blobs: { uploaded: number; mounted: number; present: number };
  manifests: { put: number; present: number };
  plan: { kind: string; target: string; digest: string; present: boolean }[];
}

describe("push and copy into a real registry, original digests kept", { timeout: 600_000 }, () => {
  let unavailable: string | null = null;
  let peers: Peers | null = null;
  let work = "";
  let bundle = "";
  const refs = ["test/mixed:1", "test/multi:1", "test/list:1"];
  const sourceDigests = new Map<string, string>();

  before(async () => {
    unavailable = await peersUnavailable(["docker-registry", "skopeo", "htpasswd", "containerd", "ctr"]);
    if (unavailable !== null) return;
    work = await makeTempDir("airpack-e2e-push");
    const source = await startRegistry();
    const target = await startRegistry({ htpasswd: { user: USER, password: PASSWORD } });
    const sk = await createSkopeo();
    const ctd = await startContainerd();
    const proxy = await startFaultProxy("127.0.0.1", target.port);
    peers = { source, target, sk, ctd, proxy };
    await pushFixture(sk, "mixed", `${source.host}/test/mixed:1`);
    await pushFixture(sk, "multi", `${source.host}/test/multi:1`);
    await pushDockerManifestList(source.url, "test/list", "1");
    for (const r of refs) sourceDigests.set(r, await registryDigest(sk, `${source.host}/${r}`));
    // the default layers mode under xz: uncompressed with recipes
    bundle = path.join(work, "site.tar.xz");
    await airpackOk([
      "pack",
      ...refs.map((r) => `${source.host}/${r}`),
      "--all-platforms",
      "-o",
      bundle,
      "--cache",
      path.join(work, "cache"),
      "-q",
    ]);
  });

  after(async () => {
    await peers?.ctd.stop();
    await peers?.proxy.stop();
    await peers?.sk.cleanup();
    await peers?.source.stop();
    await peers?.target.stop();
    if (work) await removeDir(work);
  });

  function ready(t: TestContext): Peers | null {
    if (skipOrFail(t, unavailable)) return null;
    assert.ok(peers);
    peers.proxy.setFaults([]);
    peers.proxy.clearRequests();
    return peers;
  }

  async function push(p: Peers, args: string[], env: NodeJS.ProcessEnv = {}): Promise<PushJson> {
    const r = await airpackOk(["push", ...args, "--username", USER, "--password-stdin", "--json"], {
      input: PASSWORD,
      env,
    });
    void p;
    return JSON.parse(r.stdout.toString("utf8")) as PushJson;
  }

  /** The target's tags of a repository (the registry's own API), [] when it has none. */
  async function tagsOf(p: Peers, repository: string): Promise<string[]> {
    const auth = `Basic ${Buffer.from(CREDS).toString("base64")}`;
    const res = await fetch(`${p.target.url}/v2/${repository}/tags/list`, { headers: { authorization: auth } });
    if (res.status === 404) return [];
    const doc = (await res.json()) as { tags: string[] | null };
    return doc.tags ?? [];
  }

  test("the target holds the source's exact manifests and indexes; ctr pulls them", async (t) => {
    const p = ready(t);
    if (!p) return;
    const inspect = (await airpackOk(["inspect", "--json", bundle])).stdout.toString("utf8");
    const mode = (JSON.parse(inspect) as { layersMode: string }).layersMode;
    assert.equal(mode, "uncompressed", "the bundle carries uncompressed layers with recipes");
    const first = await push(p, [bundle, `${p.target.host}/site`]);
    assert.ok(first.blobs.uploaded > 0);
    assert.ok(first.blobs.mounted > 0, "a layer two repositories share is mounted, not sent twice");
    for (const r of refs) {
      const got = await registryDigest(p.sk, `${p.target.host}/site/${r}`, ["--creds", CREDS]);
      assert.equal(got, sourceDigests.get(r), `${r}: digest at the target`);
    }
    // containerd pulls every image from the target, with the source's digests
    const ns = "pushed";
    for (const r of refs) {
      await p.ctd.ctrOk(["images", "pull", "--plain-http", "--user", CREDS, `${p.target.host}/site/${r}`], {
        namespace: ns,
        timeoutMs: 120_000,
      });
    }
    const listed = await p.ctd.listImages(ns);
    for (const r of refs) {
      assert.equal(listed.find((i) => i.name === `${p.target.host}/site/${r}`)?.digest, sourceDigests.get(r), r);
    }
  });

  test("a second push sends nothing; --dry-run sends nothing and says what it would", async (t) => {
    const p = ready(t);
    if (!p) return;
    const again = await push(p, [bundle, `${p.target.host}/site`]);
    assert.equal(again.blobs.uploaded, 0);
    assert.equal(again.blobs.mounted, 0);
    assert.equal(again.manifests.put, 0);
    assert.ok(again.manifests.present > 0);

    const before = p.target.requests().length;
    const dry = await push(p, [bundle, `${p.target.host}/dry`, "--dry-run"]);
    const writes = p.target
      .requests()
      .slice(before)
      .filter((r) => ["POST", "PUT", "PATCH"].includes(r.method));
    assert.deepEqual(writes, [], "--dry-run wrote to the registry");
    assert.ok(dry.plan.some((x) => x.kind === "tag" && x.target.endsWith("/dry/test/mixed:1")));
    assert.ok(dry.plan.filter((x) => x.kind === "blob").every((x) => !x.present));
    assert.deepEqual(await tagsOf(p, "dry/test/mixed"), [], "a dry run left a tag");
  });

  test("a target that has some recipe layers: the others, sharing their uncompressed blob, still go up", async (t) => {
    const p = ready(t);
    if (!p) return;
    // test/multi holds layer B twice (pigz for amd64, gzip -9 for arm64): two recipes, one uncompressed tar
    const amd = path.join(work, "multi-amd64.tar.xz");
    await airpackOk([
      "pack",
      `${p.source.host}/test/multi:1`,
      "--platform",
      "linux/amd64",
      "-o",
      amd,
      "--cache",
      path.join(work, "cache"),
      "-q",
    ]);
    await push(p, [amd, `${p.target.host}/partial`]);
    const full = await push(p, [bundle, `${p.target.host}/partial`]);
    assert.ok(full.blobs.present > 0 && full.blobs.uploaded > 0, JSON.stringify(full.blobs));
    const got = await registryDigest(p.sk, `${p.target.host}/partial/test/multi:1`, ["--creds", CREDS]);
    assert.equal(got, sourceDigests.get("test/multi:1"));
  });

  test("a bundle that fails its check stops the push before any tag", async (t) => {
    const p = ready(t);
    if (!p) return;
    // a plain .tar bundle with one byte of its biggest layer changed
    const plain = path.join(work, "plain.tar");
    await airpackOk([
      "pack",
      `${p.source.host}/test/mixed:1`,
      "-o",
      plain,
      "--cache",
      path.join(work, "cache"),
      "--layers",
      "uncompressed",
      "-q",
    ]);
    const bytes = await readFile(plain);
    const members = await tarMembers(plain);
    assert.ok(members.length > 0);
    bytes[bytes.length - 4096] ^= 0xff; // inside the last layer's data, before the end-of-archive blocks
    await writeFile(plain, bytes);
    const r = await runAirpack(["push", plain, `${p.target.host}/broken`, "--username", USER, "--password-stdin"], {
      input: PASSWORD,
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /digest mismatch|corrupt|does not match/i);
    assert.deepEqual(
      await tagsOf(p, "broken/test/mixed"),
      [],
      "a tag points at an image whose bundle failed its check",
    );
  });

  test("a lost answer to a PATCH: a source read again sends that blob again; a bundle says to re-run", async (t) => {
    const p = ready(t);
    if (!p) return;
    // 8 KiB chunks, so layers go up as several PATCHes; the answers to the first two are dropped
    // (distribution's next session state is in the answer: the session is lost with it)
    const env = { AIRPACK_UPLOAD_CHUNK: String(8 * 1024) };
    const layout = path.join(work, "lost-answer-layout");
    await airpackOk(["copy", `bundle:${bundle}`, `oci:${layout}`, "-q"]);
    p.proxy.setFaults([dropAnswer(/\/blobs\/uploads\//, 2, "PATCH")]);
    await airpackOk(
      ["copy", `oci:${layout}`, `docker://${p.proxy.address}/lost`, "--username", USER, "--password-stdin", "-q"],
      { input: PASSWORD, env },
    );
    const patches = p.proxy.requests().filter((r) => r.method === "PATCH");
    assert.ok(patches.filter((r) => r.faults.length > 0).length === 2, "two PATCH answers dropped");
    assert.ok(
      patches.every((r) => /^\d+-\d+$/.test(r.headers["content-range"] ?? "")),
      "PATCH without Content-Range",
    );
    // after each drop the session was asked how far it got, before the blob started again
    const asked = p.proxy.requests().filter((r) => r.method === "GET" && r.path.includes("/blobs/uploads/"));
    assert.ok(asked.length >= 2, "the upload session was never asked");
    for (const r of refs) {
      const got = await registryDigest(p.sk, `${p.target.host}/lost/${r}`, ["--creds", CREDS]);
      assert.equal(got, sourceDigests.get(r), r);
    }

    // a bundle is read once: the push stops, naming the fix, and a re-run finishes it
    p.proxy.setFaults([dropAnswer(/\/blobs\/uploads\//, 1, "PATCH")]);
    const dest = `${p.proxy.address}/lost-bundle`;
    const r = await runAirpack(["push", bundle, dest, "--username", USER, "--password-stdin"], {
      input: PASSWORD,
      env,
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /lost the upload session.*run the push again/);
    p.proxy.setFaults([]);
    await push(p, [bundle, dest], env);
    for (const ref of refs) {
      const got = await registryDigest(p.sk, `${p.target.host}/lost-bundle/${ref}`, ["--creds", CREDS]);
      assert.equal(got, sourceDigests.get(ref), ref);
    }
  });
  test("429 with Retry-After and 503 from the target are waited out and retried", async (t) => {
    const p = ready(t);
    if (!p) return;
    p.proxy.setFaults([
      tooManyRequests(/\/manifests\/sha256:/, 2, 1, "PUT"),
      serviceUnavailable(/\/blobs\/uploads\/$/, 2, "POST"),
      serviceUnavailable(/\/blobs\/uploads\/.+/, 1, "PATCH"),
    ]);
    const started = Date.now();
    await push(p, [bundle, `${p.proxy.address}/busy`], { AIRPACK_UPLOAD_CHUNK: String(8 * 1024) });
    const faulted = p.proxy.requests().filter((r) => r.faults.length > 0);
    assert.ok(faulted.length >= 4, JSON.stringify(faulted.map((r) => [r.method, r.path, r.faults])));
    assert.ok(Date.now() - started >= 1000, "Retry-After was not waited for");
    for (const r of refs) {
      const got = await registryDigest(p.sk, `${p.target.host}/busy/${r}`, ["--creds", CREDS]);
      assert.equal(got, sourceDigests.get(r), r);
    }
  });

  test("killed halfway: no tag points at an incomplete image, and a re-run sends only what is missing", async (t) => {
    const p = ready(t);
    if (!p) return;
    const env = { ...process.env, AIRPACK_UPLOAD_CHUNK: String(64 * 1024) };
    // slow uploads, so the kill lands in the middle of them
    p.proxy.setFaults([delayRequests(/\/blobs\/uploads\//, 150, Infinity, "PATCH")]);
    const dest = `${p.proxy.address}/killed`;
    const child = spawn(
      process.execPath,
      [AIRPACK_BIN, "push", bundle, dest, "--username", USER, "--password-stdin", "-q"],
      {
        env,
        stdio: ["pipe", "ignore", "ignore"],
      },
    );
    child.stdin.end(PASSWORD);
    const deadline = Date.now() + 60_000;
    while (p.proxy.requests().filter((r) => r.method === "PUT" && r.path.includes("/blobs/uploads/")).length < 2) {
      assert.ok(Date.now() < deadline, "the push never got going");
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    const firstRun = p.proxy.requests().filter((r) => r.method === "PUT" && r.path.includes("/blobs/uploads/"));
    for (const r of refs) {
      const repo = `killed/${r.split(":")[0]!}`;
      assert.deepEqual(await tagsOf(p, repo), [], `${repo} has a tag after a killed push`);
    }
    p.proxy.setFaults([]);
    p.proxy.clearRequests();
    await push(p, [bundle, dest], { AIRPACK_UPLOAD_CHUNK: String(64 * 1024) });
    // every blob the first run committed (PUT ?digest=, answered 201) is left alone by the second
    const digestOf = (path: string): string => new URLSearchParams(path.split("?")[1] ?? "").get("digest") ?? "";
    const committed = new Set(
      firstRun.filter((r) => r.status === 201).map((r) => `${r.path.split("/blobs/")[0]} ${digestOf(r.path)}`),
    );
    assert.ok(committed.size > 0, "the first run committed nothing before the kill");
    const resent = p.proxy
      .requests()
      .filter((r) => r.method === "PUT" && committed.has(`${r.path.split("/blobs/")[0]} ${digestOf(r.path)}`));
    assert.deepEqual(
      resent.map((r) => r.path),
      [],
      "blobs of the first run were sent again",
    );
    const sentAgain = p.proxy
      .requests()
      .filter((r) => ["PUT", "PATCH"].includes(r.method) && r.path.includes("/blobs/"));
    t.diagnostic(`first run: ${committed.size} blobs committed; second run: ${sentAgain.length} PUT/PATCH`);
    for (const r of refs) {
      const got = await registryDigest(p.sk, `${p.target.host}/killed/${r}`, ["--creds", CREDS]);
      assert.equal(got, sourceDigests.get(r), r);
    }
  });

  test("a registry with token auth: push asks for pull,push scopes (and the mount's source) and keeps digests", async (t) => {
    const p = ready(t);
    if (!p) return;
    const ts = await startTokenServer({ users: { [USER]: PASSWORD } });
    const reg = await startRegistry({ token: ts.registryAuth });
    try {
      await push(p, [bundle, `${reg.host}/tok`]);
      // the registry's challenge names the actions in either order
      const scopes = ts.issued().flatMap((r) => r.scopes.map((x) => `${x.name}:${[...x.actions].sort().join(",")}`));
      assert.ok(
        scopes.some((x) => x === "tok/test/mixed:pull,push"),
        JSON.stringify(scopes),
      );
      assert.ok(
        ts.issued().some((r) => r.scopes.length === 2 && r.scopes.some((x) => x.actions.join(",") === "pull")),
        `no token for a mount (target pull,push + source pull): ${JSON.stringify(scopes)}`,
      );
      for (const r of refs) {
        const got = await registryDigest(p.sk, `${reg.host}/tok/${r}`, ["--creds", CREDS]);
        assert.equal(got, sourceDigests.get(r), r);
      }
    } finally {
      await reg.stop();
      await ts.stop();
    }
  });

  test("copy: a bundle into an OCI layout with the source's digests, and that layout into a registry", async (t) => {
    const p = ready(t);
    if (!p) return;
    const layout = path.join(work, "copied-layout");
    await airpackOk(["copy", `bundle:${bundle}`, `oci:${layout}`, "-q"]);
    const index = JSON.parse(await readFile(path.join(layout, "index.json"), "utf8")) as {
      manifests: { digest: string; annotations?: Record<string, string> }[];
    };
    for (const r of refs) {
      const entry: { digest: string } | undefined = index.manifests.find(
        (m) => m.annotations?.["io.containerd.image.name"] === `${p.source.host}/${r}`,
      );
      assert.ok(entry, `${r} is not in the layout`);
      assert.equal(entry.digest, sourceDigests.get(r), r);
      const blob = await readFile(path.join(layout, "blobs", "sha256", entry.digest.slice(7)));
      assert.equal(sha256Of(blob), entry.digest);
    }
    // registry to registry, every platform as it is
    await airpackOk(
      [
        "copy",
        `${p.source.host}/test/multi:1`,
        `docker://${p.target.host}/r2r`,
        "--username",
        USER,
        "--password-stdin",
        "-q",
      ],
      { input: PASSWORD },
    );
    const r2r = await registryDigest(p.sk, `${p.target.host}/r2r/test/multi:1`, ["--creds", CREDS]);
    assert.equal(r2r, sourceDigests.get("test/multi:1"));
    await airpackOk(
      ["copy", `oci:${layout}`, `docker://${p.target.host}/from-layout`, "--username", USER, "--password-stdin", "-q"],
      { input: PASSWORD },
    );
    for (const r of refs) {
      const got = await registryDigest(p.sk, `${p.target.host}/from-layout/${r}`, ["--creds", CREDS]);
      assert.equal(got, sourceDigests.get(r), r);
    }
  });
});
