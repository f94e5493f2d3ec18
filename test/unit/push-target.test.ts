/** Where `push` puts each image: prefix, --map rules and --tag for digest-only names. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { parseMap, parsePushTarget, targetOf } from "../../src/copy/push";

describe("push targets", () => {
  it("REGISTRY[/PREFIX]: the path below the source host goes under the prefix", () => {
    assert.deepEqual(parsePushTarget("registry.local:5000/mirror"), {
      registry: "registry.local:5000",
      prefix: "mirror",
    });
    assert.deepEqual(parsePushTarget("docker://10.0.0.1:5000/"), { registry: "10.0.0.1:5000", prefix: "" });
    const t = parsePushTarget("reg:5000/site");
    assert.deepEqual(targetOf("docker.io/library/alpine:3.20", t), { repository: "site/library/alpine", tag: "3.20" });
    assert.deepEqual(targetOf("ghcr.io/org/app@sha256:" + "a".repeat(64), t), { repository: "site/org/app" });
    assert.throws(() => parsePushTarget("reg:5000/Upper"), /lower-case/);
    assert.throws(() => parsePushTarget("not a host"), /not a registry/);
  });

  it("--map rewrites by full name, first match wins; --tag names digest-only images", () => {
    const t = {
      ...parsePushTarget("reg:5000/site"),
      maps: [parseMap("docker.io/library/*=mirror/*"), parseMap("quay.io/x/y=tools/y"), parseMap("quay.io/*=q/*")],
      digestTag: "pinned",
    };
    assert.deepEqual(targetOf("docker.io/library/alpine:3.20", t), { repository: "mirror/alpine", tag: "3.20" });
    assert.deepEqual(targetOf("quay.io/x/y:1", t), { repository: "tools/y", tag: "1" });
    assert.deepEqual(targetOf("quay.io/a/b:2", t), { repository: "q/a/b", tag: "2" });
    assert.deepEqual(targetOf("ghcr.io/o/p:3", t), { repository: "site/o/p", tag: "3" });
    assert.deepEqual(targetOf("ghcr.io/o/p@sha256:" + "b".repeat(64), t), { repository: "site/o/p", tag: "pinned" });
    assert.throws(() => parseMap("nothing"), /FROM=TO/);
    assert.throws(() => parseMap("a=b/*"), /FROM=TO/);
    assert.throws(
      () => targetOf("docker.io/library/alpine:1", { ...t, maps: [parseMap("docker.io/*=UP/*")] }),
      /not a repository/,
    );
  });
});
