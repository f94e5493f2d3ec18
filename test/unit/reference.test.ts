import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { formatReference, normalizeName, parseReference, tryNormalizeName } from "../../src/oci/reference";

describe("references normalise like docker", () => {
  const cases: [string, string][] = [
    ["alpine", "docker.io/library/alpine:latest"],
    ["alpine:3.20", "docker.io/library/alpine:3.20"],
    ["library/alpine:3.20", "docker.io/library/alpine:3.20"],
    ["docker.io/alpine", "docker.io/library/alpine:latest"],
    ["index.docker.io/library/alpine:1", "docker.io/library/alpine:1"],
    ["registry-1.docker.io/library/alpine:1", "docker.io/library/alpine:1"],
    ["bitnami/redis:7", "docker.io/bitnami/redis:7"],
    ["ghcr.io/org/app:v1.2.3", "ghcr.io/org/app:v1.2.3"],
    ["localhost/app", "localhost/app:latest"],
    ["localhost:5000/a/b/c:tag", "localhost:5000/a/b/c:tag"],
    ["127.0.0.1:5000/app:1", "127.0.0.1:5000/app:1"],
    ["quay.io/a/b-c_d.e:1.0-rc", "quay.io/a/b-c_d.e:1.0-rc"],
  ];
  for (const [input, want] of cases) {
    it(`${input} → ${want}`, () => assert.equal(normalizeName(input), want));
  }

  it("keeps tag and digest; the digest is authoritative", () => {
    const d = "sha256:" + "ab".repeat(32);
    const ref = parseReference(`alpine:3.20@${d}`);
    assert.equal(ref.tag, "3.20");
    assert.equal(ref.digest, d);
    assert.equal(formatReference(ref), `docker.io/library/alpine:3.20@${d}`);
    assert.equal(parseReference(`ghcr.io/x/y@${d}`).tag, undefined);
  });

  for (const bad of [
    "",
    "Alpine",
    "ghcr.io/Org/app",
    "alpine@sha256:123",
    "a b",
    "alpine:",
    "-lead/x",
    "x/../y",
    "alpine@md5:" + "a".repeat(32),
  ]) {
    it(`rejects ${JSON.stringify(bad)}`, () => {
      assert.throws(() => parseReference(bad), /invalid reference/);
      assert.equal(tryNormalizeName(bad), undefined);
    });
  }
});
