import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  MediaType,
  isNonDistributable,
  layerCompression,
  layerMediaType,
  mediaTypeInfo,
  toOciMediaType,
} from "../../src/oci/mediatypes";

describe("media-type table", () => {
  it("knows the compression of every layer type", () => {
    const expected: [string, string][] = [
      ["application/vnd.oci.image.layer.v1.tar", "none"],
      ["application/vnd.oci.image.layer.v1.tar+gzip", "gzip"],
      ["application/vnd.oci.image.layer.v1.tar+zstd", "zstd"],
      ["application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "gzip"],
      ["application/vnd.docker.image.rootfs.diff.tar.gzip", "gzip"],
      ["application/vnd.docker.image.rootfs.diff.tar", "none"],
      ["application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "gzip"],
    ];
    for (const [type, compression] of expected) assert.equal(layerCompression(type), compression, type);
    assert.equal(layerCompression("application/vnd.oci.image.manifest.v1+json"), undefined);
    assert.equal(layerCompression("application/vnd.in-toto+json"), undefined);
  });

  it("classifies indexes, manifests and configs of both families", () => {
    assert.deepEqual(mediaTypeInfo(MediaType.dockerManifestList), { kind: "index", family: "docker" });
    assert.deepEqual(mediaTypeInfo(MediaType.ociIndex), { kind: "index", family: "oci" });
    assert.equal(mediaTypeInfo(MediaType.dockerConfig)?.kind, "config");
    assert.equal(isNonDistributable(MediaType.dockerForeignLayerGzip), true);
    assert.equal(isNonDistributable(MediaType.ociLayerGzip), false);
  });

  it("maps the conversion matrix to the right layer types", () => {
    for (const c of ["none", "gzip", "zstd"] as const) {
      const t = layerMediaType("oci", c);
      assert.equal(layerCompression(t), c);
      assert.equal(mediaTypeInfo(t)?.family, "oci");
    }
    assert.equal(layerMediaType("docker", "gzip"), "application/vnd.docker.image.rootfs.diff.tar.gzip");
    assert.equal(layerMediaType("docker", "none"), "application/vnd.docker.image.rootfs.diff.tar");
    assert.throws(() => layerMediaType("docker", "zstd"), /no zstd layer type/);
    assert.equal(layerMediaType("oci", "gzip", true), MediaType.ociForeignLayerGzip);
  });

  it("translates docker types to their OCI equivalents", () => {
    assert.equal(toOciMediaType(MediaType.dockerManifest), MediaType.ociManifest);
    assert.equal(toOciMediaType(MediaType.dockerConfig), MediaType.ociConfig);
    assert.equal(toOciMediaType(MediaType.dockerLayerGzip), MediaType.ociLayerGzip);
    assert.equal(toOciMediaType(MediaType.dockerForeignLayerGzip), MediaType.ociForeignLayerGzip);
    assert.equal(toOciMediaType("application/x-unknown"), "application/x-unknown");
  });
});
