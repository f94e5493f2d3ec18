/**
 * The JSON Schemas of docs/schemas (src/oci/schema.ts): every one compiles in ajv's strict mode,
 * real documents made by real tools (the fixture layouts, built by skopeo and umoci) pass, and a
 * wrong shape is refused with the document and the field named, not a JavaScript error.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseConfig, parseIndex, parseManifest, parseOciLayout } from "../../src/oci/descriptor";
import { parseDockerManifest } from "../../src/oci/docker-manifest";
import { MAX_RECIPE_MEMBERS } from "../../src/oci/limits";
import { schemaCheck } from "../../src/oci/schema";
import { parseMetadata } from "../../src/bundle/format";
import { MAX_PARTS, parsePartsFile } from "../../src/bundle/parts";
import { FIXTURES, REPO_ROOT } from "../helpers/cli";

const SCHEMAS = join(REPO_ROOT, "docs", "schemas");
const D = (c: string): string => `sha256:${c.repeat(64)}`;
const desc = (c: string, extra: object = {}): object => ({ mediaType: "x/y", digest: D(c), size: 2, ...extra });
const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));

/** assert.throws matches a RegExp against "Error: …"; these match the message itself. */
function message(pattern: RegExp): (err: Error) => boolean {
  return (err) => pattern.test(err.message) || assert.fail(err.message);
}

function schema(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(SCHEMAS, file), "utf8")) as Record<string, unknown>;
}

describe("JSON schemas", () => {
  it("compile, each of them, and hold the same limits as src/oci/limits.ts and parts.ts", () => {
    const files = readdirSync(SCHEMAS).filter((f) => f.endsWith(".json"));
    assert.ok(files.length >= 9, files.join(" "));
    for (const f of files.filter((n) => n !== "defs.json"))
      assert.throws(() => schemaCheck(f)(Symbol("not json"), f), message(new RegExp(`^${f}: `)));
    const recipe = schema("recipe.json") as { properties: { members: { maxItems: number } } };
    assert.equal(recipe.properties.members.maxItems, MAX_RECIPE_MEMBERS);
    const parts = schema("parts.json") as { properties: { parts: { maxItems: number } } };
    assert.equal(parts.properties.parts.maxItems, MAX_PARTS);
    const readme = readFileSync(join(SCHEMAS, "README.md"), "utf8");
    for (const f of files) assert.ok(readme.includes(`\`${f}\``), `docs/schemas/README.md lists ${f}`);
  });

  it("accept every document of the fixture layouts (made by skopeo and umoci)", () => {
    let checked = 0;
    for (const layout of readdirSync(FIXTURES, { withFileTypes: true }).filter((e) => e.isDirectory())) {
      const root = join(FIXTURES, layout.name);
      const names = readdirSync(root);
      if (!names.includes("index.json")) continue;
      parseIndex(readFileSync(join(root, "index.json")), `${layout.name}/index.json`);
      if (names.includes("oci-layout")) parseOciLayout(readFileSync(join(root, "oci-layout")), "oci-layout");
      const blobs = join(root, "blobs", "sha256");
      for (const hex of readdirSync(blobs)) {
        const bytes = readFileSync(join(blobs, hex));
        if (bytes.length > 1 << 20 || bytes[0] !== 0x7b) continue;
        let doc: Record<string, unknown>;
        try {
          doc = JSON.parse(bytes.toString("utf8")) as Record<string, unknown>;
        } catch {
          continue; // a layer that happens to start with "{"
        }
        const label = `${layout.name} ${hex}`;
        if (Array.isArray(doc.manifests)) parseIndex(bytes, label);
        else if (doc.rootfs) parseConfig(bytes, label);
        else if (doc.config) parseManifest(bytes, label);
        else continue;
        checked++;
      }
    }
    assert.ok(checked >= 3, `checked ${checked} documents`);
  });

  it("name the document and the field of a wrong shape", () => {
    const manifest = (layers: unknown): Buffer => json({ schemaVersion: 2, config: desc("a"), layers });
    const cases: [string, () => unknown, RegExp][] = [
      [
        "size a string",
        () => parseManifest(manifest([desc("b", { size: "12" })]), "M"),
        /^M: \/layers\/0\/size must be a byte count .*\(got "12"\)$/,
      ],
      ["layers an object", () => parseManifest(manifest({}), "M"), /^M: \/layers must be an array$/],
      ["no config", () => parseManifest(json({ schemaVersion: 2 }), "M"), /^M: \/config is missing$/],
      [
        "manifests a number",
        () => parseIndex(json({ schemaVersion: 2, manifests: 5 }), "I"),
        /^I: \/manifests must be an array \(got 5\)$/,
      ],
      [
        "schemaVersion",
        () => parseIndex(json({ schemaVersion: 3, manifests: [] }), "I"),
        /^I: \/schemaVersion must be 2 \(got 3\)$/,
      ],
      [
        "md5",
        () => parseIndex(json({ schemaVersion: 2, manifests: [desc("a", { digest: "md5:x" })] }), "I"),
        /\/manifests\/0\/digest must be a sha256 digest/,
      ],
      [
        "platform",
        () => parseIndex(json({ schemaVersion: 2, manifests: [desc("a", { platform: { os: "linux" } })] }), "I"),
        /\/manifests\/0\/platform\/architecture is missing/,
      ],
      [
        "diff_ids",
        () => parseConfig(json({ rootfs: { diff_ids: [1] } }), "C"),
        /^C: \/rootfs\/diff_ids\/0 must be a sha256 digest.*\(got 1\)$/,
      ],
      [
        "Layers",
        () => parseDockerManifest(json([{ Config: "c", Layers: "x" }]), "manifest.json"),
        /^manifest.json: \/0\/Layers must be an array \(got "x"\)$/,
      ],
      [
        "not an array",
        () => parseDockerManifest(json({}), "manifest.json"),
        /^manifest.json: the document must be an array$/,
      ],
      [
        "layout",
        () => parseOciLayout(json({ imageLayoutVersion: "2.0.0" }), "L"),
        /^L: \/imageLayoutVersion must be "1.0.0" \(got "2.0.0"\)$/,
      ],
      [
        "images",
        () => parseMetadata(json({ airpackBundleVersion: 1, images: { map: 1 } }), "A"),
        /^A: \/images must be an array$/,
      ],
      [
        "layer mode",
        () =>
          parseMetadata(
            json({
              airpackBundleVersion: 1,
              images: [{ name: "n", manifests: [{ digest: D("a"), layers: [{ ...desc("b"), source: desc("c") }] }] }],
            }),
            "A",
          ),
        /^A: \/images\/0\/manifests\/0\/layers\/0\/mode is missing$/,
      ],
      [
        "parts",
        () =>
          parsePartsFile(
            json({ airpackParts: 1, bundle: "b", size: 1, sha256: "x", partSize: 1, parts: [] }),
            "B",
            "b.parts.json",
          ),
        /^B: b.parts.json is not a valid parts file \(\/sha256 must be a hex sha256.*\); resend b.parts.json$/,
      ],
    ];
    for (const [what, run, pattern] of cases) assert.throws(run, message(pattern), what);
  });

  it("quote field names from the input, escaping control characters and terminal escapes", () => {
    const doc = json({ schemaVersion: 2, manifests: [desc("a", { annotations: { "k\u001b[31m\r\n": 3 } })] });
    assert.throws(
      () => parseIndex(doc, "I"),
      (err: Error) => err.message === 'I: /manifests/0/annotations/"k\\x1b[31m\\r\\n" must be a string (got 3)',
    );
  });
});
