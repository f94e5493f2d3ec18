/**
 * End-to-end: airpack packs images from a real registry without auth (CNCF
 * distribution, images pushed from the fixtures with skopeo or plain HTTP),
 * and the bundles are imported with real ctr and podman. Expected digests come
 * from `skopeo inspect --raw` of the registry's images, hashed here.
 * Also: -f image lists, and the store as a cache (no blob GETs when warm).
 */
import assert from "node:assert/strict";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { after, before, describe, test, type TestContext } from "node:test";

import {
  REF_NAME,
  airpackOk,
  asIndex,
  assertSnapshotsFor,
  isIndexMediaType,
  layoutImages,
  pack,
  readLayoutIndex,
  runAirpack,
  sha256Of,
  tarMember,
  tarMembers,
} from "../helpers/cli";
import { startContainerd, type Containerd } from "../helpers/peers/containerd";
import { createPodman, type Podman } from "../helpers/peers/podman";
import { peersUnavailable, runOk, skipOrFail } from "../helpers/peers/process";
import { startRegistry, type Registry } from "../helpers/peers/registry";
import { createSkopeo, type Skopeo } from "../helpers/peers/skopeo";
import { makeTempDir, removeDir } from "../helpers/peers/temp";
import {
  assertStoreConsistent,
  blobGetsSince,
  inspectBundle,
  layoutBlob,
  layoutIndexChildren,
  pushDockerManifestList,
  pushFixture,
  registryDigest,
  settledRequests,
  storeBlobs,
  type DockerListPush,
} from "../helpers/registry-fixtures";

const TIMEOUT = 120_000;

interface Peers {
  reg: Registry;
  sk: Skopeo;
  ctd: Containerd;
  podman: Podman;
}

/** What the registry serves, read with skopeo. */
interface Served {
  mixed: string;
  multi: string;
  /** Children of test/multi:1 by platform ("linux/amd64", "linux/arm64/v8"). */
  multiChildren: Map<string, string>;
  list: DockerListPush;
}

function platformKey(p: { os: string; architecture: string; variant?: string } | undefined): string {
  return p ? [p.os, p.architecture, p.variant].filter(Boolean).join("/") : "";
}

describe("registry without auth: pack, then ctr import and podman load", { timeout: 600_000 }, () => {
  let unavailable: string | null = null;
  let peers: Peers | null = null;
  let work = "";
  let host = "";
  const served: Served = {
    mixed: "",
    multi: "",
    multiChildren: new Map(),
    list: {
      listDigest: "",
      listBytes: Buffer.alloc(0),
      amd64: { digest: "", configDigest: "", diffIds: [] },
      arm64: { digest: "", configDigest: "", diffIds: [] },
    },
  };
  const diffIds = new Map<string, string[]>();
  let mixedConfig = "";

  before(async () => {
    unavailable = await peersUnavailable(["docker-registry", "skopeo", "containerd", "ctr", "podman"]);
    if (unavailable !== null) return;
    work = await makeTempDir("airpack-e2e-regpull");
    const reg = await startRegistry();
    const sk = await createSkopeo();
    const ctd = await startContainerd();
    const podman = await createPodman();
    peers = { reg, sk, ctd, podman };
    host = reg.host;
    await pushFixture(sk, "mixed", `${host}/test/mixed:1`);
    await pushFixture(sk, "multi", `${host}/test/multi:1`);
    served.list = await pushDockerManifestList(reg.url, "test/list", "1");

    served.mixed = await registryDigest(sk, `${host}/test/mixed:1`);
    const multiRaw = await sk.inspectRawBytes(`docker://${host}/test/multi:1`, { tlsVerify: false });
    served.multi = sha256Of(multiRaw);
    for (const child of asIndex(JSON.parse(multiRaw.toString("utf8")) as unknown).manifests) {
      served.multiChildren.set(platformKey(child.platform), child.digest);
    }
    assert.equal(await registryDigest(sk, `${host}/test/list:1`), served.list.listDigest);
    // diff_ids of the image configs, from the fixtures, to check containerd's snapshots
    diffIds.set(served.mixed, await diffIdsOf(served.mixed));
    mixedConfig = (JSON.parse((await layoutBlob(served.mixed)).toString("utf8")) as { config: { digest: string } })
      .config.digest;
    for (const child of await layoutIndexChildren("multi")) diffIds.set(child.digest, await diffIdsOf(child.digest));
  });

  after(async () => {
    await peers?.ctd.stop();
    await peers?.podman.cleanup();
    await peers?.sk.cleanup();
    await peers?.reg.stop();
    if (work) await removeDir(work);
  });

  function ready(t: TestContext): Peers | null {
    if (skipOrFail(t, unavailable)) return null;
    assert.ok(peers);
    return peers;
  }

  async function importCtr(p: Peers, bundle: string, ns: string, allPlatforms = false): Promise<void> {
    const tar = await airpackOk(["unpack", bundle, "-o", "-"]);
    await p.ctd.importImage(tar.stdout, { namespace: ns, allPlatforms });
  }

  test("mixed layers, digest-pinned, tag+digest and a Docker manifest list", { timeout: TIMEOUT }, async (t) => {
    const p = ready(t);
    if (!p) return;
    const refs = {
      tag: `${host}/test/mixed:1`,
      pinned: `${host}/test/mixed@${served.mixed}`,
      tagDigest: `${host}/test/multi:1@${served.multi}`,
      list: `${host}/test/list:1`,
    };
    const bundle = path.join(work, "pull.tar.zst");
    const cache = path.join(work, "cache-pull");
    await pack(Object.values(refs), bundle, cache);
    await airpackOk(["verify", bundle]);

    const images = await inspectBundle(bundle);
    const byName = new Map(images.map((i) => [i.name, i]));
    assert.deepEqual(
      [...byName.keys()].sort(),
      [refs.tag, refs.pinned, `${host}/test/multi:1`, refs.list].sort(),
      "image names",
    );
    const amd = served.multiChildren.get("linux/amd64") ?? "";
    // a single manifest: packed as the registry serves it
    assert.equal(byName.get(refs.tag)?.digest, served.mixed);
    assert.equal(byName.get(refs.pinned)?.digest, served.mixed);
    // an index, host platform only: the platform manifest is the registry's
    const multi = byName.get(`${host}/test/multi:1`);
    assert.equal(multi?.sourceDigest, served.multi);
    assert.deepEqual(
      multi?.platforms.map((x) => x.digest),
      [amd],
    );
    const list = byName.get(refs.list);
    assert.equal(list?.sourceDigest, served.list.listDigest);
    assert.deepEqual(
      list?.platforms.map((x) => x.digest),
      [served.list.amd64.digest],
    );
    // the layers: gzip and zstd and uncompressed, all kept
    const mixedLayers = byName.get(refs.tag)?.platforms[0]?.layers ?? [];
    assert.deepEqual(
      mixedLayers.map((l) => l.mode),
      ["kept", "kept", "kept", "kept", "kept"],
    );
    assert.ok(mixedLayers.some((l) => l.mediaType.endsWith("+zstd")));
    assert.ok(mixedLayers.some((l) => l.mediaType.endsWith("+gzip")));

    // containerd
    const ns = "reg-pull";
    await importCtr(p, bundle, ns);
    const rows = await p.ctd.listImages(ns);
    const row = (name: string): { digest: string } => {
      const r = rows.find((x) => x.name === name);
      assert.ok(r, `ctr has no ${name}: ${JSON.stringify(rows.map((x) => x.name))}`);
      return r;
    };
    assert.equal(row(refs.tag).digest, served.mixed);
    assert.equal(row(refs.pinned).digest, served.mixed);
    assert.equal(row(`${host}/test/multi:1`).digest, multi?.digest);
    assert.equal(row(refs.list).digest, list?.digest);
    for (const name of [refs.tag, `${host}/test/multi:1`, refs.list]) {
      // the index as containerd stores it lists only the platform that was packed
      const top = row(name).digest;
      const bytes: Buffer = (await p.ctd.ctrOk(["content", "get", top], { namespace: ns })).stdout;
      assert.equal(sha256Of(bytes), top);
    }
    const listIndex = asIndex(
      JSON.parse(
        (await p.ctd.ctrOk(["content", "get", row(refs.list).digest], { namespace: ns })).stdout.toString("utf8"),
      ) as unknown,
    );
    assert.deepEqual(
      listIndex.manifests.map((m) => m.digest),
      [served.list.amd64.digest],
    );
    const check = (await p.ctd.ctrOk(["images", "check"], { namespace: ns })).stdout.toString("utf8");
    for (const name of [refs.tag, `${host}/test/multi:1`, refs.list]) {
      const line = check.split("\n").find((l) => l.startsWith(`${name} `));
      assert.match(line ?? "", /\bcomplete\b/, check);
    }
    await assertSnapshotsFor(p.ctd, ns, [
      { ref: refs.tag, diffIds: diffIds.get(served.mixed) ?? [] },
      { ref: `${host}/test/multi:1`, diffIds: diffIds.get(amd) ?? [] },
      { ref: refs.list, diffIds: served.list.amd64.diffIds },
    ]);

    // podman: one image per oci-archive keeps the OCI manifest digest
    const single = path.join(work, "pull-mixed.tar");
    await pack([refs.tag], single, cache, ["-q"]);
    const archive = path.join(work, "pull-mixed.oci.tar");
    await airpackOk(["unpack", single, "--format", "oci-archive", "-o", archive]);
    const loaded = await p.podman.load(archive);
    assert.deepEqual(loaded.loaded, [refs.tag]);
    const inspected = await p.podman.imageInspect(refs.tag);
    assert.equal(inspected.Digest, served.mixed);
    assert.deepEqual(inspected.RootFS?.Layers, diffIds.get(served.mixed));
    // ... and several images as one docker archive (podman needs it for more than one image)
    const several = path.join(work, "pull-several.tar");
    await pack([refs.tag, refs.tagDigest, refs.list], several, cache, ["-q"]);
    const dockerTar = path.join(work, "pull-several.docker.tar");
    await airpackOk(["unpack", several, "--format", "docker-archive", "-o", dockerTar]);
    const all = await p.podman.load(dockerTar);
    for (const name of [refs.tag, `${host}/test/multi:1`, refs.list]) {
      assert.ok(all.loaded.includes(name), `podman did not load ${name}: ${all.loaded.join(", ")}`);
    }
    assert.equal(`sha256:${(await p.podman.imageInspect(refs.tag)).Id}`, mixedConfig);
    assert.deepEqual((await p.podman.imageInspect(refs.list)).RootFS?.Layers, served.list.amd64.diffIds);
    assert.deepEqual((await p.podman.imageInspect(`${host}/test/multi:1`)).RootFS?.Layers, diffIds.get(amd));
    await p.podman.removeAllImages();
  });

  test("a digest-pinned image next to others: the docker archive loads in podman", { timeout: TIMEOUT }, async (t) => {
    const p = ready(t);
    if (!p) return;
    const tagged = `${host}/test/list:1`;
    const pinned = `${host}/test/mixed@${served.mixed}`;
    const bundle = path.join(work, "pinned.tar");
    await pack([tagged, pinned], bundle, path.join(work, "cache-pinned"));
    const dockerTar = path.join(work, "pinned.docker.tar");
    await airpackOk(["unpack", bundle, "--format", "docker-archive", "-o", dockerTar]);
    // docker's manifest.json: a digest-only name has no tag, so it cannot be a RepoTags entry
    const entries = JSON.parse((await tarMember(dockerTar, "manifest.json")).toString("utf8")) as {
      RepoTags: string[] | null;
    }[];
    const repoTags = entries.flatMap((e) => e.RepoTags ?? []);
    for (const tag of repoTags) {
      assert.match(tag, /:[\w][\w.-]{0,127}$/, `RepoTags entry without a tag: ${JSON.stringify(repoTags)}`);
    }
    const loaded = await p.podman.load(dockerTar, { check: false });
    try {
      assert.equal(loaded.code, 0, loaded.stderr);
      assert.ok(loaded.loaded.includes(tagged), loaded.stdout.toString("utf8"));
      const ids = (await p.podman.images()).map((i) => `sha256:${i.id}`);
      assert.ok(ids.includes(mixedConfig), `the pinned image was not loaded: ${JSON.stringify(ids)}`);
    } finally {
      await p.podman.removeAllImages();
    }
  });

  test(
    "a digest names what it points at: ctr, podman and inspect agree on pinned indexes",
    { timeout: TIMEOUT },
    async (t) => {
      const p = ready(t);
      if (!p) return;
      const amd = served.multiChildren.get("linux/amd64") ?? "";
      const repo = `${host}/test/multi`;
      const cache = path.join(work, "cache-pins");
      // one platform of a pinned index: carried as that platform's manifest, named by its own digest
      const one = path.join(work, "pin-one.tar");
      const packed = await airpackOk(["pack", `${repo}@${served.multi}`, "-o", one, "--cache", cache]);
      assert.match(packed.stderr, /multi-platform index; only linux\/amd64 is packed/);
      const index = asIndex(JSON.parse((await tarMember(one, "index.json")).toString("utf8")) as unknown);
      assert.deepEqual(
        index.manifests.map((m) => [m.digest, m.annotations?.[REF_NAME]]),
        [[amd, `${repo}@${amd}`]],
      );
      assert.deepEqual(
        (await inspectBundle(one)).map((i) => i.name),
        [`${repo}@${amd}`],
      );
      const ns = "reg-pins";
      await p.ctd.importImage(await fs.readFile(one), { namespace: ns });
      // every digest name in containerd resolves to that digest
      const assertTruthful = async (): Promise<void> => {
        for (const row of await p.ctd.listImages(ns)) {
          const at = row.name.indexOf("@");
          if (at >= 0) assert.equal(row.digest, row.name.slice(at + 1), `${row.name} points at ${row.digest}`);
        }
      };
      assert.ok((await p.ctd.listImages(ns)).some((r) => r.name === `${repo}@${amd}`));
      await assertTruthful();
      // podman takes a single-image bundle as an OCI archive and keeps the digest name
      await p.podman.load(one);
      const [loaded] = await p.podman.images();
      assert.ok(loaded?.repoDigests.includes(`${repo}@${amd}`), JSON.stringify(loaded));
      await p.podman.removeAllImages();

      // every platform: the pin itself, named as given
      const all = path.join(work, "pin-all.tar");
      await airpackOk(["pack", `${repo}@${served.multi}`, "--all-platforms", "-o", all, "--cache", cache, "-q"]);
      await p.ctd.importImage(await fs.readFile(all), { namespace: ns, allPlatforms: true });
      assert.equal(
        (await p.ctd.listImages(ns)).find((r) => r.name === `${repo}@${served.multi}`)?.digest,
        served.multi,
      );

      // layers converted: the bundle names the converted manifest, unpack restores the pinned name
      const converted = path.join(work, "pin-converted.tar.xz");
      await airpackOk([
        "pack",
        `${repo}@${served.multi}`,
        "--layers",
        "uncompressed",
        "-o",
        converted,
        "--cache",
        cache,
        "-q",
      ]);
      const rawIndex = asIndex(
        JSON.parse(
          (await runOk("sh", ["-c", `xz -dc '${converted}' | tar -xOf - index.json`])).stdout.toString("utf8"),
        ) as unknown,
      );
      const rawRoot = rawIndex.manifests[0];
      assert.ok(rawRoot && rawRoot.digest !== amd);
      assert.equal(rawRoot.annotations?.[REF_NAME], `${repo}@${rawRoot.digest}`);
      const inspectText = (await airpackOk(["inspect", converted])).stdout.toString("utf8");
      assert.ok(inspectText.includes(`unpack restores it as ${repo}@${amd}`), inspectText);
      const ns2 = "reg-pins-restored";
      await importCtr(p, converted, ns2);
      assert.equal((await p.ctd.listImages(ns2)).find((r) => r.name === `${repo}@${amd}`)?.digest, amd);

      // tag + digest: the digest wins, the tag names it, and a tag that moved is reported
      await pushFixture(p.sk, "mixed", `${repo}:moved`);
      const moved = path.join(work, "pin-moved.tar");
      const r = await airpackOk(["pack", `${repo}:moved@${served.multi}`, "-o", moved, "--cache", cache]);
      assert.match(r.stderr, /the tag moved now points at sha256:/);
      const named = await inspectBundle(moved);
      assert.deepEqual(
        named.map((i) => [i.name, i.sourceDigest]),
        [[`${repo}:moved`, served.multi]],
      );
    },
  );

  test("a plain .tar is written in place while downloading: the same bytes as streamed, and importable", async (t) => {
    const p = ready(t);
    if (!p) return;
    const refs = [`${host}/test/mixed:1`, `${host}/test/list:1`, `${host}/test/multi:1`];
    const cache = path.join(work, "cache-inplace");
    const env = { SOURCE_DATE_EPOCH: "1700000000" };
    const cold = path.join(work, "inplace-cold.tar");
    const warm = path.join(work, "inplace-warm.tar");
    // cold: each layer goes to the store and to its spot in the bundle as it downloads
    await airpackOk(["pack", ...refs, "-o", cold, "--cache", cache, "-q"], { env });
    // warm: the layers are copied from the store into their spots; then the streamed writer
    await airpackOk(["pack", ...refs, "-o", warm, "--cache", cache, "-q"], { env });
    const streamed = await airpackOk(["pack", ...refs, "-o", "-", "--compress", "none", "--cache", cache, "-q"], {
      env,
    });
    const coldBytes = await fs.readFile(cold);
    assert.equal(sha256Of(coldBytes), sha256Of(streamed.stdout), "in place (cold) and streamed bundles differ");
    assert.equal(sha256Of(await fs.readFile(warm)), sha256Of(streamed.stdout), "in place (warm) and streamed differ");
    // GNU tar reads it to the end, airpack verifies every blob, the store holds what it claims
    const listing = await runOk("tar", ["-tf", cold]);
    assert.ok(listing.stdout.toString("utf8").includes("index.json"));
    await airpackOk(["verify", cold]);
    await assertStoreConsistent(cache);
    // and containerd imports the plain tar as it is, with the registry's digests
    const ns = "reg-inplace";
    await p.ctd.importImage(coldBytes, { namespace: ns });
    const rows = await p.ctd.listImages(ns);
    assert.equal(rows.find((r) => r.name === refs[0])?.digest, served.mixed);
  });

  test("a Docker manifest list with --all-platforms is packed unchanged", { timeout: TIMEOUT }, async (t) => {
    const p = ready(t);
    if (!p) return;
    const ref = `${host}/test/list:1`;
    const bundle = path.join(work, "list-all.tar");
    await pack([ref], bundle, path.join(work, "cache-list"), ["--all-platforms"]);
    const [img] = await inspectBundle(bundle);
    assert.equal(img?.digest, served.list.listDigest);
    assert.equal(img?.mediaType, "application/vnd.docker.distribution.manifest.list.v2+json");
    assert.deepEqual(
      img?.platforms.map((x) => x.digest).sort(),
      [served.list.amd64.digest, served.list.arm64.digest].sort(),
    );
    const ns = "reg-list-all";
    await importCtr(p, bundle, ns, true);
    const rows = await p.ctd.listImages(ns);
    const row = rows.find((r) => r.name === ref);
    assert.ok(row, JSON.stringify(rows));
    assert.equal(row.digest, served.list.listDigest);
    assert.deepEqual([...row.platforms].sort(), ["linux/amd64", "linux/arm64/v8"]);
    const bytes = (await p.ctd.ctrOk(["content", "get", row.digest], { namespace: ns })).stdout;
    assert.ok(bytes.equals(served.list.listBytes), "containerd holds other list bytes than the registry");
    await assertSnapshotsFor(p.ctd, ns, [{ ref, diffIds: served.list.amd64.diffIds }]);
  });

  test("two-platform OCI index, --platform linux/arm64 only", { timeout: TIMEOUT }, async (t) => {
    const p = ready(t);
    if (!p) return;
    const ref = `${host}/test/multi:1`;
    const arm = served.multiChildren.get("linux/arm64/v8") ?? "";
    const amd = served.multiChildren.get("linux/amd64") ?? "";
    const bundle = path.join(work, "multi-arm64.tar");
    await pack([ref], bundle, path.join(work, "cache-arm"), ["--platform", "linux/arm64"]);

    // the bundle's index.json reaches only blobs that are inside
    const dir = path.join(work, "multi-arm64");
    await fs.mkdir(dir);
    await runOk("tar", ["-xf", bundle, "-C", dir]);
    const index = await readLayoutIndex(dir);
    assert.equal(index.manifests.length, 1);
    const top = index.manifests[0];
    assert.ok(top && isIndexMediaType(top.mediaType));
    assert.equal(top.annotations?.[REF_NAME], ref);
    const imgs = await layoutImages(dir); // throws on any missing or corrupt blob
    assert.deepEqual(
      imgs.map((i) => i.desc.digest),
      [arm],
    );
    assert.equal(imgs[0]?.config.architecture, "arm64");
    const members = await tarMembers(bundle);
    assert.ok(!members.some((m) => m.endsWith(amd.slice(7))), "the amd64 manifest is in the bundle");

    const [img] = await inspectBundle(bundle);
    assert.equal(img?.sourceDigest, served.multi);
    assert.equal(img?.digest, top.digest);
    assert.deepEqual(
      img?.platforms.map((x) => [x.platform, x.digest]),
      [["linux/arm64/v8", arm]],
    );
    assert.deepEqual(
      img?.skipped.map((s) => [s.platform, s.digest]),
      [["linux/amd64", amd]],
    );

    const ns = "reg-arm64";
    const tar = await airpackOk(["unpack", bundle, "-o", "-"]);
    // --no-unpack: ctr unpacks for the host platform only, and this image has no amd64 manifest
    // ("no match for platform in manifest"); --all-platforms requires every listed manifest.
    await p.ctd.importImage(tar.stdout, { namespace: ns, allPlatforms: true, noUnpack: true });
    const rows = await p.ctd.listImages(ns);
    const row = rows.find((r) => r.name === ref);
    assert.ok(row, JSON.stringify(rows));
    assert.equal(row.digest, top.digest);
    assert.deepEqual(row.platforms, ["linux/arm64/v8"]);
    const armBytes = (await p.ctd.ctrOk(["content", "get", arm], { namespace: ns })).stdout;
    assert.equal(sha256Of(armBytes), arm);
    assert.equal(await registryDigest(p.sk, `${host}/test/multi@${arm}`), arm);
  });

  test("-f FILE with comments and blank lines", { timeout: TIMEOUT }, async (t) => {
    const p = ready(t);
    if (!p) return;
    const list = path.join(work, "images.txt");
    await fs.writeFile(
      list,
      [
        "# images for the site",
        "",
        `   ${host}/test/mixed:1   # the app`,
        "   ",
        "#" + `${host}/test/not-there:1`,
        `${host}/test/multi:1\r`,
        "",
      ].join("\n"),
    );
    const bundle = path.join(work, "from-list.tar.gz");
    await pack([], bundle, path.join(work, "cache-list-file"), ["-f", list]);
    const images = await inspectBundle(bundle);
    assert.deepEqual(
      images.map((i) => i.name),
      [`${host}/test/mixed:1`, `${host}/test/multi:1`],
    );
    assert.equal(images[0]?.digest, served.mixed);
    assert.equal(images[1]?.sourceDigest, served.multi);
    void p;
  });

  test("the store is a cache: a second pack GETs no blob; cache ls; prune keeps what images use", async (t) => {
    const p = ready(t);
    if (!p) return;
    const cache = path.join(work, "cache-warm");
    const refs = [`${host}/test/mixed:1`, `${host}/test/multi:1`, `${host}/test/list:1`];
    let mark = (await settledRequests(p.reg)).length;
    await pack(refs, path.join(work, "warm-1.tar"), cache);
    const cold = blobGetsSince(p.reg, mark);
    assert.ok(cold.length > 0, "the first pack fetched no blobs");

    mark = (await settledRequests(p.reg)).length;
    await pack(refs, path.join(work, "warm-2.tar"), cache);
    await settledRequests(p.reg);
    assert.deepEqual(
      blobGetsSince(p.reg, mark).map((r) => r.path),
      [],
      "blob GETs with a warm cache",
    );
    assert.deepEqual(
      await inspectBundle(path.join(work, "warm-2.tar")),
      await inspectBundle(path.join(work, "warm-1.tar")),
    );

    const ls = await airpackOk(["cache", "ls", "--json", "--cache", cache]);
    const listing = JSON.parse(ls.stdout.toString("utf8")) as { images: { name: string; digest: string }[] };
    assert.deepEqual(listing.images.map((i) => i.name).sort(), [...refs].sort());
    assert.equal(listing.images.find((i) => i.name === refs[0])?.digest, served.mixed);
    const text = await airpackOk(["cache", "ls", "--cache", cache]);
    for (const r of refs) assert.ok(text.stdout.toString("utf8").includes(r), text.stdout.toString("utf8"));

    // prune drops a blob no image uses and keeps everything the images use
    const before = new Set(await storeBlobs(cache));
    const stray = Buffer.from("a blob no image uses\n");
    const strayDigest = sha256Of(stray);
    await fs.writeFile(path.join(cache, "blobs", "sha256", strayDigest.slice(7)), stray);
    const prune = await runAirpack(["cache", "prune", "--cache", cache]);
    assert.equal(prune.code, 0, prune.stderr);
    const afterPrune = new Set(await assertStoreConsistent(cache));
    assert.ok(!afterPrune.has(strayDigest), "prune kept the stray blob");
    for (const img of await inspectBundle(path.join(work, "warm-1.tar"))) {
      for (const pl of img.platforms) {
        assert.ok(afterPrune.has(pl.digest), `prune removed manifest ${pl.digest}`);
        for (const l of pl.layers) assert.ok(afterPrune.has(l.digest), `prune removed layer ${l.digest}`);
      }
      assert.ok(afterPrune.has(img.digest));
    }
    for (const d of afterPrune) assert.ok(before.has(d));

    mark = (await settledRequests(p.reg)).length;
    const third = path.join(work, "warm-3.tar");
    await pack(refs, third, cache);
    await settledRequests(p.reg);
    assert.deepEqual(
      blobGetsSince(p.reg, mark).map((r) => r.path),
      [],
      "blob GETs after prune",
    );
    await airpackOk(["verify", third]);
  });
});

/** diff_ids of the config of a fixture manifest (read from the layout, not from airpack). */
async function diffIdsOf(manifestDigest: string): Promise<string[]> {
  const manifest = JSON.parse((await layoutBlob(manifestDigest)).toString("utf8")) as { config: { digest: string } };
  const config = JSON.parse((await layoutBlob(manifest.config.digest)).toString("utf8")) as {
    rootfs: { diff_ids: string[] };
  };
  return config.rootfs.diff_ids;
}
