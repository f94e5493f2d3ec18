/**
 * Smoke test of the e2e harness (test/helpers/peers/) against the real
 * containerd/ctr, podman, skopeo, registry and docker, without any airpack code.
 */
import assert from "node:assert/strict";
import { createReadStream } from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { after, before, describe, test, type TestContext } from "node:test";

import { parseCtrImages, startContainerd } from "../helpers/peers/containerd";
import { startDocker } from "../helpers/peers/docker";
import { buildTinyOciLayout, digestOf, tarLayout, type TinyImage } from "../helpers/peers/oci-builders";
import { createPodman } from "../helpers/peers/podman";
import { CommandError, missingTools, run, runOk } from "../helpers/peers/process";
import { makeSelfSignedCert, parseRegistryAccessLog, startRegistry } from "../helpers/peers/registry";
import { createSkopeo, skopeo } from "../helpers/peers/skopeo";
import { freePort, makeTempDir, removeDir } from "../helpers/peers/temp";

const NAME = "docker.io/library/smoke:1";
const TIMEOUT = 180_000;

function isAlive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(
    () => true,
    () => false,
  );
}

/** Skips the test (returns true) when a needed program is missing or we are not root. */
async function skipUnless(t: TestContext, tools: string[]): Promise<boolean> {
  const missing = await missingTools(tools);
  if (missing.length > 0) {
    t.skip(`missing: ${missing.join(", ")}`);
    return true;
  }
  if (typeof process.getuid === "function" && process.getuid() !== 0) {
    t.skip("needs root");
    return true;
  }
  return false;
}

describe("process helpers", () => {
  test("run never rejects on a non-zero exit; runOk throws with stderr", async () => {
    const r = await run("sh", ["-c", "printf out; printf err >&2; exit 3"]);
    assert.equal(r.code, 3);
    assert.equal(r.stdout.toString(), "out");
    assert.equal(r.stderr, "err");
    await assert.rejects(runOk("sh", ["-c", "echo boom >&2; exit 1"]), (e: unknown) => {
      assert.ok(e instanceof CommandError);
      assert.equal(e.result.code, 1);
      assert.match(e.message, /boom/);
      return true;
    });
  });

  test("run feeds Buffer, string and stream input", async () => {
    assert.equal((await runOk("cat", [], { input: Buffer.from("buf") })).stdout.toString(), "buf");
    assert.equal((await runOk("cat", [], { input: "str" })).stdout.toString(), "str");
    const dir = await makeTempDir("airpack-run-test");
    try {
      const f = path.join(dir, "in.txt");
      await fs.writeFile(f, "x".repeat(1 << 20));
      const r = await runOk("wc", ["-c"], { input: createReadStream(f) });
      assert.equal(r.stdout.toString().trim(), String(1 << 20));
      // a child that exits without reading its input must not break run()
      assert.equal((await run("true", [], { input: createReadStream(f) })).code, 0);
    } finally {
      await removeDir(dir);
    }
  });

  test("run rejects on spawn failure and on timeout", async () => {
    await assert.rejects(run("/nonexistent/airpack-no-such-program", []), /cannot run/);
    await assert.rejects(run("sleep", ["10"], { timeoutMs: 200 }), /timed out/);
  });

  test("freePort gives distinct usable ports", async () => {
    const a = await freePort();
    const b = await freePort();
    assert.ok(a > 0 && b > 0);
  });

  test("parseCtrImages reads the tabwriter columns", () => {
    const text = [
      "REF                       TYPE                                    DIGEST                                                                  SIZE    PLATFORMS               LABELS ",
      "docker.io/library/multi:1 application/vnd.oci.image.index.v1+json sha256:61e51db367ddd57776e06b6419b6294cb681b0f6dbf7c5f62d59630963dc8839 1.2 KiB linux/amd64,linux/arm64 -      ",
      "",
    ].join("\n");
    assert.deepEqual(parseCtrImages(text), [
      {
        name: "docker.io/library/multi:1",
        mediaType: "application/vnd.oci.image.index.v1+json",
        digest: "sha256:61e51db367ddd57776e06b6419b6294cb681b0f6dbf7c5f62d59630963dc8839",
        size: "1.2 KiB",
        platforms: ["linux/amd64", "linux/arm64"],
        labels: "-",
      },
    ]);
    assert.deepEqual(parseCtrImages("REF TYPE DIGEST SIZE PLATFORMS LABELS \n"), []);
  });

  test("parseRegistryAccessLog reads access-log lines only", () => {
    const log = [
      'time="2026-11-22T13:33:26Z" level=info msg="response completed" http.request.method=GET',
      '127.0.0.1 - - [22/Nov/2026:13:33:26 +0000] "GET /v2/smoke/blobs/sha256:' +
        "a".repeat(64) +
        ' HTTP/1.1" 200 159 "" "skopeo/1.9.3"',
    ].join("\n");
    assert.deepEqual(parseRegistryAccessLog(log), [
      {
        method: "GET",
        path: `/v2/smoke/blobs/sha256:${"a".repeat(64)}`,
        status: 200,
        userAgent: "skopeo/1.9.3",
      },
    ]);
  });
});

describe("real peers", { timeout: 600_000 }, () => {
  let work = "";
  let image: TinyImage;
  let imageTar = "";

  before(async () => {
    work = await makeTempDir("airpack-peers-smoke");
    image = await buildTinyOciLayout(path.join(work, "layout"), {
      containerdName: NAME,
      refName: "1",
    });
    imageTar = path.join(work, "smoke.tar");
    await tarLayout(image.layoutDir, imageTar);
  });

  after(async () => {
    if (work) await removeDir(work);
  });

  test("containerd: ctr images import (path and stdin) and images ls", { timeout: TIMEOUT }, async (t) => {
    if (await skipUnless(t, ["containerd", "ctr", "tar", "gzip"])) return;
    const ctd = await startContainerd();
    t.after(() => ctd.stop());
    assert.ok(isAlive(ctd.pid));

    await ctd.importImage(imageTar);
    let rows = await ctd.listImages();
    const row = rows.find((r) => r.name === NAME);
    assert.ok(row, `imported image not listed: ${JSON.stringify(rows)}`);
    assert.equal(row.digest, image.manifestDigest);
    assert.equal(row.mediaType, "application/vnd.oci.image.manifest.v1+json");
    assert.deepEqual(row.platforms, ["linux/amd64"]);
    const check = await ctd.ctrOk(["images", "check"]);
    assert.match(check.stdout.toString(), /complete/);

    await ctd.removeImages([NAME]);
    assert.deepEqual(await ctd.listImages(), []);

    // same tar through stdin, into another namespace
    await ctd.importImage(createReadStream(imageTar), {
      namespace: "airpack-test",
    });
    rows = await ctd.listImages("airpack-test");
    assert.deepEqual(
      rows.map((r) => [r.name, r.digest]),
      [[NAME, image.manifestDigest]],
    );
    assert.deepEqual(await ctd.listImages(), []);

    // a gzip-compressed tar is refused, and importImage reports it
    const gz = path.join(work, "smoke.tar.gz");
    await fs.writeFile(gz, (await runOk("gzip", ["-c", imageTar])).stdout);
    await assert.rejects(ctd.importImage(gz), /invalid tar header/);
    const failed = await ctd.importImage(gz, { check: false });
    assert.notEqual(failed.code, 0);

    const pid = ctd.pid;
    const dir = ctd.dir;
    await ctd.stop();
    await ctd.stop(); // idempotent
    assert.equal(isAlive(pid), false);
    assert.equal(await exists(dir), false);
  });

  test("podman: load an OCI archive (path and stdin), images, inspect", { timeout: TIMEOUT }, async (t) => {
    if (await skipUnless(t, ["podman", "tar", "gzip"])) return;
    const podman = await createPodman();
    t.after(() => podman.cleanup());

    const loaded = await podman.load(imageTar);
    assert.deepEqual(loaded.loaded, [NAME]);
    const images = await podman.images();
    assert.equal(images.length, 1);
    const [img] = images;
    assert.ok(img);
    assert.deepEqual(img.names, [NAME]);
    assert.equal(img.digest, image.manifestDigest);
    assert.equal(`sha256:${img.id}`, image.configDigest);

    const inspect = await podman.imageInspect(NAME);
    assert.equal(inspect.Digest, image.manifestDigest);
    assert.deepEqual(inspect.RepoTags, [NAME]);
    assert.deepEqual(inspect.RootFS?.Layers, [image.diffId]);
    assert.equal(inspect.Architecture, "amd64");

    await podman.removeAllImages();
    assert.deepEqual(await podman.images(), []);
    const fromStdin = await podman.load(createReadStream(imageTar));
    assert.deepEqual(fromStdin.loaded, [NAME]);

    // storage really is in the temp root
    assert.ok(await exists(path.join(podman.root, "vfs-images")));
    const dir = podman.dir;
    await podman.cleanup();
    await podman.cleanup();
    assert.equal(await exists(dir), false);
  });

  test("docker: load a docker archive (path and stdin), images, inspect; stop()", { timeout: TIMEOUT }, async (t) => {
    if (await skipUnless(t, ["dockerd", "docker", "containerd", "ctr", "unshare", "tar", "gzip"])) return;
    // docker 20.10 reads docker's manifest.json only: add one to a copy of the tiny layout
    const layout = path.join(work, "docker-layout");
    await fs.cp(image.layoutDir, layout, { recursive: true });
    const blob = (digest: string): string => `blobs/sha256/${digest.slice("sha256:".length)}`;
    const entry = { Config: blob(image.configDigest), RepoTags: [NAME], Layers: [blob(image.layerDigest)] };
    await fs.writeFile(path.join(layout, "manifest.json"), JSON.stringify([entry]));
    const archive = path.join(work, "smoke.docker.tar");
    await runOk("tar", ["-C", layout, "-cf", archive, "oci-layout", "index.json", "manifest.json", "blobs"]);

    const docker = await startDocker();
    t.after(() => docker.stop());
    assert.ok(isAlive(docker.pid));
    assert.ok(isAlive(docker.containerd.pid));
    const loaded = await docker.load(archive);
    assert.deepEqual(loaded.loaded, ["smoke:1"], "docker shows docker.io/library/smoke:1 as smoke:1");
    assert.deepEqual(await docker.images(), [{ repository: "smoke", tag: "1", id: image.configDigest }]);
    const inspect = await docker.inspect("smoke:1");
    assert.equal(inspect.Id, image.configDigest);
    assert.deepEqual(inspect.RepoTags, ["smoke:1"]);
    assert.deepEqual(inspect.RepoDigests, []);
    assert.deepEqual(inspect.RootFS?.Layers, [image.diffId]);

    await docker.removeAllImages();
    assert.deepEqual(await docker.images(), []);
    const fromStdin = await docker.load(createReadStream(archive));
    assert.deepEqual(fromStdin.loaded, ["smoke:1"]);
    // without manifest.json (a plain OCI archive) docker 20.10 loads nothing
    const refused = await docker.load(imageTar, { check: false });
    assert.notEqual(refused.code, 0);

    // storage really is in the temp dir
    assert.ok(await exists(path.join(docker.dir, "data", "vfs")));
    const pids = [docker.pid, docker.containerd.pid];
    const dirs = [docker.dir, docker.containerd.dir];
    await docker.stop();
    await docker.stop(); // idempotent
    for (const pid of pids) assert.equal(isAlive(pid), false);
    for (const dir of dirs) assert.equal(await exists(dir), false);
  });

  test("skopeo: inspect oci-archive and oci layout", { timeout: TIMEOUT }, async (t) => {
    if (await skipUnless(t, ["skopeo", "tar", "gzip"])) return;
    const sk = await createSkopeo();
    t.after(() => sk.cleanup());

    const info = await sk.inspect(`oci-archive:${imageTar}`);
    assert.ok(typeof info === "object" && info !== null && "Digest" in info);
    assert.equal(info.Digest, image.manifestDigest);

    const raw = await sk.inspectRawBytes(`oci:${image.layoutDir}:1`);
    assert.equal(digestOf(raw), image.manifestDigest);

    // the one-shot wrapper
    const r = await skopeo(["inspect", "--raw", `oci-archive:${imageTar}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(digestOf(r.stdout), image.manifestDigest);
    const bad = await skopeo(["inspect", `oci-archive:${path.join(work, "missing.tar")}`]);
    assert.notEqual(bad.code, 0);
  });

  test("registry: skopeo copy to it, inspect back, count blob GETs", { timeout: TIMEOUT }, async (t) => {
    if (await skipUnless(t, ["docker-registry", "skopeo", "tar", "gzip"])) return;
    const registry = await startRegistry();
    t.after(() => registry.stop());
    const sk = await createSkopeo();
    t.after(() => sk.cleanup());
    assert.match(registry.host, /^127\.0\.0\.1:\d+$/);
    assert.equal(registry.url, `http://${registry.host}`);

    await sk.copy(`oci:${image.layoutDir}:1`, `docker://${registry.host}/smoke:1`, ["--dest-tls-verify=false"]);
    const raw = await sk.inspectRawBytes(`docker://${registry.host}/smoke:1`, { tlsVerify: false });
    assert.equal(digestOf(raw), image.manifestDigest);
    assert.ok(
      registry.requests().some((r) => r.method === "PUT" && r.path === "/v2/smoke/manifests/1" && r.status === 201),
    );
    assert.equal(registry.blobGets().length, 0);

    await sk.copy(`docker://${registry.host}/smoke:1`, `oci:${path.join(work, "pulled")}:1`, [
      "--src-tls-verify=false",
    ]);
    const gets = registry.blobGets("smoke");
    assert.deepEqual(gets.map((g) => g.path.split("/").pop()).sort(), [image.configDigest, image.layerDigest].sort());

    const pid = registry.pid;
    const dir = registry.dir;
    await registry.stop();
    await registry.stop();
    assert.equal(isAlive(pid), false);
    assert.equal(await exists(dir), false);
  });

  test("registry with htpasswd and TLS", { timeout: TIMEOUT }, async (t) => {
    if (await skipUnless(t, ["docker-registry", "skopeo", "htpasswd", "openssl"])) return;
    const cert = await makeSelfSignedCert();
    t.after(() => cert.cleanup());
    const registry = await startRegistry({
      htpasswd: { user: "alice", password: "s3cret" },
      tls: { certFile: cert.certFile, keyFile: cert.keyFile },
    });
    t.after(() => registry.stop());
    const sk = await createSkopeo();
    t.after(() => sk.cleanup());
    assert.equal(registry.url, `https://${registry.host}`);

    const dest = `docker://${registry.host}/smoke:1`;
    const src = `oci:${image.layoutDir}:1`;
    const noCreds = await sk.run(["copy", "--dest-cert-dir", cert.certDir, src, dest]);
    assert.notEqual(noCreds.code, 0);
    assert.match(noCreds.stderr, /unauthorized|authentication required/i);
    await sk.copy(src, dest, ["--dest-cert-dir", cert.certDir, "--dest-creds", "alice:s3cret"]);
    const raw = await sk.inspectRawBytes(dest, {
      extraArgs: ["--cert-dir", cert.certDir, "--creds", "alice:s3cret"],
    });
    assert.equal(digestOf(raw), image.manifestDigest);
  });
});
