/**
 * Multi-platform indexes with BuildKit-style attestation manifests (unknown/unknown) and an unknown
 * artifact type: attestations are packed only with --with-attestations and reported otherwise;
 * every index entry in the bundle points at content inside it.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { FIXTURES, airpackOk, runAirpack } from "../helpers/cli";
import { makeTempDir, removeDir } from "../helpers/peers/temp";

let dir: string;
let layout: string;
const sha = (b: Buffer): string => "sha256:" + createHash("sha256").update(b).digest("hex");

async function put(data: Buffer): Promise<{ digest: string; size: number }> {
  const digest = sha(data);
  await writeFile(join(layout, "blobs", "sha256", digest.slice(7)), data);
  return { digest, size: data.length };
}

describe("attestations and artifacts in an index", () => {
  before(async () => {
    dir = await makeTempDir("airpack-attest-");
    layout = join(dir, "layout");
    await mkdir(join(layout, "blobs", "sha256"), { recursive: true });
    const fixtureIndex = JSON.parse(await readFile(join(FIXTURES, "oci", "index.json"), "utf8")) as {
      manifests: { digest: string; size: number; mediaType: string; annotations: Record<string, string> }[];
    };
    const mixed = fixtureIndex.manifests.find((m) => m.annotations["org.opencontainers.image.ref.name"] === "mixed")!;
    const mixedBytes = await readFile(join(FIXTURES, "oci", "blobs", "sha256", mixed.digest.slice(7)));
    const mixedDoc = JSON.parse(mixedBytes.toString()) as { config: { digest: string }; layers: { digest: string }[] };
    for (const d of [mixed.digest, mixedDoc.config.digest, ...mixedDoc.layers.map((l) => l.digest)]) {
      await put(await readFile(join(FIXTURES, "oci", "blobs", "sha256", d.slice(7))));
    }
    const statement = await put(
      Buffer.from(JSON.stringify({ _type: "https://in-toto.io/Statement/v0.1", subject: [] })),
    );
    const attConfig = await put(
      Buffer.from(
        JSON.stringify({
          architecture: "unknown",
          os: "unknown",
          rootfs: { type: "layers", diff_ids: [statement.digest] },
        }),
      ),
    );
    const attManifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", ...attConfig },
        layers: [
          {
            mediaType: "application/vnd.in-toto+json",
            ...statement,
            annotations: { "in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2" },
          },
        ],
      }),
    );
    const att = await put(attManifest);
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [
          {
            mediaType: mixed.mediaType,
            digest: mixed.digest,
            size: mixed.size,
            platform: { os: "linux", architecture: "amd64" },
          },
          {
            mediaType: "application/vnd.oci.image.manifest.v1+json",
            ...att,
            platform: { os: "unknown", architecture: "unknown" },
            annotations: {
              "vnd.docker.reference.type": "attestation-manifest",
              "vnd.docker.reference.digest": mixed.digest,
            },
          },
        ],
      }),
    );
    const root = await put(index);
    await writeFile(join(layout, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
    await writeFile(
      join(layout, "index.json"),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: "application/vnd.oci.image.index.v1+json",
            ...root,
            annotations: { "org.opencontainers.image.ref.name": "app" },
          },
        ],
      }),
    );
  });
  after(async () => {
    await removeDir(dir);
  });

  it("leaves attestations out by default, and says so", async () => {
    const bundle = join(dir, "no-att.tar");
    const r = await airpackOk([
      "pack",
      `oci:${layout}:app`,
      "--platform",
      "linux/amd64",
      "--cache",
      join(dir, "c"),
      "-o",
      bundle,
    ]);
    assert.match(r.stderr, /left out unknown\/unknown sha256:[0-9a-f]{12}…: attestation \(use --with-attestations\)/);
    const s = JSON.parse((await airpackOk(["inspect", "--json", "--verify", bundle])).stdout.toString()) as {
      images: { platforms: { platform: string }[]; skipped: { reason: string }[] }[];
    };
    assert.deepEqual(
      s.images[0]!.platforms.map((p) => p.platform),
      ["linux/amd64"],
    );
    assert.equal(s.images[0]!.skipped[0]!.reason, "attestation (use --with-attestations)");
    assert.equal((await runAirpack(["verify", bundle])).code, 0, "every index entry points inside the bundle");
  });

  it("packs attestations with --with-attestations, copying their unknown layer types byte for byte", async () => {
    const bundle = join(dir, "att.tar");
    await airpackOk([
      "pack",
      `oci:${layout}:app`,
      "--with-attestations",
      "--layers",
      "zstd",
      "--cache",
      join(dir, "c"),
      "-o",
      bundle,
    ]);
    const s = JSON.parse((await airpackOk(["inspect", "--json", "--verify", bundle])).stdout.toString()) as {
      images: { platforms: { platform: string; layers: { mediaType: string }[] }[]; skipped: unknown[] }[];
    };
    const platforms = s.images[0]!.platforms;
    assert.deepEqual(platforms.map((p) => p.platform).sort(), ["linux/amd64", "unknown/unknown"]);
    const attestation = platforms.find((p) => p.platform === "unknown/unknown")!;
    assert.deepEqual(
      attestation.layers.map((l) => l.mediaType),
      ["application/vnd.in-toto+json"],
      "the in-toto layer is not converted",
    );
    assert.deepEqual(s.images[0]!.skipped, []);
  });
});
