import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { DigestStream, parseDigest, sha256 } from "../../src/oci/digest";
import { checkBytes, parseJson, parseManifest, MAX_JSON_BYTES } from "../../src/oci/descriptor";

const sink = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });
const hex = (b: Buffer): string => "sha256:" + createHash("sha256").update(b).digest("hex");

describe("digests", () => {
  const data = Buffer.from("hello airpack ".repeat(1000));

  it("matches an independent sha256", () => {
    assert.equal(sha256(data), hex(data));
  });

  it("passes a matching stream and reports digest and size", async () => {
    const check = new DigestStream({ digest: hex(data), size: data.length });
    await pipeline(Readable.from([data.subarray(0, 10), data.subarray(10)]), check, sink());
    assert.deepEqual(check.digest, { digest: hex(data), size: data.length });
  });

  it("fails on a byte change, a short stream and a long stream", async () => {
    const bad = Buffer.from(data);
    bad[5] = 0;
    await assert.rejects(
      pipeline(Readable.from([bad]), new DigestStream({ digest: hex(data), size: data.length }, "blob x"), sink()),
      /blob x: digest mismatch/,
    );
    await assert.rejects(
      pipeline(Readable.from([data.subarray(1)]), new DigestStream({ digest: hex(data), size: data.length }), sink()),
      /size mismatch/,
    );
    await assert.rejects(
      pipeline(
        Readable.from([data, Buffer.from("!")]),
        new DigestStream({ digest: hex(data), size: data.length }),
        sink(),
      ),
      /size mismatch/,
    );
  });

  it("rejects malformed digests", () => {
    assert.throws(() => parseDigest("sha256:ABC"), /invalid digest/);
    assert.throws(() => parseDigest("sha512:" + "a".repeat(128)), /sha256 only/);
    assert.equal(parseDigest("sha256:" + "a".repeat(64)), "sha256:" + "a".repeat(64));
  });

  it("checks small documents against descriptors", () => {
    assert.doesNotThrow(() => checkBytes(data, { digest: hex(data), size: data.length }, "m"));
    assert.throws(
      () => checkBytes(data, { digest: hex(Buffer.from("x")), size: data.length }, "m"),
      /m: digest mismatch/,
    );
  });

  it("caps JSON documents and rejects schema 1 manifests", () => {
    assert.throws(() => parseJson(Buffer.alloc(MAX_JSON_BYTES + 1, 32), "big"), /limit/);
    assert.throws(() => parseJson(Buffer.from("[1]"), "arr"), /JSON object/);
    assert.throws(() => parseManifest(Buffer.from('{"schemaVersion":1,"fsLayers":[]}'), "old"), /schema 1/);
  });
});
