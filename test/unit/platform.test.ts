import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { formatPlatform, parsePlatformString, platformMatches, isAttestationPlatform } from "../../src/oci/platform";

describe("platforms", () => {
  it("parses and normalises os/arch/variant", () => {
    assert.deepEqual(parsePlatformString("linux/amd64"), { os: "linux", architecture: "amd64" });
    assert.deepEqual(parsePlatformString("linux/x86_64"), { os: "linux", architecture: "amd64" });
    assert.deepEqual(parsePlatformString("linux/arm64/v8"), { os: "linux", architecture: "arm64" });
    assert.deepEqual(parsePlatformString("linux/arm"), { os: "linux", architecture: "arm", variant: "v7" });
    assert.throws(() => parsePlatformString("linux"), /os\/arch/);
  });

  it("matches like containerd: variant optional on the wanted side", () => {
    assert.ok(
      platformMatches({ os: "linux", architecture: "arm64" }, { os: "linux", architecture: "arm64", variant: "v8" }),
    );
    assert.ok(
      !platformMatches(
        { os: "linux", architecture: "arm", variant: "v6" },
        { os: "linux", architecture: "arm", variant: "v7" },
      ),
    );
    assert.ok(!platformMatches({ os: "linux", architecture: "amd64" }, undefined));
    assert.ok(isAttestationPlatform({ os: "unknown", architecture: "unknown" }));
    assert.equal(formatPlatform({ os: "linux", architecture: "arm", variant: "v7" }), "linux/arm/v7");
  });
});
