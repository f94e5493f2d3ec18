/**
 * The image shapes of other projects' public test data (go-containerregistry, containers/image,
 * regclient, umoci, moby), rebuilt from real files by fixtures/make-peer-shapes.py: every valid one
 * packs and verifies with the names the source gives, with every digest the source has (read here
 * with node:crypto); every invalid one fails with exit 1 and one line naming the cause. The
 * round trips through the real ctr, podman and skopeo are in test/e2e/peer-shapes.test.ts.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { airpackOk, assertOneLineError, pack, runAirpack, sha256Of } from "../helpers/cli";
import { makePeerShapes, specIn } from "../helpers/peer-shapes";
import { makeTempDir, removeDir } from "../helpers/peers/temp";
import { inspectBundle } from "../helpers/registry-fixtures";

describe("peer shapes: pack and verify, or one clear error", { timeout: 300_000 }, () => {
  let dir = "";
  let out = "";

  before(async () => {
    dir = await makeTempDir("airpack-peer-shapes-");
    out = join(dir, "shapes");
    await makePeerShapes(out);
  });
  after(async () => {
    if (dir) await removeDir(dir);
  });

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
    assertOneLineError(r, /a\/layer\.tar links outside the archive/);
  });
});
