/**
 * Ctrl-C during a pack or an unpack leaves no file at the output path and no temp files beside it,
 * and exits 130. The layout is made from real files by fixtures/make-big.sh.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { AIRPACK_BIN, REPO_ROOT, pack } from "../helpers/cli";
import { runOk } from "../helpers/peers/process";
import { makeTempDir, removeDir } from "../helpers/peers/temp";

let dir: string;

/**
 * Start airpack, wait until a temp output appears in `watchDir` (or `afterMs` passed), send SIGINT,
 * return exit code and stderr.
 */
async function interruptWhenWriting(
  args: string[],
  watchDir: string,
  isTemp: (name: string) => boolean = (n) => n.includes("airpack-tmp"),
): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [AIRPACK_BIN, ...args], {
    cwd: REPO_ROOT,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const names = await readdir(watchDir).catch(() => [] as string[]);
    if (names.some(isTemp)) break;
    await sleep(50);
  }
  await sleep(300);
  child.kill("SIGINT");
  return { code: await exited, stderr };
}

describe("interrupting", () => {
  before(async () => {
    dir = await makeTempDir("airpack-int-");
    await runOk("bash", [join(REPO_ROOT, "fixtures", "make-big.sh"), join(dir, "layout"), "48", "1"]);
  });
  after(async () => {
    await removeDir(dir);
  });

  it("pack leaves nothing at OUT", async () => {
    const outDir = join(dir, "pack-out");
    await runOk("mkdir", ["-p", outDir]);
    const r = await interruptWhenWriting(
      [
        "pack",
        `oci:${join(dir, "layout")}`,
        "--cache",
        join(dir, "cache"),
        "--compress",
        "xz",
        "--level",
        "9",
        "-T",
        "1",
        "-o",
        join(outDir, "b.tar.xz"),
      ],
      outDir,
    );
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /SIGINT/);
    assert.deepEqual(await readdir(outDir), [], "no output and no temp files");
  });

  it("unpack leaves nothing at OUT", async () => {
    const bundle = join(dir, "b.tar");
    await pack([`oci:${join(dir, "layout")}`], bundle, join(dir, "cache"), ["-q"]);
    const outDir = join(dir, "unpack-out");
    await runOk("mkdir", ["-p", outDir]);
    // Converting layers (CPU-bound) keeps the command busy long enough to be interrupted mid-way:
    // the signal is sent while the converted layer is being written into the store.
    const r = await interruptWhenWriting(
      [
        "unpack",
        bundle,
        "--format",
        "oci",
        "--layers",
        "gzip",
        "--cache",
        join(dir, "cache2"),
        "-o",
        join(outDir, "layout"),
      ],
      join(dir, "cache2", "ingest"),
      () => true,
    );
    assert.deepEqual(await readdir(join(dir, "cache2", "ingest")), [], "no temp files in the store");
    assert.equal(r.code, 130, r.stderr);
    assert.deepEqual(await readdir(outDir), [], "no output and no temp files");
  });
});
