/**
 * The "zstd-to-gzip" layer mode (what `unpack --for docker` asks for): only zstd layers become
 * gzip, every other layer and every image without a zstd layer keeps its digest. Expected values
 * come from the fixture layout and the system gzip, not from airpack.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { copyImage } from "../../src/copy/copy";
import { targetCompression } from "../../src/copy/layer";
import { OciLayoutSource } from "../../src/transports/layout";
import { Store } from "../../src/store/store";
import { DirTree } from "../../src/util/files";
import { FIXTURES } from "../helpers/cli";
import { makeTempDir, removeDir } from "../helpers/peers/temp";

interface Manifest {
  mediaType: string;
  config: { digest: string };
  layers: { mediaType: string; digest: string }[];
}

const sha = (b: Buffer): string => "sha256:" + createHash("sha256").update(b).digest("hex");
const blob = (root: string, digest: string): Promise<Buffer> =>
  readFile(join(root, "blobs", "sha256", digest.slice(7)));
const OCI = join(FIXTURES, "oci");

let tmp: string;

describe("layer mode zstd-to-gzip", () => {
  before(async () => {
    tmp = await makeTempDir("airpack-zstd-to-gzip-");
  });
  after(async () => {
    await removeDir(tmp);
  });

  it("targets gzip for zstd layers only", () => {
    assert.equal(targetCompression("zstd-to-gzip", "zstd"), "gzip");
    assert.equal(targetCompression("zstd-to-gzip", "gzip"), "gzip");
    assert.equal(targetCompression("zstd-to-gzip", "none"), "none");
  });

  for (const tag of ["mixed", "v2s2", "multi"]) {
    it(`${tag}: zstd layers become gzip of the same tar; everything else keeps its digest`, async () => {
      const storeDir = join(tmp, tag);
      const store = await Store.open(storeDir);
      const source = new OciLayoutSource(new DirTree(OCI), "fixture", tag);
      const [image] = await source.images();
      const report = await copyImage(source, store, image!, {
        layers: "zstd-to-gzip",
        platforms: [],
        allPlatforms: true,
        withAttestations: false,
        jobs: 2,
      });
      await store.close();
      const hasZstd = report.manifests.some((m) => m.layers.some((l) => l.source.mediaType.endsWith("+zstd")));
      if (!hasZstd) {
        assert.equal(report.descriptor.digest, image!.descriptor.digest, "no zstd layer: the image is unchanged");
      }
      for (const m of report.manifests) {
        const original = JSON.parse((await blob(OCI, m.sourceDigest)).toString()) as Manifest;
        const stored = await blob(storeDir, m.descriptor.digest);
        assert.equal(sha(stored), m.descriptor.digest);
        const manifest = JSON.parse(stored.toString()) as Manifest;
        assert.equal(manifest.mediaType, original.mediaType, "the manifest type is kept");
        assert.equal(manifest.config.digest, original.config.digest, "configs are never changed");
        const config = JSON.parse((await blob(OCI, original.config.digest)).toString()) as {
          rootfs: { diff_ids: string[] };
        };
        for (const [i, layer] of manifest.layers.entries()) {
          const src = original.layers[i]!;
          if (!src.mediaType.endsWith("+zstd")) {
            assert.deepEqual([layer.mediaType, layer.digest], [src.mediaType, src.digest], `${tag} layer ${i} kept`);
            continue;
          }
          assert.equal(layer.mediaType, "application/vnd.oci.image.layer.v1.tar+gzip");
          const data = await blob(storeDir, layer.digest);
          assert.equal(sha(data), layer.digest);
          const tar = execFileSync("gzip", ["-dc"], { input: data, maxBuffer: 1 << 28 });
          assert.equal(sha(tar), config.rootfs.diff_ids[i], `${tag} layer ${i} holds the same tar`);
        }
      }
    });
  }
});
