/**
 * End-to-end: `airpack serve` over a digest-preserving .tar.xz bundle, as a read-only registry.
 * skopeo reads the source registry's exact digests from it, skopeo copies from it, and real
 * containerd pulls through a hosts.toml mirror pointing at it after the source registry is gone.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import * as net from "node:net";
import { mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { after, before, describe, test, type TestContext } from "node:test";

import { AIRPACK_BIN, airpackOk, sha256Of } from "../helpers/cli";
import { startContainerd, type Containerd } from "../helpers/peers/containerd";
import { peersUnavailable, runOk, skipOrFail } from "../helpers/peers/process";
import { startRegistry, type Registry } from "../helpers/peers/registry";
import { createSkopeo, type Skopeo } from "../helpers/peers/skopeo";
import { freePort, makeTempDir, removeDir } from "../helpers/peers/temp";
import { pushDockerManifestList, pushFixture, registryDigest } from "../helpers/registry-fixtures";

/** A running `airpack serve`, started with ARGS on a free port; resolves once its log has `until`. */
interface Served {
  child: ChildProcess;
  address: string;
  log: () => string;
  stop: () => Promise<void>;
}

async function startServe(
  args: string[],
  opts: { until?: string; env?: Record<string, string> } = {},
): Promise<Served> {
  const address = `127.0.0.1:${await freePort()}`;
  const child = spawn(process.execPath, [AIRPACK_BIN, "serve", ...args, "--listen", address], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, ...opts.env },
  });
  let log = "";
  child.stderr!.on("data", (c: Buffer) => (log += c.toString("utf8")));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
  };
  const until = opts.until ?? "serving ";
  const deadline = Date.now() + 60_000;
  while (!log.includes(until)) {
    if (Date.now() > deadline || child.exitCode !== null) {
      await stop();
      throw new Error(`serve did not log "${until}":\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, address, log: () => log, stop };
}

/** Blocks of an .xz file as `xz --robot -lvv` lists them: [compressed offset, total size, uncompressed offset, size]. */
async function xzBlocks(file: string): Promise<[number, number, number, number][]> {
  const out = (await runOk("xz", ["--robot", "-lvv", file])).stdout.toString("utf8");
  return out
    .split("\n")
    .filter((l) => l.startsWith("block\t"))
    .map((l) => l.split("\t").map(Number))
    .map((f) => [f[4]!, f[6]!, f[5]!, f[7]!]);
}

describe("serve a bundle as a registry", { timeout: 600_000 }, () => {
  let unavailable: string | null = null;
  let work = "";
  let source: Registry | null = null;
  let sk: Skopeo | null = null;
  let ctd: Containerd | null = null;
  let server: Served | null = null;
  let serving = "";
  let sourceHost = "";
  let cache = "";
  const refs = ["test/mixed:1", "test/multi:1", "test/list:1"];
  const digests = new Map<string, string>();

  before(async () => {
    unavailable = await peersUnavailable(["docker-registry", "skopeo", "containerd", "ctr", "htpasswd"]);
    if (unavailable !== null) return;
    work = await makeTempDir("airpack-e2e-serve");
    source = await startRegistry();
    sk = await createSkopeo();
    ctd = await startContainerd();
    sourceHost = source.host;
    await pushFixture(sk, "mixed", `${sourceHost}/test/mixed:1`);
    await pushFixture(sk, "multi", `${sourceHost}/test/multi:1`);
    await pushDockerManifestList(source.url, "test/list", "1");
    for (const r of refs) digests.set(r, await registryDigest(sk, `${sourceHost}/${r}`));
    const bundle = path.join(work, "site.tar.xz");
    cache = path.join(work, "cache");
    const refArgs = refs.map((r) => `${sourceHost}/${r}`);
    await airpackOk(["pack", ...refArgs, "--all-platforms", "-o", bundle, "--cache", cache, "-q"]);
    // the source is gone: from here on, only the bundle has the images
    await source.stop();
    server = await startServe([bundle, "--cache", cache], { env: { AIRPACK_SERVE_HEADERS_MS: "1500" } });
    serving = server.address;
  });

  after(async () => {
    await server?.stop();
    await ctd?.stop();
    await sk?.cleanup();
    await source?.stop();
    if (work) await removeDir(work);
  });

  /** Real containerd pulls every image through a hosts.toml mirror at `address`; digests as the source's. */
  async function pullThroughMirror(address: string, ns: string): Promise<void> {
    const dir = path.join(work, `certs.d-${ns}`);
    await mkdir(path.join(dir, sourceHost), { recursive: true });
    await writeFile(
      path.join(dir, sourceHost, "hosts.toml"),
      `server = "http://${sourceHost}"\n\n[host."http://${address}"]\n  capabilities = ["pull", "resolve"]\n`,
    );
    for (const r of refs) {
      await ctd!.ctrOk(["images", "pull", "--hosts-dir", dir, `${sourceHost}/${r}`], {
        namespace: ns,
        timeoutMs: 120_000,
      });
    }
    const listed = await ctd!.listImages(ns);
    for (const r of refs) assert.equal(listed.find((i) => i.name === `${sourceHost}/${r}`)?.digest, digests.get(r), r);
  }

  /** The original images as unpack restores them, in an oci-archive (made once). */
  let restoredArchive: Promise<string> | undefined;
  function restored(): Promise<string> {
    return (restoredArchive ??= (async () => {
      const file = path.join(work, "restored.oci.tar");
      await airpackOk(["unpack", path.join(work, "site.tar.xz"), "--format", "oci-archive", "-o", file]);
      return file;
    })());
  }

  /** The damaged blob is named in the log and gets a 500 with no body of it; the config is served. Gives the blobs URL. */
  async function assertRefused(served: Served, victim: string, config: string): Promise<string> {
    assert.match(served.log(), new RegExp(`blob ${victim} failed its check`));
    const base = `http://${served.address}/v2/test/mixed/blobs`;
    const bad = await fetch(`${base}/${victim}`);
    assert.equal(bad.status, 500);
    assert.ok((await bad.text()).length < 200, "a body of the damaged blob was sent");
    assert.equal((await fetch(`${base}/${config}`)).status, 200);
    return base;
  }

  /** The restored images packed anew into OUT (with a cache of its own). */
  async function packRestored(out: string, extra: string[]): Promise<void> {
    const c = `${out}.cache`;
    await airpackOk([
      "pack",
      `oci-archive:${await restored()}`,
      "--all-platforms",
      ...extra,
      "-o",
      out,
      "--cache",
      c,
      "-q",
    ]);
  }

  /** The bundle re-cut by real xz in 64 KiB blocks (the fixtures are far under pack's 8 MiB ones). */
  async function inBlocks(bundle: string, out: string): Promise<string> {
    await runOk("sh", ["-c", `xz -dc "${bundle}" | xz -T2 --block-size=64KiB > "${out}"`]);
    return out;
  }

  /** The restored images packed with their layers kept (no recipes), in 64 KiB xz blocks. */
  let keptBundle: Promise<string> | undefined;
  function keptInBlocks(): Promise<string> {
    return (keptBundle ??= (async () => {
      const kept = path.join(work, "kept.tar.xz");
      await packRestored(kept, ["--layers", "keep"]);
      return inBlocks(kept, path.join(work, "kept-blocks.tar.xz"));
    })());
  }

  function ready(t: TestContext): boolean {
    if (skipOrFail(t, unavailable)) return false;
    return true;
  }

  test("skopeo reads the source registry's digests from it and copies every image", async (t) => {
    if (!ready(t)) return;
    for (const r of refs) {
      assert.equal(await registryDigest(sk!, `${serving}/${r}`), digests.get(r), r);
      await mkdir(path.join(work, "copied"), { recursive: true });
      const dest = `dir:${path.join(work, "copied", r.replace(/[/:]/g, "-"))}`;
      await sk!.copy(`docker://${serving}/${r}`, dest, ["--src-tls-verify=false", "--all", "--preserve-digests"]);
    }
    const catalog = (await (await fetch(`http://${serving}/v2/_catalog`)).json()) as { repositories: string[] };
    assert.deepEqual(catalog.repositories, ["test/list", "test/mixed", "test/multi"]);
  });

  test("containerd pulls through a hosts.toml mirror pointing at it", async (t) => {
    if (!ready(t)) return;
    await pullThroughMirror(serving, "mirror");
  });

  test("hostile requests get errors, never files outside what is served", async (t) => {
    if (!ready(t)) return;
    const base = `http://${serving}`;
    const status = async (p: string, init: RequestInit = {}): Promise<number> => (await fetch(base + p, init)).status;
    const zero = `sha256:${"0".repeat(64)}`;
    assert.equal(await status(`/v2/../../etc/passwd/blobs/${zero}`), 404);
    assert.equal(await status(`/v2/test/mixed/blobs/..%2F..%2Fetc%2Fpasswd`), 404);
    assert.equal(await status(`/v2/test/mixed/manifests/1`, { method: "PUT", body: "{}" }), 405);
    assert.equal(await status(`/v2/test/mixed/blobs/uploads/`, { method: "POST" }), 405);
    const manifest = (await (
      await fetch(`${base}/v2/test/mixed/manifests/1`, {
        headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
      })
    ).json()) as { config: { digest: string }; layers: { digest: string; size: number }[] };
    const layer = manifest.layers[0]!;
    const ranged = await fetch(`${base}/v2/test/mixed/blobs/${layer.digest}`, { headers: { range: "bytes=10-19" } });
    assert.equal(ranged.status, 206);
    assert.equal((await ranged.arrayBuffer()).byteLength, 10);
    for (const bad of [`bytes=${layer.size}-`, "bytes=-0", "bytes=5-2", "bytes=-1-2", "items=0-1"]) {
      assert.equal(await status(`/v2/test/mixed/blobs/${layer.digest}`, { headers: { range: bad } }), 416, bad);
    }
    // a blob of another repository is not served under this one
    assert.equal(await status(`/v2/test/mixed/blobs/${manifest.config.digest}`), 200);
    assert.equal(await status(`/v2/test/list/blobs/${manifest.config.digest}`), 404);
  });

  test("slow and idle clients are cut off and don't starve the others", async (t) => {
    if (!ready(t)) return;
    const [host, port] = serving.split(":") as [string, string];
    const sockets: net.Socket[] = [];
    const closed: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) {
      const s = net.connect(Number(port), host);
      s.on("error", () => undefined);
      s.resume(); // read what the server sends (its 408), so its close is seen
      // a request head that never ends (slowloris), or nothing at all
      if (i % 2 === 0) s.write("GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ");
      closed.push(new Promise((r) => s.once("close", () => r())));
      sockets.push(s);
    }
    const started = Date.now();
    const ok = await fetch(`http://${serving}/v2/test/mixed/tags/list`);
    assert.equal(ok.status, 200);
    assert.ok(Date.now() - started < 1000, "a normal request waited behind the slow ones");
    // the server drops the slow heads after its headers time-out (1.5 s here)
    await Promise.race([
      Promise.all(closed.filter((_, i) => i % 2 === 0)),
      new Promise((_, reject) => setTimeout(() => reject(new Error("slow clients were never cut off")), 10_000)),
    ]);
    for (const s of sockets) s.destroy();
    assert.equal(server?.child.exitCode, null, "the server died");
  });

  test("a plain .tar bundle with nothing to restore is served in place, from its own bytes", async (t) => {
    if (!ready(t)) return;
    // the original layers, as unpack restores them, packed as they are into a plain .tar (no recipes)
    const plain = path.join(work, "plain.tar");
    await packRestored(plain, []);
    const own = path.join(work, "cache-in-place");
    const served = await startServe([plain, "--cache", own]);
    try {
      assert.match(served.log(), /served in place/);
      assert.deepEqual(await readdir(path.join(own, "serve")), [], "a copy was made");
      for (const r of refs) assert.equal(await registryDigest(sk!, `${served.address}/${r}`), digests.get(r), r);
      const dest = `dir:${path.join(work, "copied-in-place")}`;
      await mkdir(path.join(work, "copied-in-place"), { recursive: true });
      await sk!.copy(`docker://${served.address}/test/mixed:1`, dest, ["--src-tls-verify=false", "--preserve-digests"]);
    } finally {
      await served.stop();
    }
  });

  test("a damaged layer in a plain .tar is refused with a 500 and a log line; the rest is served", async (t) => {
    if (!ready(t)) return;
    const plain = path.join(work, "plain.tar");
    const damaged = path.join(work, "damaged.tar");
    const bytes = await readFile(plain);
    const manifest = (await (
      await fetch(`http://${serving}/v2/test/mixed/manifests/1`, {
        headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
      })
    ).json()) as { config: { digest: string }; layers: { digest: string; size: number }[] };
    const victim = manifest.layers[0]!;
    // GNU tar says where the member's header is; its data starts one block later
    const listing = (await runOk("tar", ["--block-number", "-tvf", plain])).stdout.toString("utf8");
    const line = listing.split("\n").find((l) => l.endsWith(`blobs/sha256/${victim.digest.slice(7)}`));
    const block = Number(/^block (\d+):/.exec(line ?? "")?.[1]);
    assert.ok(Number.isInteger(block), listing);
    bytes[(block + 1) * 512 + Math.floor(victim.size / 2)] ^= 0xff;
    await writeFile(damaged, bytes);
    const served = await startServe([damaged, "--cache", cache], { until: "checked out" });
    try {
      const base = await assertRefused(served, victim.digest, manifest.config.digest);
      const other = manifest.layers[1]!;
      const good = await fetch(`${base}/${other.digest}`);
      assert.equal(good.status, 200);
      assert.equal(sha256Of(Buffer.from(await good.arrayBuffer())), other.digest);
    } finally {
      await served.stop();
    }
  });

  test("--htpasswd: 401 without credentials, pulls with them", async (t) => {
    if (!ready(t)) return;
    const file = path.join(work, "htpasswd");
    const line = (await runOk("htpasswd", ["-Bbn", "site", "s3cret"])).stdout.toString("utf8").trim();
    await writeFile(file, `${line}\n`);
    const served = await startServe([path.join(work, "site.tar.xz"), "--cache", cache, "--htpasswd", file]);
    try {
      const anon = await fetch(`http://${served.address}/v2/test/mixed/manifests/1`);
      assert.equal(anon.status, 401);
      assert.match(anon.headers.get("www-authenticate") ?? "", /^Basic /);
      const wrong = await fetch(`http://${served.address}/v2/`, {
        headers: { authorization: `Basic ${Buffer.from("site:nope").toString("base64")}` },
      });
      assert.equal(wrong.status, 401);
      const got = await registryDigest(sk!, `${served.address}/test/mixed:1`, ["--creds", "site:s3cret"]);
      assert.equal(got, digests.get("test/mixed:1"));
    } finally {
      await served.stop();
    }
  });

  test("a .tar.xz recipe bundle in blocks is served from its blocks, never unpacked", async (t) => {
    if (!ready(t)) return;
    const bundle = await inBlocks(path.join(work, "site.tar.xz"), path.join(work, "site-blocks.tar.xz"));
    assert.ok((await xzBlocks(bundle)).length > 4, "the bundle is not in blocks");
    const own = path.join(work, "cache-xz");
    const served = await startServe([bundle, "--cache", own]);
    try {
      assert.match(served.log(), /served in place from its xz blocks; 0 blobs failed/);
      assert.deepEqual(await readdir(path.join(own, "serve")), [], "the bundle was unpacked");
      // Only the offsets (and the small JSON documents) are kept: far less than the tar.
      const tarBytes = (await xzBlocks(bundle)).reduce((n, b) => n + b[3], 0);
      const kept = (await runOk("du", ["-sb", own])).stdout.toString("utf8");
      assert.ok(Number(kept.split("\t")[0]) < tarBytes / 4, `cache ${kept} for a ${tarBytes}-byte tar`);
      for (const r of refs) assert.equal(await registryDigest(sk!, `${served.address}/${r}`), digests.get(r), r);
      assert.match(served.log(), /served in place from its xz blocks/);
      for (const r of refs) {
        const dest = path.join(work, "copied-xz", r.replace(/[/:]/g, "-"));
        await mkdir(dest, { recursive: true });
        await sk!.copy(`docker://${served.address}/${r}`, `dir:${dest}`, [
          "--src-tls-verify=false",
          "--all",
          "--preserve-digests",
        ]);
      }
      await pullThroughMirror(served.address, "mirror-xz");
      const manifest = (await (
        await fetch(`http://${served.address}/v2/test/mixed/manifests/1`, {
          headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
        })
      ).json()) as { layers: { digest: string; size: number }[] };
      const layer = manifest.layers[0]!;
      const whole = Buffer.from(
        await (await fetch(`http://${served.address}/v2/test/mixed/blobs/${layer.digest}`)).arrayBuffer(),
      );
      assert.equal(sha256Of(whole), layer.digest);
      const ranged = await fetch(`http://${served.address}/v2/test/mixed/blobs/${layer.digest}`, {
        headers: { range: "bytes=1000-70999" },
      });
      assert.equal(ranged.status, 206);
      assert.ok(Buffer.from(await ranged.arrayBuffer()).equals(whole.subarray(1000, 71000)));
      assert.deepEqual(await readdir(path.join(own, "serve")), [], "the bundle was unpacked");
    } finally {
      await served.stop();
    }
  });

  test("a damaged xz block refuses the blob in it with a 500 and a log line; the rest is served", async (t) => {
    if (!ready(t)) return;
    const bundle = await keptInBlocks();
    const tar = path.join(work, "blocked.tar");
    await runOk("sh", ["-c", `xz -dc "${bundle}" > "${tar}"`]);
    const listing = (await runOk("tar", ["--block-number", "-tvf", tar])).stdout.toString("utf8");
    const at = (digest: string): number => {
      const line = listing.split("\n").find((l) => l.endsWith(`blobs/sha256/${digest.slice(7)}`));
      return (Number(/^block (\d+):/.exec(line ?? "")?.[1]) + 1) * 512;
    };
    const served0 = await startServe([bundle, "--cache", path.join(work, "cache-xz")]);
    const manifest = (await (
      await fetch(`http://${served0.address}/v2/test/mixed/manifests/1`, {
        headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
      })
    ).json()) as { config: { digest: string }; layers: { digest: string; size: number }[] };
    await served0.stop();
    // the largest layer; a byte in the middle of the block that holds its middle
    const victim = [...manifest.layers].sort((x, y) => y.size - x.size)[0]!;
    const middle = at(victim.digest) + Math.floor(victim.size / 2);
    const blocks = await xzBlocks(bundle);
    const hit = blocks.find(([, , u, n]) => u <= middle && middle < u + n)!;
    const bytes = await readFile(bundle);
    bytes[hit[0] + Math.floor(hit[1] / 2)] ^= 0xff;
    const damaged = path.join(work, "damaged-block.tar.xz");
    await writeFile(damaged, bytes);
    const served = await startServe([damaged, "--cache", path.join(work, "cache-damaged-xz")]);
    try {
      const base = await assertRefused(served, victim.digest, manifest.config.digest);
      // a layer that has no byte in the damaged block
      const apart = manifest.layers.find((l) => at(l.digest) + l.size <= hit[2] || at(l.digest) >= hit[2] + hit[3]);
      assert.ok(apart, "every layer shares the damaged block");
      const good = await fetch(`${base}/${apart.digest}`);
      assert.equal(good.status, 200);
      assert.equal(sha256Of(Buffer.from(await good.arrayBuffer())), apart.digest);
    } finally {
      await served.stop();
    }
  });

  test("SIGTERM stops it and removes its verified layouts", async (t) => {
    if (!ready(t)) return;
    const started = Date.now();
    await server!.stop();
    assert.ok(Date.now() - started < 3000, "serve took over 3 s to stop");
    assert.deepEqual(await readdir(path.join(cache, "serve")), []);
  });
});
