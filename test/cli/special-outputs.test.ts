/** Writing to a FIFO (or a device such as /dev/null) must write into it, not rename a file over it. */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { lstat } from "node:fs/promises";
import { join } from "node:path";
import { FIXTURES, runAirpack } from "../helpers/cli";
import { makeTempDir, removeDir } from "../helpers/peers/temp";

let dir: string;

describe("special output files", () => {
  before(async () => {
    dir = await makeTempDir("airpack-fifo-");
  });
  after(async () => {
    await removeDir(dir);
  });

  for (const command of ["pack", "unpack"] as const) {
    it(`${command} -o FIFO writes through the pipe and leaves the FIFO in place`, async () => {
      const fifo = join(dir, `${command}.fifo`);
      execFileSync("mkfifo", [fifo]);
      const reader = spawn("sh", ["-c", 'exec tar -tf - < "$0"', fifo], { stdio: ["ignore", "pipe", "inherit"] });
      let listing = "";
      reader.stdout.setEncoding("utf8").on("data", (d: string) => (listing += d));
      const done = new Promise<void>((resolve) => reader.on("close", () => resolve()));
      const bundle = join(dir, "b.tar");
      if (command === "unpack") {
        const p = await runAirpack([
          "pack",
          `oci:${join(FIXTURES, "oci")}:mixed`,
          "--cache",
          join(dir, "c"),
          "-o",
          bundle,
        ]);
        assert.equal(p.code, 0, p.stderr);
      }
      const args =
        command === "pack"
          ? ["pack", `oci:${join(FIXTURES, "oci")}:mixed`, "--cache", join(dir, "c"), "--compress", "none", "-o", fifo]
          : ["unpack", bundle, "-o", fifo];
      const r = await runAirpack(args);
      assert.equal(r.code, 0, r.stderr);
      await done;
      assert.ok((await lstat(fifo)).isFIFO(), "the FIFO is still a FIFO");
      assert.match(listing, /index\.json/);
    });
  }
});
