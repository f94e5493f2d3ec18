/**
 * The conversion matrix: every source compression (gzip by gzip/pigz/Go, zstd, none) to every
 * mode. The result is decompressed with the real command-line tools and compared with the
 * config's diff_ids, which come from the fixture files, not from airpack.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { copyImage, type CopyOptions } from "../../src/copy/copy";
import { OciLayoutSource } from "../../src/transports/layout";
import { Store } from "../../src/store/store";
import { DirTree } from "../../src/util/files";
import { FIXTURES } from "../helpers/cli";
import { makeTempDir, removeDir } from "../helpers/peers/temp";
import type { LayerMode } from "../../src/copy/layer-modes";

interface Json {
  [k: string]: unknown;
}
const sha = (b: Buffer): string => "sha256:" + createHash("sha256").update(b).digest("hex");
const blob = (root: string, digest: string): Promise<Buffer> =>
  readFile(join(root, "blobs", "sha256", digest.slice(7)));

function decompressWithTool(data: Buffer, mediaType: string): Buffer {
  if (mediaType.endsWith("gzip")) return execFileSync("gzip", ["-dc"], { input: data, maxBuffer: 1 << 28 });
  if (mediaType.endsWith("zstd")) return execFileSync("zstd", ["-dc", "-q"], { input: data, maxBuffer: 1 << 28 });
  return data;
}

const options = (layers: LayerMode, verifyDiffIds = true): CopyOptions => ({
  layers,
  verifyDiffIds,
  platforms: [{ os: "linux", architecture: "amd64" }],
  allPlatforms: true,
  withAttestations: false,
  jobs: 2,
});

let tmp: string;

describe("layer conversion matrix", () => {
  before(async () => {
    tmp = await makeTempDir("airpack-convert-");
  });
  after(async () => {
    await removeDir(tmp);
  });

  for (const mode of ["keep", "uncompressed", "gzip", "zstd"] as const) {
    for (const tag of ["mixed", "v2s2"]) {
      it(`${tag} → --layers ${mode}`, async () => {
        const storeDir = join(tmp, `${tag}-${mode}`);
        const store = await Store.open(storeDir);
        const source = new OciLayoutSource(new DirTree(join(FIXTURES, "oci")), "fixture", tag);
        const [image] = await source.images();
        const report = await copyImage(source, store, image!, options(mode));
        await store.close();

        const original = JSON.parse((await blob(join(FIXTURES, "oci"), image!.descriptor.digest)).toString()) as Json;
        const manifestBytes = await blob(storeDir, report.descriptor.digest);
        assert.equal(sha(manifestBytes), report.descriptor.digest);
        const manifest = JSON.parse(manifestBytes.toString()) as {
          mediaType: string;
          config: { digest: string };
          layers: { mediaType: string; digest: string }[];
        };
        const config = JSON.parse((await blob(join(FIXTURES, "oci"), manifest.config.digest)).toString()) as {
          rootfs: { diff_ids: string[] };
        };
        const originalLayers = original.layers as { mediaType: string; digest: string }[];

        for (const [i, layer] of manifest.layers.entries()) {
          const data = await blob(storeDir, layer.digest);
          assert.equal(sha(data), layer.digest, "stored blob matches its name");
          assert.equal(sha(decompressWithTool(data, layer.mediaType)), config.rootfs.diff_ids[i], `layer ${i} diff_id`);
          const want = mode === "keep" ? originalLayers[i]!.mediaType.replace(/.*(gzip|zstd)$/, "$1") : mode;
          if (mode === "keep") assert.equal(layer.digest, originalLayers[i]!.digest, "keep leaves layers untouched");
          if (mode === "uncompressed") {
            assert.ok(!/gzip|zstd/.test(layer.mediaType), layer.mediaType);
            assert.equal(layer.digest, config.rootfs.diff_ids[i], "an uncompressed layer's digest is its diff_id");
          } else if (want === "gzip" || want === "zstd") {
            assert.ok(layer.mediaType.endsWith(want), `${layer.mediaType} should be ${want}`);
          }
        }
        if (mode === "keep")
          assert.equal(report.descriptor.digest, image!.descriptor.digest, "keep preserves the manifest digest");
        if (tag === "v2s2") {
          const wantType =
            mode === "zstd"
              ? "application/vnd.oci.image.manifest.v1+json"
              : "application/vnd.docker.distribution.manifest.v2+json";
          assert.equal(manifest.mediaType, wantType);
          if (mode !== "zstd")
            assert.ok(manifest.layers.every((l) => l.mediaType.startsWith("application/vnd.docker.")));
          else assert.ok(manifest.layers.every((l) => l.mediaType.startsWith("application/vnd.oci.")));
        }
        assert.equal(
          manifest.config.digest,
          (original.config as { digest: string }).digest,
          "configs are never changed",
        );
      });
    }
  }

  it("stops with an error when a layer does not match its diff_id", async () => {
    const layout = join(tmp, "bad-diffid");
    await mkdir(join(layout, "blobs", "sha256"), { recursive: true });
    const layerTar = execFileSync("tar", ["-cf", "-", "-C", "/etc", "hostname", "os-release"]);
    const layerGz = execFileSync("gzip", ["-nc"], { input: layerTar });
    const config = Buffer.from(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        rootfs: { type: "layers", diff_ids: [sha(Buffer.from("not the layer"))] },
      }),
    );
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha(config), size: config.length },
        layers: [
          { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: sha(layerGz), size: layerGz.length },
        ],
      }),
    );
    for (const b of [layerGz, config, manifest]) await writeFile(join(layout, "blobs", "sha256", sha(b).slice(7)), b);
    await writeFile(join(layout, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
    await writeFile(
      join(layout, "index.json"),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: "application/vnd.oci.image.manifest.v1+json",
            digest: sha(manifest),
            size: manifest.length,
            annotations: { "org.opencontainers.image.ref.name": "bad" },
          },
        ],
      }),
    );
    for (const mode of ["keep", "uncompressed", "zstd"] as const) {
      const store = await Store.open(join(tmp, `bad-store-${mode}`));
      const source = new OciLayoutSource(new DirTree(layout), "bad", undefined);
      const [image] = await source.images();
      await assert.rejects(copyImage(source, store, image!, options(mode)), /diff_id/);
      assert.equal(
        await store.hasBlob({ digest: sha(layerGz) as never, size: layerGz.length }),
        false,
        `${mode}: bad layer must not stay in the store`,
      );
    }
    // Without --verify-diff-ids a kept layer is only checked against its blob digest (like skopeo and crane).
    const store = await Store.open(join(tmp, "bad-store-keep-unchecked"));
    const source = new OciLayoutSource(new DirTree(layout), "bad", undefined);
    const [image] = await source.images();
    await copyImage(source, store, image!, options("keep", false));
    assert.equal(await store.hasBlob({ digest: sha(layerGz) as never, size: layerGz.length }), true);
  });
});
