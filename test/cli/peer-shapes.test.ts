/**
 * The image shapes of other projects' public test data (go-containerregistry, containers/image,
 * regclient, umoci, moby), rebuilt from real files by fixtures/make-peer-shapes.py: every valid one
 * packs and verifies under the names the source gives; every invalid one fails with exit 1 and one
 * line naming the cause; plus the fixes these shapes needed. The round trips through the real ctr,
 * podman and skopeo, with digests from skopeo, are in test/e2e/peer-shapes.test.ts.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { airpackOk, assertOneLineError, layoutImages, pack, runAirpack, sha256Of, tarMember } from "../helpers/cli";
import { HAND_MADE_SHAPES, makePeerShapes, specIn, type PeerShape } from "../helpers/peer-shapes";
import { makeTempDir, removeDir } from "../helpers/peers/temp";
import { inspectBundle } from "../helpers/registry-fixtures";

describe("peer shapes: pack and verify, or one clear error", { timeout: 300_000 }, () => {
  let dir = "";
  let out = "";
  let shapes: PeerShape[] = [];

  before(async () => {
    dir = await makeTempDir("airpack-peer-shapes-");
    out = join(dir, "shapes");
    shapes = await makePeerShapes(out);
  });
  after(async () => {
    if (dir) await removeDir(dir);
  });

  const shape = (name: string): PeerShape => {
    const s = shapes.find((x) => x.name === name);
    assert.ok(s, `make-peer-shapes.py made no ${name} (zstd missing?)`);
    return s;
  };

  it("the script is deterministic and small", async () => {
    const again = join(dir, "again");
    await makePeerShapes(again);
    const list = async (d: string): Promise<string[]> => (await readdir(d, { recursive: true })).sort();
    const names = await list(out);
    assert.deepEqual(await list(again), names);
    let bytes = 0;
    for (const n of names) {
      const a = await readFile(join(out, n)).catch(() => undefined);
      if (!a) continue; // a directory
      bytes += a.length;
      assert.ok(a.equals(await readFile(join(again, n))), `${n} differs between two runs`);
    }
    assert.ok(bytes < 600_000, `${bytes} bytes`);
    assert.deepEqual(shapes.map((s) => s.name).sort(), [...HAND_MADE_SHAPES].sort());
  });

  for (const name of HAND_MADE_SHAPES) {
    it(name, async () => {
      const s = shape(name);
      const bundle = join(dir, `${name}.tar`);
      const args = ["pack", specIn(out, s.source), ...(s.packArgs ?? []), "--cache", join(dir, "cache")];
      if (!s.valid) {
        const r = await runAirpack([...args, "-o", bundle]);
        assertOneLineError(r, new RegExp(s.error ?? "."));
        return;
      }
      await pack([specIn(out, s.source)], bundle, join(dir, "cache"), s.packArgs ?? []);
      await airpackOk(["verify", bundle]);
      const images = await inspectBundle(bundle);
      assert.deepEqual(
        images.map((i) => i.name).sort(),
        (s.images ?? []).map((i) => i.name).sort(),
        "the names the source gives",
      );
    });
  }

  it("nested indexes: the inner index is chosen from by platform, and --layers keep keeps every digest", async () => {
    const layout = join(out, "nested-index");
    const index = JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as {
      manifests: { digest: string; annotations: Record<string, string> }[];
    };
    const top = index.manifests.find((m) => m.annotations["org.opencontainers.image.ref.name"] === "oci-in-oci")!;
    const blob = async (d: string): Promise<Buffer> => readFile(join(layout, "blobs", "sha256", d.slice(7)));
    const outer = JSON.parse((await blob(top.digest)).toString()) as { manifests: { digest: string }[] };
    const inner = JSON.parse((await blob(outer.manifests[0]!.digest)).toString()) as {
      manifests: { digest: string; platform: { architecture: string } }[];
    };
    assert.equal(sha256Of(await blob(top.digest)), top.digest);
    const amd64 = inner.manifests.find((m) => m.platform.architecture === "amd64")!;

    const bundle = join(dir, "nested-amd64.tar");
    await pack([`oci:${layout}:oci-in-oci`], bundle, join(dir, "cache"), ["--platform", "linux/amd64"]);
    const [img] = await inspectBundle(bundle);
    assert.deepEqual(
      img!.platforms.map((p) => [p.platform, p.digest]),
      [["linux/amd64", amd64.digest]],
    );
    assert.deepEqual(
      img!.skipped.map((k) => k.platform),
      ["linux/arm64/v8"],
    );

    const all = join(dir, "nested-all.tar");
    await pack([`oci:${layout}:oci-in-oci`], all, join(dir, "cache"), ["--all-platforms"]);
    const [whole] = await inspectBundle(all);
    assert.equal(whole!.digest, top.digest, "the outer index is the source's");
  });

  it("docker's manifest.json names the host platform of a nested index (podman load needs it)", async () => {
    const bundle = join(dir, "nested-docker.tar");
    await pack([`oci:${join(out, "nested-index")}`], bundle, join(dir, "cache"), ["--all-platforms"]);
    const archive = join(dir, "nested-docker-archive.tar");
    await airpackOk(["unpack", bundle, "-o", archive]);
    const entries = JSON.parse((await tarMember(archive, "manifest.json")).toString()) as {
      Config: string;
      RepoTags: string[];
    }[];
    const amd64Configs: string[] = [];
    for (const image of await layoutImages(join(out, "nested-index"))) {
      if (image.config.architecture === "amd64")
        amd64Configs.push(`blobs/sha256/${image.manifest.config.digest.slice(7)}`);
    }
    assert.deepEqual(entries.map((e) => e.RepoTags).sort(), [
      ["localhost/nested-index:list-in-oci"],
      ["localhost/nested-index:oci-in-oci"],
    ]);
    for (const e of entries) assert.ok(amd64Configs.includes(e.Config), `${e.Config} is an amd64 config`);
  });

  it("an index that names no platforms at all (artifacts, a loop) is copied whole without --all-platforms", async () => {
    const bundle = join(dir, "index-fields-default.tar");
    await pack([`oci:${join(out, "index-fields")}`], bundle, join(dir, "cache"));
    const loop = (await inspectBundle(bundle)).find((i) => i.name === "localhost/index-fields:loop");
    const index = JSON.parse(await readFile(join(out, "index-fields", "index.json"), "utf8")) as {
      manifests: { digest: string; annotations: Record<string, string> }[];
    };
    const want = index.manifests.find((m) => m.annotations["org.opencontainers.image.ref.name"] === "loop")!;
    assert.equal(loop?.digest, want.digest);
  });

  it("an index.json entry that is no manifest at all is named with its type", async () => {
    const r = await runAirpack([
      "pack",
      `oci:${join(out, "unknown-type")}`,
      "--cache",
      join(dir, "cache"),
      "-o",
      join(dir, "unknown.tar"),
    ]);
    assertOneLineError(r, /invalid-mime: x-completely-unknown is neither an image index nor a manifest \(not JSON\)/);
  });

  for (const [kind, magic, tool] of [
    ["gzip", "1f8b0800", "gunzip"],
    ["zstd", "28b52ffd", "unzstd"],
    ["xz", "fd377a585a00", "unxz"],
  ] as const) {
    it(`a ${kind}-compressed archive (docker save | ${kind}) is refused with how to fix it`, async () => {
      const file = join(dir, `saved.tar.${kind}`);
      await writeFile(file, Buffer.concat([Buffer.from(magic, "hex"), Buffer.alloc(2048, 7)]));
      for (const transport of ["docker-archive", "oci-archive"]) {
        const r = await runAirpack([
          "pack",
          `${transport}:${file}`,
          "--cache",
          join(dir, "cache"),
          "-o",
          join(dir, "compressed.tar"),
        ]);
        assertOneLineError(
          r,
          new RegExp(`saved\\.tar\\.${kind}: ${kind}-compressed, not a plain tar: ${tool} it first`),
        );
      }
    });
  }

  it("an archive transport given a directory (podman save --format docker-dir) says so", async () => {
    for (const transport of ["docker-archive", "oci-archive"]) {
      const target = join(out, "nested-index");
      const r = await runAirpack([
        "pack",
        `${transport}:${target}`,
        "--cache",
        join(dir, "cache"),
        "-o",
        join(dir, "d.tar"),
      ]);
      assertOneLineError(
        r,
        new RegExp(
          `${transport}:.*nested-index is a directory, not a tar file \\(read an OCI layout directory with oci:DIR\\)`,
        ),
      );
    }
  });

  it("--layers uncompressed: a layer stored once for itself and for a gzip of it in the same image restores", async () => {
    // empty-layers lists a zero-byte layer and the gzip of zero bytes: both are stored as the same
    // uncompressed blob, which the unpack needs twice (as it is, and to rebuild the gzip from).
    const layout = join(out, "empty-layers");
    const index = JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as { manifests: { digest: string }[] };
    const bundle = join(dir, "empty-uncompressed.tar");
    await pack([`oci:${layout}`], bundle, join(dir, "cache"), ["--layers", "uncompressed"]);
    await airpackOk(["verify", bundle]);
    const restored = join(dir, "empty-restored");
    await airpackOk(["unpack", bundle, "--format", "oci", "-o", restored]);
    const images = await layoutImages(restored);
    assert.deepEqual(
      images.map((i) => i.top.digest),
      [index.manifests[0]!.digest],
      "the source's manifest digest, every layer rebuilt",
    );
  });

  it("docker save (≤ 24) layer.tar symlinks to ../<id>/layer.tar are followed, within and across images", async () => {
    const bundle = join(dir, "moby.tar");
    await pack([specIn(out, "docker-archive:moby-dedupe.tar")], bundle, join(dir, "cache"));
    const child = (await inspectBundle(bundle)).find((i) => i.name === "example.com/moby/child:2");
    assert.equal(child?.platforms[0]?.layers.length, 4);
    const layers = child!.platforms[0]!.layers.map((l) => l.digest);
    assert.equal(layers[1], layers[2], "the empty layer twice, as one blob");
    await airpackOk(["verify", bundle]);
  });

  it("a symlink that climbs out of the archive is refused, naming it", async () => {
    const root = join(dir, "escape");
    execFileSync("sh", [
      "-c",
      'mkdir -p "$1/a" && cd "$1" && printf "%s" "$2" > c.json && ln -s ../../c.json a/layer.tar && ' +
        'printf \'[{"Config":"c.json","RepoTags":["e/x:1"],"Layers":["a/layer.tar"]}]\' > manifest.json && ' +
        "tar -cf ../escape.tar manifest.json c.json a",
      "sh",
      root,
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        rootfs: { type: "layers", diff_ids: [`sha256:${"0".repeat(64)}`] },
      }),
    ]);
    const r = await runAirpack([
      "pack",
      `docker-archive:${join(dir, "escape.tar")}`,
      "--cache",
      join(dir, "c2"),
      "-o",
      join(dir, "e.tar"),
    ]);
    assertOneLineError(r, /a\/layer\.tar links to "\.\.\/\.\.\/c\.json", outside the archive/);
  });

  it("the Docker 25+ partial index: the missing platform fails --all-platforms with one line", async () => {
    const r = await runAirpack([
      "pack",
      specIn(out, "docker-archive:docker25-partial.tar"),
      "--all-platforms",
      "--cache",
      join(dir, "cache"),
      "-o",
      join(dir, "partial-all.tar"),
    ]);
    assertOneLineError(r, /\[linux\/arm64\/v8\]: blob sha256:[0-9a-f]{64} is missing from/);
  });
});
