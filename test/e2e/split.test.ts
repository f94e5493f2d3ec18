/**
 * End-to-end: the whole fixture layout (4 tags, one multi-platform index) packed with --split into
 * at least 4 parts, then read by airpack and by the real peers: verify, unpack into containerd,
 * push into a real registry, a flipped byte in part 3 named, and `cat parts | xzcat | ctr images
 * import -` without airpack. Expected digests come from the fixture layout and node:crypto.
 */
import assert from "node:assert/strict";
import { cp, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";

import {
  FIXTURES,
  REF_NAME,
  airpackOk,
  assertSnapshotsFor,
  layoutImages,
  pack,
  readLayoutIndex,
  runAirpack,
  sha256Of,
  type Descriptor,
  type LayoutImage,
} from "../helpers/cli";
import { startContainerd, type Containerd } from "../helpers/peers/containerd";
import { peersUnavailable, run, skipOrFail } from "../helpers/peers/process";
import { startRegistry, type Registry } from "../helpers/peers/registry";
import { createSkopeo, type Skopeo } from "../helpers/peers/skopeo";
import { makeTempDir, removeDir } from "../helpers/peers/temp";
import { registryDigest } from "../helpers/registry-fixtures";

const OCI = path.join(FIXTURES, "oci");
const TIMEOUT = 120_000;
const NAME = "site.tar.xz";
/** airpack names images of an OCI layout DIR with only ref.name tags `localhost/<basename(DIR)>:<tag>`. */
const nameOf = (tag: string): string => `localhost/oci:${tag}`;

interface PartsJson {
  size: number;
  sha256: string;
  partSize: number;
  parts: { name: string; size: number; sha256: string }[];
}

describe("a split bundle → verify, ctr, a registry; a damaged part; cat | xzcat | ctr", { timeout: 600_000 }, () => {
  let work = "";
  let parts = "";
  let unavailable: string | null = null;
  let ctd: Containerd | null = null;
  let registry: Registry | null = null;
  let sk: Skopeo | null = null;
  let fixtureTop: Descriptor[] = [];
  let fixtureImages: LayoutImage[] = [];
  let count = 0;

  const partFile = (dir: string, i: number): string => path.join(dir, `${NAME}.${String(i).padStart(3, "0")}`);
  const expectedRows = (): string[][] =>
    fixtureTop.map((d) => [nameOf(d.annotations?.[REF_NAME] ?? ""), d.digest]).sort();

  before(async () => {
    work = await makeTempDir("airpack-e2e-split");
    fixtureTop = (await readLayoutIndex(OCI)).manifests;
    fixtureImages = await layoutImages(OCI);
    unavailable = await peersUnavailable(["containerd", "ctr", "xzcat", "bash", "docker-registry", "skopeo"]);
    if (unavailable === null) {
      ctd = await startContainerd();
      registry = await startRegistry();
      sk = await createSkopeo();
    }
    // Layers kept as they are: the bundle's own digests are the fixture's, for ctr with and without airpack.
    const whole = path.join(work, NAME);
    await pack([`oci:${OCI}`], whole, path.join(work, "cache"), ["--all-platforms", "-q"]);
    const size = (await readFile(whole)).length;
    parts = path.join(work, "parts");
    await mkdir(parts);
    const split = String(Math.ceil(size / 5));
    await pack([`oci:${OCI}`], path.join(parts, NAME), path.join(work, "cache"), [
      "--all-platforms",
      "-q",
      "--split",
      split,
    ]);
    count = (await readdir(parts)).filter((n) => /\.\d{3}$/.test(n)).length;
  });

  after(async () => {
    await ctd?.stop();
    await registry?.stop();
    await sk?.cleanup();
    if (work) await removeDir(work);
  });

  test("at least 4 parts of the size asked, as parts.json lists them; verify reads .001 and .parts.json", async () => {
    assert.ok(count >= 4, `${count} parts`);
    const doc = JSON.parse(await readFile(path.join(parts, `${NAME}.parts.json`), "utf8")) as PartsJson;
    const bytes = await Promise.all(doc.parts.map((_, i) => readFile(partFile(parts, i + 1))));
    assert.equal(doc.parts.length, count);
    bytes.slice(0, -1).forEach((b) => assert.equal(b.length, doc.partSize));
    assert.deepEqual(
      doc.parts.map((p) => [p.size, `sha256:${p.sha256}`]),
      bytes.map((b) => [b.length, sha256Of(b)]),
    );
    assert.equal(`sha256:${doc.sha256}`, sha256Of(Buffer.concat(bytes)));
    for (const given of [partFile(parts, 1), path.join(parts, `${NAME}.parts.json`)]) {
      const r = await airpackOk(["verify", given]);
      assert.match(r.stdout.toString("utf8"), /^OK: 4 image\(s\)/);
    }
  });

  test(
    "unpack site.tar.xz.001 -o - | ctr images import -: every name, fixture digests",
    { timeout: TIMEOUT },
    async (t) => {
      if (skipOrFail(t, unavailable) || !ctd) return;
      const tar = await airpackOk(["unpack", partFile(parts, 1), "-o", "-"]);
      const ns = "from-parts";
      await ctd.importImage(tar.stdout, { namespace: ns });
      const rows = await ctd.listImages(ns);
      assert.deepEqual(rows.map((r) => [r.name, r.digest]).sort(), expectedRows());
      const check = (await ctd.ctrOk(["images", "check"], { namespace: ns })).stdout.toString("utf8");
      for (const d of fixtureTop) {
        const line = check.split("\n").find((l) => l.startsWith(`${nameOf(d.annotations?.[REF_NAME] ?? "")} `));
        assert.match(line ?? "", /\bcomplete\b/, `ctr images check:\n${check}`);
      }
      await assertSnapshotsFor(
        ctd,
        ns,
        fixtureImages
          .filter((i) => (i.config.architecture ?? "amd64") === "amd64")
          .map((i) => ({ ref: i.ref, diffIds: i.config.rootfs.diff_ids })),
      );
    },
  );

  test("cat site.tar.xz.0* | xzcat | ctr images import - works without airpack", { timeout: TIMEOUT }, async (t) => {
    if (skipOrFail(t, unavailable) || !ctd) return;
    const ns = "cat-xzcat";
    const script = [
      "set -o pipefail",
      `cd "$0"`,
      `cat ${NAME}.0* | xzcat | ctr --address "$1" -n "$2" images import --snapshotter "$3" -`,
    ].join("\n");
    const r = await run("bash", ["-c", script, parts, ctd.address, ns, ctd.snapshotter], { timeoutMs: TIMEOUT });
    assert.equal(r.code, 0, r.stderr);
    const rows = await ctd.listImages(ns);
    assert.deepEqual(rows.map((x) => [x.name, x.digest]).sort(), expectedRows());
  });

  test(
    "push site.tar.xz.parts.json into a real registry: skopeo reads the fixture digests",
    { timeout: TIMEOUT },
    async (t) => {
      if (skipOrFail(t, unavailable) || !registry || !sk) return;
      const r = await airpackOk(["push", path.join(parts, `${NAME}.parts.json`), `${registry.host}/site`, "--json"]);
      const pushed = JSON.parse(r.stdout.toString("utf8")) as { images: { name: string; target: string }[] };
      assert.deepEqual(
        pushed.images.map((i) => i.name).sort(),
        expectedRows().map(([name]) => name),
      );
      for (const top of fixtureTop) {
        const image = pushed.images.find((i) => i.name === nameOf(top.annotations?.[REF_NAME] ?? ""));
        assert.ok(image, top.digest);
        assert.equal(await registryDigest(sk, image.target), top.digest, image.target);
      }
    },
  );

  test(
    "a byte flipped in part 3: verify, unpack and push name part 3; nothing is written or tagged",
    { timeout: TIMEOUT },
    async (t) => {
      const damaged = path.join(work, "damaged");
      await cp(parts, damaged, { recursive: true });
      const bytes = await readFile(partFile(damaged, 3));
      const expected = sha256Of(bytes).slice("sha256:".length);
      bytes[Math.floor(bytes.length / 3)] ^= 0x20;
      await writeFile(partFile(damaged, 3), bytes);
      const actual = sha256Of(bytes).slice("sha256:".length);
      const line = new RegExp(
        `part 003 of ${count} is damaged \\(sha256 ${actual}, expected ${expected}\\): resend site\\.tar\\.xz\\.003$`,
      );
      const expectOneLine = (res: { code: number; stderr: string }): void => {
        assert.equal(res.code, 1, res.stderr);
        const lines = res.stderr.trim().split("\n");
        assert.equal(lines.length, 1, res.stderr);
        assert.match(lines[0]!, line);
      };
      expectOneLine(await runAirpack(["verify", partFile(damaged, 1)]));
      const out = path.join(work, "damaged-out");
      await mkdir(out);
      expectOneLine(
        await runAirpack(["unpack", path.join(damaged, `${NAME}.parts.json`), "-o", path.join(out, "x.tar")]),
      );
      assert.deepEqual(await readdir(out), []);
      if (skipOrFail(t, unavailable) || !registry) return;
      expectOneLine(await runAirpack(["push", partFile(damaged, 1), `${registry.host}/damaged`]));
      // tags go last, after the whole bundle checked out: no repository under damaged/ has any
      const listing = await fetch(`${registry.url}/v2/_catalog`);
      const catalog = (await listing.json()) as { repositories: string[] | null };
      for (const repo of (catalog.repositories ?? []).filter((r) => r.startsWith("damaged/"))) {
        const res = await fetch(`${registry.url}/v2/${repo}/tags/list`);
        const tags = res.status === 404 ? [] : (((await res.json()) as { tags: string[] | null }).tags ?? []);
        assert.deepEqual(tags, [], repo);
      }
    },
  );
});
