/**
 * End-to-end: the outer compression of a bundle follows the output name, and a
 * bundle, once decompressed with the system xz/zstd/gzip, is itself an OCI
 * layout tar that ctr imports without airpack (and podman loads it directly).
 * Expected digests come from the fixture layout, never from airpack.
 */
import assert from "node:assert/strict";
import { createReadStream } from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";

import {
  FIXTURES,
  layoutImages,
  pack,
  runAirpack,
  sha256Of,
  sniff,
  sniffFile,
  type LayoutImage,
  type OuterFormat,
} from "../helpers/cli";
import { startContainerd, type Containerd } from "../helpers/peers/containerd";
import { createPodman, type Podman } from "../helpers/peers/podman";
import { peersUnavailable, runOk, skipOrFail } from "../helpers/peers/process";
import { makeTempDir, removeDir } from "../helpers/peers/temp";

const OCI = path.join(FIXTURES, "oci");
const TIMEOUT = 120_000;
const TAGS = ["mixed", "v2s2"];
const nameOf = (tag: string): string => `localhost/oci:${tag}`;

const CASES: { ext: string; format: OuterFormat; decompress: string[] | null }[] = [
  { ext: ".tar.xz", format: "xz", decompress: ["xz", "-dc"] },
  { ext: ".tar.zst", format: "zstd", decompress: ["zstd", "-dc"] },
  { ext: ".tar.gz", format: "gzip", decompress: ["gzip", "-dc"] },
  { ext: ".tar", format: "none", decompress: null },
];

describe("airpack outer compression by file name; bundles are importable OCI layout tars", { timeout: 600_000 }, () => {
  let work = "";
  let cache = "";
  let unavailable: string | null = null;
  let ctd: Containerd | null = null;
  let podman: Podman | null = null;
  let expected: LayoutImage[] = [];

  before(async () => {
    work = await makeTempDir("airpack-e2e-outer");
    cache = path.join(work, "cache");
    expected = (await layoutImages(OCI)).filter((i) => TAGS.includes(i.ref));
    assert.equal(expected.length, TAGS.length);
    unavailable = await peersUnavailable(["containerd", "ctr", "podman", "tar", "xz", "zstd", "gzip"]);
    if (unavailable === null) {
      ctd = await startContainerd();
      podman = await createPodman();
    }
  });

  after(async () => {
    await ctd?.stop();
    await podman?.cleanup();
    if (work) await removeDir(work);
  });

  for (const { ext, format, decompress } of CASES) {
    test(
      `-o X${ext} writes ${format}; decompressed with the system tool, ctr imports it`,
      {
        timeout: TIMEOUT,
      },
      async (t) => {
        const bundle = path.join(work, `bundle${ext}`);
        await pack(
          TAGS.map((tag) => `oci:${OCI}:${tag}`),
          bundle,
          cache,
        );
        assert.equal(await sniffFile(bundle), format);
        const raw = decompress
          ? (await runOk(decompress[0] ?? "", [...decompress.slice(1), bundle])).stdout
          : await fs.readFile(bundle);
        assert.equal(sniff(raw), "none", "decompressed bundle is a plain tar");
        if (skipOrFail(t, unavailable) || !ctd) return;

        const ns = `outer-${format}`;
        await ctd.importImage(raw, { namespace: ns });
        const rows = await ctd.listImages(ns);
        assert.deepEqual(
          rows.map((r) => [r.name, r.digest]).sort(),
          expected.map((i) => [nameOf(i.ref), i.desc.digest]).sort(),
        );
        const check = (await ctd.ctrOk(["images", "check"], { namespace: ns })).stdout.toString("utf8");
        for (const i of expected) {
          const line = check.split("\n").find((l) => l.startsWith(`${nameOf(i.ref)} `));
          assert.match(line ?? "", /\bcomplete\b/, check);
        }
      },
    );
  }

  test("--compress overrides the file name; - reads a bundle from stdin (verify, inspect, unpack)", async () => {
    const bundle = path.join(work, "bundle.bin");
    await pack([`oci:${OCI}:mixed`], bundle, cache, ["--compress", "zstd"]);
    assert.equal(await sniffFile(bundle), "zstd");

    const mixed = expected.find((i) => i.ref === "mixed");
    assert.ok(mixed);
    const verify = await runAirpack(["verify", "-"], { input: createReadStream(bundle) });
    assert.equal(verify.code, 0, verify.stderr);
    const inspect = await runAirpack(["inspect", "--json", "-"], { input: createReadStream(bundle) });
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.ok(inspect.stdout.toString("utf8").includes(mixed.desc.digest));
    const unpack = await runAirpack(["unpack", "-", "-o", "-"], { input: createReadStream(bundle) });
    assert.equal(unpack.code, 0, unpack.stderr);
    assert.equal(sniff(unpack.stdout), "none");
  });

  test("podman load -i X.tar.xz / X.tar.zst directly (no airpack unpack)", { timeout: TIMEOUT }, async (t) => {
    if (skipOrFail(t, unavailable) || !podman) return;
    for (const ext of [".tar.xz", ".tar.zst"]) {
      const bundle = path.join(work, `podman${ext}`);
      await pack(
        TAGS.map((tag) => `oci:${OCI}:${tag}`),
        bundle,
        cache,
      );
      const loaded = await podman.load(bundle);
      assert.deepEqual([...loaded.loaded].sort(), TAGS.map(nameOf).sort(), `${ext}: ${loaded.stdout.toString()}`);
      for (const i of expected) {
        const inspect = await podman.imageInspect(nameOf(i.ref));
        assert.equal(`sha256:${inspect.Id}`, i.manifest.config.digest, `${ext} ${i.ref}`);
        assert.deepEqual(inspect.RootFS?.Layers, i.config.rootfs.diff_ids, `${ext} ${i.ref}`);
      }
      await podman.removeAllImages();
    }
  });

  test("a single-image bundle keeps the OCI manifest digest in podman", { timeout: TIMEOUT }, async (t) => {
    if (skipOrFail(t, unavailable) || !podman) return;
    const mixed = expected.find((i) => i.ref === "mixed");
    assert.ok(mixed);
    const bundle = path.join(work, "single.tar.xz");
    await pack([`oci:${OCI}:mixed`], bundle, cache);
    const loaded = await podman.load(bundle);
    assert.deepEqual(loaded.loaded, [nameOf("mixed")]);
    const inspect = await podman.imageInspect(nameOf("mixed"));
    assert.equal(inspect.Digest, mixed.desc.digest);
    assert.equal(
      sha256Of(await fs.readFile(path.join(OCI, "blobs", "sha256", mixed.desc.digest.slice(7)))),
      inspect.Digest,
    );
    await podman.removeAllImages();
  });
});
