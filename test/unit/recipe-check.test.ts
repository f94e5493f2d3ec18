/**
 * The recipe checks a bundle's airpack.json goes through before anything runs a recipe
 * (src/recipes/format.ts): the encoder ids it accepts are exactly the candidates airpack has.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { allCandidates, candidateById } from "../../src/recipes/encoders";
import { checkRecipe, isKnownEncoderId } from "../../src/recipes/format";

const HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]).toString("base64");

describe("recipe checks", () => {
  it("know every encoder id a recipe may name, and no other", () => {
    const ids = new Set(allCandidates().map((c) => c.id));
    for (const l of [1, 2, 3, 4, 5, 6, 7, 8, 9]) ids.add(`pigz-p1-l${l}`); // retired from identification
    for (const id of ids) {
      assert.ok(candidateById(id), id);
      assert.ok(isKnownEncoderId(id), id);
    }
    for (const family of ["go-flate-", "pgzip-1MiB-l", "zlib-", "gnu-gzip-", "pigz-128k-l", "pigz-p1-l"]) {
      for (const level of ["-3", "-1", "10", "99", "1e9", "", "6 ", "06"]) {
        const id = `${family}${level}`;
        assert.equal(isKnownEncoderId(id), candidateById(id) !== undefined, id);
      }
    }
    assert.equal(isKnownEncoderId({ toString: () => "go-flate-6" }), false);
  });

  it("accept a well-formed recipe and refuse the malformed ones", () => {
    const good = { format: "gzip", encoder: "zlib-6", family: "zlib", level: 6, versions: "v", header: HEADER };
    assert.doesNotThrow(() => checkRecipe(good, 100, "l"));
    const member = (size: number): object => ({ ...good, size });
    assert.doesNotThrow(() => checkRecipe({ ...good, members: [member(40), member(0), member(60)] }, 100, "l"));
    for (const [why, bad, pattern] of [
      ["format", { ...good, format: "zstd" }, /format "zstd"/],
      ["no format", { ...good, format: undefined }, /format missing/],
      ["encoder", { ...good, encoder: "go-flate-10" }, /encoder "go-flate-10"/],
      ["level", { ...good, level: 1e9 }, /level/],
      ["header", { ...good, header: "not base64!" }, /header/],
      ["short header", { ...good, header: HEADER.slice(0, 8) }, /header/],
      ["sum", { ...good, members: [member(40), member(59)] }, /hold 99 bytes/],
      ["over", { ...good, members: [member(2 ** 53), member(2 ** 53)] }, /size|more than/],
      ["negative", { ...good, members: [member(-1), member(101)] }, /size must be a byte count.*\(got -1\)/],
      ["fraction", { ...good, members: [member(0.5), member(99.5)] }, /size must be a byte count.*\(got 0.5\)/],
      ["empty list", { ...good, members: [] }, /members/],
      ["not an object", "gzip", /must be an object/],
    ] as const) {
      assert.throws(() => checkRecipe(bad, 100, "l"), pattern, why);
    }
  });
});
