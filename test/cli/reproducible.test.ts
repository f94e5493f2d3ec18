/**
 * Reproducible packs: the same images and options give the same bytes whatever the thread count
 * (xz -T1 is the single-threaded encoder, which writes other bytes) and whatever the store did
 * before; SOURCE_DATE_EPOCH is checked before any download. Bundles are compared byte for byte.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { FIXTURES, assertOneLineError, pack, runAirpack } from "../helpers/cli";
import { makeTempDir, removeDir } from "../helpers/peers/temp";

const OCI = `oci:${join(FIXTURES, "oci")}`;
const EPOCH = { env: { SOURCE_DATE_EPOCH: "1700000000" } };

describe("reproducible packs", () => {
  let dir = "";
  before(async () => (dir = await makeTempDir("airpack-repro-")));
  after(async () => removeDir(dir));

  for (const ext of ["tar.xz", "tar.zst"]) {
    it(`${ext}: --threads 1 and --threads 2, into two fresh stores, give the same bytes`, async () => {
      const files: Buffer[] = [];
      for (const t of ["1", "2"]) {
        const out = join(dir, `t${t}.${ext}`);
        await pack([OCI], out, join(dir, `cache-${ext}-${t}`), ["--all-platforms", "-q", "-T", t], EPOCH);
        files.push(await readFile(out));
      }
      assert.ok(files[0]!.equals(files[1]!), "the bundles differ");
    });
  }

  it("a store that checked diff_ids before gives the same bundle as a fresh one", async () => {
    const warm = join(dir, "warm");
    await pack([OCI], join(dir, "first.tar.xz"), warm, ["--all-platforms", "-q", "--verify-diff-ids"], EPOCH);
    await pack([OCI], join(dir, "warm.tar.xz"), warm, ["--all-platforms", "-q"], EPOCH);
    await pack([OCI], join(dir, "fresh.tar.xz"), join(dir, "fresh"), ["--all-platforms", "-q"], EPOCH);
    const [a, b] = await Promise.all([readFile(join(dir, "warm.tar.xz")), readFile(join(dir, "fresh.tar.xz"))]);
    assert.ok(a.equals(b), "the store's history went into the bundle");
  });

  it("--reproducible without SOURCE_DATE_EPOCH: twice the same bytes", async () => {
    const env = { env: { SOURCE_DATE_EPOCH: "" } };
    const outs = [join(dir, "r1.tar.xz"), join(dir, "r2.tar.xz")];
    for (const [i, out] of outs.entries()) {
      await pack([OCI], out, join(dir, `rcache${i}`), ["--all-platforms", "-q", "--reproducible"], env);
    }
    const [a, b] = await Promise.all(outs.map((o) => readFile(o)));
    assert.ok(a!.equals(b!), "the bundles differ");
  });

  it("a SOURCE_DATE_EPOCH that is not whole seconds: exit 2, one line", async () => {
    const r = await runAirpack(["pack", OCI, "-o", join(dir, "bad.tar.xz"), "--cache", join(dir, "bad")], {
      env: { SOURCE_DATE_EPOCH: "yesterday" },
    });
    assert.equal(r.code, 2, r.stderr);
    assertOneLineError({ ...r, code: 1 }, /SOURCE_DATE_EPOCH=yesterday: expected whole seconds/);
  });
});
