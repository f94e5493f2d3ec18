/**
 * The inventory shape check (src/inventory/format.ts): a good inventory reads back field for field;
 * every kind of bad one is refused with one line that names the file and the field.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  encodeInventory,
  MAX_INVENTORY_BYTES,
  parseInventory,
  readInventoryFile,
  type Inventory,
} from "../../src/inventory/format";

const D1 = `sha256:${"a".repeat(64)}`;
const D2 = `sha256:${"b".repeat(64)}`;

function good(): Inventory {
  return {
    airpackInventory: 1,
    created: "2026-12-01T10:00:00.000Z",
    sources: [{ kind: "registry", location: "registry.site:5000" }],
    blobs: [{ digest: D1, size: 10 } as Inventory["blobs"][number]],
    manifests: [
      {
        digest: D2,
        size: 500,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        names: ["registry.site:5000/app:v1"],
        refs: [D1],
      } as Inventory["manifests"][number],
    ],
  };
}

/** The inventory with one change made to its parsed JSON. */
function bad(change: (doc: Record<string, unknown>) => void): Buffer {
  const doc = JSON.parse(JSON.stringify(good())) as Record<string, unknown>;
  change(doc);
  return Buffer.from(JSON.stringify(doc));
}

function refused(bytes: Buffer, pattern: RegExp): void {
  assert.throws(
    () => parseInventory(bytes, "site.json"),
    (err: Error) => {
      assert.equal(err.message.split("\n").length, 1, err.message);
      assert.match(err.message, /^site\.json: /);
      assert.match(err.message, pattern);
      return true;
    },
  );
}

type Doc = Record<string, unknown>;
const blob0 = (d: Doc): Doc => (d.blobs as Doc[])[0]!;
const manifest0 = (d: Doc): Doc => (d.manifests as Doc[])[0]!;

describe("inventory format", () => {
  it("reads back what it writes", () => {
    assert.deepEqual(parseInventory(encodeInventory(good()), "site.json"), good());
  });

  it("refuses what is not JSON", () => refused(Buffer.from("{ not json"), /not valid JSON/));
  it("refuses a JSON list", () => refused(Buffer.from("[]"), /expected a JSON object/));
  it("refuses an unknown version", () =>
    refused(
      bad((d) => (d.airpackInventory = 7)),
      /airpackInventory: version 7 is not one/,
    ));
  it("refuses a missing version", () =>
    refused(
      bad((d) => delete d.airpackInventory),
      /airpackInventory/,
    ));
  it("refuses a malformed blob digest", () =>
    refused(
      bad((d) => (blob0(d).digest = "sha256:xyz")),
      /blobs\[0\]\.digest: "sha256:xyz" is not a sha256/,
    ));
  it("refuses a md5 digest in a manifest's refs", () =>
    refused(
      bad((d) => (manifest0(d).refs = ["md5:abc"])),
      /manifests\[0\]\.refs\[0\]/,
    ));
  it("refuses a negative size", () =>
    refused(
      bad((d) => (blob0(d).size = -1)),
      /blobs\[0\]\.size: -1 is not a byte count/,
    ));
  it("refuses a fractional size", () =>
    refused(
      bad((d) => (blob0(d).size = 1.5)),
      /blobs\[0\]\.size: 1\.5 is not a byte count/,
    ));
  it("refuses a size given as a string", () =>
    refused(
      bad((d) => (manifest0(d).size = "500")),
      /manifests\[0\]\.size: "500" is not a byte count/,
    ));
  it("refuses one digest claimed with two sizes", () =>
    refused(
      bad((d) => (d.blobs as Doc[]).push({ digest: D1, size: 11 })),
      /blobs\[1\]: .* sizes 10 and 11/,
    ));
  it("refuses an unknown source kind", () =>
    refused(
      bad((d) => ((d.sources as Doc[])[0]!.kind = "ftp")),
      /sources\[0\]\.kind: "ftp" is not one of/,
    ));
  it("refuses a time that is not one", () =>
    refused(
      bad((d) => (d.created = "yesterday")),
      /created: /,
    ));
  it("refuses blobs that are not a list", () =>
    refused(
      bad((d) => (d.blobs = {})),
      /blobs: not a list/,
    ));
  it("refuses a name that is not a string", () =>
    refused(
      bad((d) => (manifest0(d).names = [5])),
      /manifests\[0\]\.names\[0\]: not a non-empty string/,
    ));

  it("refuses a file over 64 MiB by its size, before reading it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "inv-"));
    try {
      const file = join(dir, "big.json");
      await writeFile(file, "{");
      await truncate(file, MAX_INVENTORY_BYTES + 1); // sparse: nothing is really written
      await assert.rejects(readInventoryFile(file), /big\.json: 67108865 bytes, over the 67108864-byte limit/);
      await assert.rejects(readInventoryFile(join(dir, "none.json")), /none\.json: cannot read the inventory/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
