/**
 * A consumer that lets go of a blob stream early, because the store already has that blob (two
 * images share a layer), must not break the blob's source: the bundle reads on, and a diff_id check
 * reading the same stream still sees it to its end. Both raced under load as "Premature close".
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { finished } from "node:stream/promises";
import { after, before, describe, it } from "node:test";

import { BundleSource } from "../../src/bundle/source";
import type { Descriptor } from "../../src/oci/descriptor";
import type { Digest } from "../../src/oci/digest";
import { Store } from "../../src/store/store";
import { AIRPACK_BIN, FIXTURES } from "../helpers/cli";
import { makeTempDir, removeDir } from "../helpers/peers/temp";

let dir: string;

before(async () => {
  dir = await makeTempDir("airpack-early-");
});
after(async () => removeDir(dir));

const sha256 = (b: Uint8Array): Digest => `sha256:${createHash("sha256").update(b).digest("hex")}` as Digest;

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe("a blob stream let go early", () => {
  it("store: a blob already there still feeds its gate to the end", async () => {
    const store = await Store.open(join(dir, "store"));
    const bytes = Buffer.alloc(300_000, 7);
    const desc: Descriptor = { mediaType: "application/octet-stream", digest: sha256(bytes), size: bytes.length };
    await store.putBlob(desc, Readable.from([bytes]), "first");
    const data = new PassThrough();
    const gate = readAll(data); // stands for the diff_id check that reads the same stream
    setTimeout(() => data.end(bytes), 50); // arrives after the store has seen the blob is there
    await store.putVerifiedBlob(desc, data, "second", undefined, { gate: gate.then(() => undefined) });
    assert.ok((await gate).equals(bytes));
  });

  it("bundle: a layer stream destroyed by its consumer is read past, and the next one comes", async () => {
    const { bundle, layers } = await fixtureBundle("b.tar");
    const [first, second] = layers;
    const source = await BundleSource.open(bundle, { restoreDigests: false });
    try {
      const dropped = await source.blob(first!, "first layer");
      dropped.destroy();
      await finished(dropped).catch(() => undefined);
      const next = await readAll(await source.blob(second!, "second layer"));
      assert.equal(sha256(next), second!.digest);
      await source.finish();
    } finally {
      await source.close();
    }
  });

  it("bundle: a layer asked for ahead that fails before anyone reads it keeps its error (no crash)", async () => {
    const { bundle, layers } = await fixtureBundle("bad.tar");
    const [first, second] = layers;
    const bytes = await readFile(bundle);
    const blob = await readFile(join(FIXTURES, "oci", "blobs", "sha256", second!.digest.slice(7)));
    const at = bytes.indexOf(blob);
    assert.ok(at > 0);
    bytes[at + Math.floor(blob.length / 2)]! ^= 0xff;
    await writeFile(bundle, bytes);
    const source = await BundleSource.open(bundle, { restoreDigests: false });
    try {
      const firstData = source.blob(first!, "first layer");
      const ahead = source.blob(second!, "second layer"); // nobody listens to it yet
      assert.equal(sha256(await readAll(await firstData)), first!.digest);
      const failed = await ahead;
      await new Promise((r) => setTimeout(r, 100)); // its entry is read, and fails, meanwhile
      await assert.rejects(readAll(failed), /digest|sha256/);
    } finally {
      await source.close();
    }
  });
});

/** A plain-tar bundle of the fixture layout, and its gzip layers in the order the bundle holds them. */
async function fixtureBundle(name: string): Promise<{ bundle: string; layers: Descriptor[] }> {
  const bundle = join(dir, name);
  execFileSync(
    AIRPACK_BIN,
    ["pack", `oci:${join(FIXTURES, "oci")}`, "--all-platforms", "--layers", "keep"].concat([
      "-q",
      "-o",
      bundle,
      "--cache",
      join(dir, "cache"),
    ]),
  );
  const layers: Descriptor[] = [];
  for (const line of execFileSync("tar", ["-tvf", bundle], { encoding: "utf8" }).trim().split("\n")) {
    const f = line.split(/\s+/);
    const path = f.at(-1)!;
    if (!path.startsWith("blobs/sha256/")) continue;
    const head = await readFile(join(FIXTURES, "oci", path)).catch(() => Buffer.alloc(0));
    if (head[0] !== 0x1f || head[1] !== 0x8b) continue;
    layers.push({
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      digest: `sha256:${path.slice("blobs/sha256/".length)}` as Digest,
      size: Number(f[2]),
    });
  }
  assert.ok(layers.length >= 2, "the fixture bundle has two layers");
  return { bundle, layers };
}
