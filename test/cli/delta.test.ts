/**
 * Delta bundles on the fixtures, through the real CLI: a site bundle (the "mixed" image, its gzip
 * layers stored uncompressed with recipes) is inventoried; a delta of all four fixture images is
 * packed against the inventory. Expected digests come from the fixture layout itself (read with
 * node:crypto and JSON in test/helpers/cli.ts), never from airpack's output.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { open, readFile, writeFile, access } from "node:fs/promises";
import { join } from "node:path";
import {
  FIXTURES,
  airpackOk,
  assertOneLineError,
  layoutImages,
  runAirpack,
  sha256File,
  tarMember,
  tarMembers,
  type LayoutImage,
} from "../helpers/cli";
import { runOk } from "../helpers/peers/process";
import { makeTempDir, removeDir } from "../helpers/peers/temp";

const OCI = join(FIXTURES, "oci");

let dir: string;
let cache: string;
let site: string;
let inventory: string;
let delta: string;
let images: LayoutImage[];
/** Layers of the site's image, and their diff_ids (the site holds both forms). */
let siteHas: Set<string>;
/** Every layer of every fixture image. */
let allLayers: Set<string>;

interface DeltaMeta {
  airpackBundleVersion: number;
  delta: { base: { kind: string; sha256: string }[]; relies: { digest: string; size: number }[] };
}

async function deltaMeta(file: string): Promise<DeltaMeta> {
  const tar = join(dir, `${Math.random().toString(16).slice(2)}.tar`);
  await runOk("sh", ["-c", `xz -dc '${file}' > '${tar}'`]);
  return JSON.parse((await tarMember(tar, "airpack.json")).toString("utf8")) as DeltaMeta;
}

async function missing(path: string): Promise<boolean> {
  return access(path).then(
    () => false,
    () => true,
  );
}

/** Names and root digests of an unpacked tar's index.json. */
async function roots(tar: string): Promise<string[]> {
  const index = JSON.parse((await tarMember(tar, "index.json")).toString("utf8")) as {
    manifests: { digest: string }[];
  };
  return index.manifests.map((m) => m.digest).sort();
}

/** The root digests of the fixture layout's index.json. */
async function fixtureRoots(): Promise<string[]> {
  const index = JSON.parse(await readFile(join(OCI, "index.json"), "utf8")) as { manifests: { digest: string }[] };
  return index.manifests.map((m) => m.digest).sort();
}

before(async () => {
  dir = await makeTempDir("airpack-delta-");
  cache = join(dir, "cache");
  site = join(dir, "site.tar.xz");
  inventory = join(dir, "site.inventory.json");
  delta = join(dir, "delta.tar.xz");
  images = await layoutImages(OCI);
  const mixed = images.filter((i) => i.ref === "mixed");
  siteHas = new Set(mixed.flatMap((i) => [...i.manifest.layers.map((l) => l.digest), ...i.config.rootfs.diff_ids]));
  allLayers = new Set(images.flatMap((i) => i.manifest.layers.map((l) => l.digest)));
  await airpackOk(["pack", `oci:${OCI}:mixed`, "-o", site, "--cache", cache, "-q"]);
  await airpackOk(["inventory", site, "-o", inventory, "--cache", cache]);
  await airpackOk(["pack", `oci:${OCI}`, "--all-platforms", "--have", inventory, "-o", delta, "--cache", cache, "-q"]);
});

after(async () => {
  await removeDir(dir);
});

describe("delta bundles", () => {
  it("inventory of a bundle lists the original layers it restores and the uncompressed blobs it stores", async () => {
    const inv = JSON.parse(await readFile(inventory, "utf8")) as { blobs: { digest: string }[] };
    const listed = new Set(inv.blobs.map((b) => b.digest));
    const mixed = images.filter((i) => i.ref === "mixed");
    for (const l of mixed.flatMap((i) => i.manifest.layers)) assert.ok(listed.has(l.digest), `lists ${l.digest}`);
    // The gzip layers are stored uncompressed (with recipes): those blobs are there too.
    for (const i of mixed) {
      i.manifest.layers.forEach((l, n) => {
        if (l.mediaType.endsWith("gzip")) assert.ok(listed.has(i.config.rootfs.diff_ids[n]!), `lists diff_id ${n}`);
      });
    }
  });

  it("inventory of the store lists the blobs it holds for its images", async () => {
    const out = join(dir, "store.inventory.json");
    await airpackOk(["inventory", `store:${cache}`, "-o", out]);
    const inv = JSON.parse(await readFile(out, "utf8")) as { sources: { kind: string }[]; blobs: { digest: string }[] };
    assert.deepEqual(
      inv.sources.map((s) => s.kind),
      ["store"],
    );
    const listed = new Set(inv.blobs.map((b) => b.digest));
    // Every layer of the images the store's index.json names whose blob file is there.
    const stored = (await layoutImages(cache)).flatMap((i) => i.manifest.layers);
    let held = 0;
    for (const l of stored) {
      if (await missing(join(cache, "blobs", "sha256", l.digest.slice(7)))) continue;
      held++;
      assert.ok(listed.has(l.digest), `lists ${l.digest}`);
    }
    assert.ok(held > 0);
  });

  it("relies on exactly the layers the site has, leaves them out, and names its base by sha256", async () => {
    const meta = await deltaMeta(delta);
    assert.equal(meta.airpackBundleVersion, 2);
    assert.deepEqual(
      meta.delta.base.map((b) => [b.kind, `sha256:${b.sha256}`]),
      [["inventory", await sha256File(inventory)]],
    );
    const expected = [...allLayers].filter((l) => siteHas.has(l)).sort();
    assert.deepEqual(meta.delta.relies.map((r) => r.digest).sort(), expected);
    const tar = join(dir, "delta.tar");
    await runOk("sh", ["-c", `xz -dc '${delta}' > '${tar}'`]);
    const members = await tarMembers(tar);
    for (const d of siteHas) assert.ok(!members.includes(`blobs/sha256/${d.slice(7)}`), `${d} not carried`);
    // No importer loads an image whose layers are elsewhere: index.json lists none, no manifest.json.
    assert.ok(!members.includes("manifest.json"), "no docker manifest.json");
    const index = JSON.parse((await tarMember(tar, "index.json")).toString("utf8")) as { manifests: unknown[] };
    assert.deepEqual(index.manifests, []);
  });

  it("inspect and verify show the base and every relied-on blob", async () => {
    const meta = await deltaMeta(delta);
    const v = await airpackOk(["verify", delta]);
    const out = v.stdout.toString();
    assert.match(out, /delta: needs base/);
    for (const r of meta.delta.relies) assert.ok(out.includes(r.digest), `verify lists ${r.digest}`);
    const i = JSON.parse((await airpackOk(["inspect", delta, "--json"])).stdout.toString()) as {
      delta: { relies: { digest: string; neededBy: string[] }[] };
    };
    assert.equal(i.delta.relies.length, meta.delta.relies.length);
    assert.ok(i.delta.relies.every((r) => r.neededBy.length > 0));
  });

  it("unpack --base gives every original digest; without a base it says so", async () => {
    const out = join(dir, "whole.tar");
    await airpackOk(["unpack", delta, "--base", site, "--format", "oci-archive", "-o", out]);
    assert.deepEqual(await roots(out), await fixtureRoots());
    const members = await tarMembers(out);
    for (const l of allLayers) assert.ok(members.includes(`blobs/sha256/${l.slice(7)}`), `${l} assembled`);
    const v = await airpackOk(["verify", delta, "--base", site]);
    assert.match(v.stdout.toString(), /blob\(s\) it relies on in the base/);
    const none = await runAirpack(["unpack", delta, "-o", join(dir, "none.tar")]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /a delta bundle .* needs its base: --base/);
    assert.ok(await missing(join(dir, "none.tar")));
  });

  it("a wrong base fails before anything is written, naming each missing digest and its image", async () => {
    const other = join(dir, "other.tar.xz");
    await airpackOk(["pack", `oci:${OCI}:v2s2`, "-o", other, "--cache", cache, "-q"]);
    // The other bundle holds v2s2's layers, and the gzip ones uncompressed too (recipes).
    const v2s2 = new Set(
      images
        .filter((i) => i.ref === "v2s2")
        .flatMap((i) => [...i.manifest.layers.map((l) => l.digest), ...i.config.rootfs.diff_ids]),
    );
    const meta = await deltaMeta(delta);
    const lacking = meta.delta.relies.filter((r) => !v2s2.has(r.digest));
    assert.ok(lacking.length > 0);
    const out = join(dir, "wrong.tar");
    const line = assertOneLineError(await runAirpack(["unpack", delta, "--base", other, "-o", out]), /lacks \d+ blob/);
    for (const r of lacking) assert.ok(line.includes(r.digest), `names ${r.digest}`);
    assert.match(line, /needed by localhost\/oci:mixed/);
    assert.ok(await missing(out), "nothing written");
    const r = await runAirpack(["unpack", delta, "--base", other, "-o", "-"]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout.length, 0, "nothing on stdout");
  });

  it("--have oci:DIR; a corrupted relied-on blob in that base is refused by digest, nothing assembled", async () => {
    const layout = join(dir, "base-layout");
    await airpackOk(["unpack", site, "--format", "oci", "-o", layout]);
    const delta = join(dir, "delta-layout.tar.xz");
    await airpackOk([
      "pack",
      `oci:${OCI}`,
      "--all-platforms",
      "--have",
      `oci:${layout}`,
      "-o",
      delta,
      "--cache",
      cache,
      "-q",
    ]);
    const meta = await deltaMeta(delta);
    assert.equal(meta.delta.base[0]!.kind, "oci");
    await airpackOk(["verify", delta, "--base", `oci:${layout}`]);
    const victim = meta.delta.relies.find((r) => r.size > 100)!;
    const fh = await open(join(layout, "blobs", "sha256", victim.digest.slice(7)), "r+");
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, 50);
    b[0] = b[0]! ^ 0xff;
    await fh.write(b, 0, 1, 50);
    await fh.close();
    const out = join(dir, "corrupt.tar");
    const r = await runAirpack(["unpack", delta, "--base", `oci:${layout}`, "-o", out]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`${victim.digest.slice(7, 19)}.*digest mismatch|digest mismatch`));
    assert.ok(await missing(out), "nothing written");
    const v = await runAirpack(["verify", delta, "--base", `oci:${layout}`]);
    assert.equal(v.code, 1);
    assert.match(v.stderr, /digest mismatch/);
  });

  it("a hostile or wrong inventory is refused in one line, nothing packed", async () => {
    const cases: [string, string, RegExp][] = [
      ["notjson.json", "{ nope", /not valid JSON/],
      [
        "digest.json",
        JSON.stringify({ ...JSON.parse(await readFile(inventory, "utf8")), blobs: [{ digest: "sha256:12", size: 1 }] }),
        /blobs\[0\]\.digest/,
      ],
    ];
    const inv = JSON.parse(await readFile(inventory, "utf8")) as { blobs: { digest: string; size: number }[] };
    const lie = { ...inv, blobs: inv.blobs.map((b) => ({ ...b, size: b.size + 1 })) };
    cases.push(["lie.json", JSON.stringify(lie), /list sha256:[0-9a-f]{64} as \d+ bytes, the manifest as \d+/]);
    for (const [name, text, pattern] of cases) {
      const file = join(dir, name);
      await writeFile(file, text);
      const out = join(dir, `${name}.tar.xz`);
      assertOneLineError(
        await runAirpack(["pack", `oci:${OCI}:mixed`, "--have", file, "-o", out, "--cache", cache, "-q"]),
        pattern,
      );
      assert.ok(await missing(out), `${name}: nothing packed`);
    }
  });

  it("pack bundle:SITE bundle:DELTA rebuilds the full bundle; the delta alone names what it lacks", async () => {
    const full = join(dir, "full.tar.xz");
    await airpackOk([
      "pack",
      `bundle:${site}`,
      `bundle:${delta}`,
      "--all-platforms",
      "-o",
      full,
      "--cache",
      join(dir, "c2"),
      "-q",
    ]);
    const out = join(dir, "full.tar");
    await airpackOk(["unpack", full, "--format", "oci-archive", "-o", out]);
    assert.deepEqual(await roots(out), await fixtureRoots());
    const alone = await runAirpack([
      "pack",
      `bundle:${delta}`,
      "-o",
      join(dir, "alone.tar.xz"),
      "--cache",
      join(dir, "c3"),
    ]);
    const line = assertOneLineError(alone, /none of the other sources holds \d+ blob/);
    for (const r of (await deltaMeta(delta)).delta.relies) assert.ok(line.includes(r.digest));
  });

  it("pack bundle:FILE --platform filters a bundle offline and recompresses it", async () => {
    const full = join(dir, "all.tar.xz");
    await airpackOk(["pack", `oci:${OCI}`, "--all-platforms", "-o", full, "--cache", cache, "-q"]);
    const arm = join(dir, "arm.tar.zst");
    await airpackOk([
      "pack",
      `bundle:${full}`,
      "--platform",
      "linux/arm64",
      "-o",
      arm,
      "--cache",
      join(dir, "c4"),
      "-q",
    ]);
    const s = JSON.parse((await airpackOk(["inspect", arm, "--json"])).stdout.toString()) as {
      format: string;
      images: { name: string; platforms: { platform: string }[] }[];
    };
    assert.equal(s.format, "zstd");
    const multi = s.images.find((i) => i.name.endsWith(":multi"))!;
    assert.equal(multi.platforms.length, 1);
    assert.match(multi.platforms[0]!.platform, /^linux\/arm64/);
    await airpackOk(["verify", arm]);
  });

  it("diff --json: per image status, and the layers a delta would carry, as counted from the layout", async () => {
    const d = JSON.parse((await airpackOk(["diff", inventory, `oci:${OCI}`, "--json"])).stdout.toString()) as {
      images: { image: string; status: string }[];
      totals: { added: number; unchanged: number; deltaLayers: number; deltaLayerBytes: number };
    };
    assert.deepEqual(
      d.images.map((i) => [i.image, i.status]),
      [
        ["oci:mixed", "unchanged"],
        ["oci:multi", "added"],
        ["oci:uncompressed", "added"],
        ["oci:v2s2", "added"],
      ],
    );
    const sizes = new Map(images.flatMap((i) => i.manifest.layers.map((l) => [l.digest, l.size] as const)));
    const lacking = [...allLayers].filter((l) => !siteHas.has(l));
    assert.equal(d.totals.deltaLayers, lacking.length);
    assert.equal(
      d.totals.deltaLayerBytes,
      lacking.reduce((a, l) => a + sizes.get(l)!, 0),
    );
  });
});
