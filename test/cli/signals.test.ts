/**
 * SIGINT and SIGTERM end every command within 2 s, in every phase, with exit code 130 and nothing
 * left behind: no output, no temp file beside it, no spool directory in $TMPDIR, no temp file in the
 * store. Phases: a download from a registry that never answers, encoder identification in worker
 * threads, the xz child, and an unpack to a stdout nobody reads (spooling). The layouts are made by
 * fixtures/make-big.sh from real files.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, readdir } from "node:fs/promises";
import * as net from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";

import { AIRPACK_BIN, REPO_ROOT, airpackOk, pack } from "../helpers/cli";
import { runOk } from "../helpers/peers/process";
import { makeTempDir, removeDir } from "../helpers/peers/temp";

const LIMIT_MS = 2000;

interface Interrupted {
  code: number | null;
  stderr: string;
  /** Milliseconds from the signal to the exit. */
  tookMs: number;
}

/** Start airpack, wait until `ready()` says the phase has begun, send `sig`, time the exit. */
async function interrupt(
  args: string[],
  sig: NodeJS.Signals,
  ready: () => Promise<boolean>,
  env: NodeJS.ProcessEnv,
): Promise<Interrupted> {
  const child = spawn(process.execPath, [AIRPACK_BIN, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    // stdout is a pipe nobody reads: an unpack to stdout blocks on it, as behind a stalled consumer.
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && child.exitCode === null && !(await ready())) await sleep(50);
  assert.equal(child.exitCode, null, `airpack ended before the phase began: ${stderr}`);
  const sent = Date.now();
  child.kill(sig);
  const code = await Promise.race([exited, sleep(10_000).then(() => "timeout" as const)]);
  if (code === "timeout") {
    child.kill("SIGKILL");
    assert.fail(`airpack ${args[0]} ignored ${sig} for 10 s: ${stderr}`);
  }
  return { code, stderr, tookMs: Date.now() - sent };
}

async function isEmpty(dir: string): Promise<boolean> {
  return (await readdir(dir).catch(() => [] as string[])).length === 0;
}

describe("signals end every phase within 2 s and leave nothing", { timeout: 600_000 }, () => {
  let dir = "";
  let plainLayout = "";
  let gzipLayout = "";
  let bigBundle = "";
  let silent: net.Server | undefined;
  let silentPort = 0;
  const held: net.Socket[] = [];

  before(async () => {
    dir = await makeTempDir("airpack-signals-");
    plainLayout = join(dir, "layout");
    await runOk("bash", [join(REPO_ROOT, "fixtures", "make-big.sh"), plainLayout, "64", "1"]);
    // The same layer gzipped (node's zlib: no encoder model matches it, so identification runs to the end).
    gzipLayout = join(dir, "gzip-layout");
    const seed = join(dir, "seed.tar");
    await pack([`oci:${plainLayout}`], seed, join(dir, "cache-seed"), ["-q"]);
    await airpackOk([
      "unpack",
      seed,
      "--layers",
      "gzip",
      "--format",
      "oci",
      "--cache",
      join(dir, "cache-seed"),
      "-o",
      gzipLayout,
    ]);
    bigBundle = join(dir, "big.tar.zst");
    await pack([`oci:${plainLayout}`], bigBundle, join(dir, "cache-seed"), ["-q", "--compress", "zstd"]);
    // A "registry" that accepts connections and never answers: a download that can only be interrupted.
    silent = net.createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => silent!.listen(0, "127.0.0.1", resolve));
    silentPort = (silent.address() as net.AddressInfo).port;
  });

  after(async () => {
    for (const s of held) s.destroy();
    await new Promise<void>((resolve) => (silent ? silent.close(() => resolve()) : resolve()));
    if (dir) await removeDir(dir);
  });

  /** A fresh output dir, $TMPDIR and store for one run. */
  async function places(name: string): Promise<{ out: string; tmp: string; cache: string }> {
    const out = join(dir, `${name}-out`);
    const tmp = join(dir, `${name}-tmp`);
    const cache = join(dir, `${name}-cache`);
    await mkdir(out);
    await mkdir(tmp);
    return { out, tmp, cache };
  }

  async function assertClean(r: Interrupted, sig: NodeJS.Signals, p: { out: string; tmp: string; cache: string }) {
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, new RegExp(sig));
    assert.ok(r.tookMs <= LIMIT_MS, `exit took ${r.tookMs} ms after ${sig}`);
    assert.deepEqual(await readdir(p.out), [], "no output and no temp file beside it");
    assert.deepEqual(await readdir(p.tmp), [], "no spool directory in $TMPDIR");
    assert.ok(await isEmpty(join(p.cache, "ingest")), "no temp file in the store");
  }

  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    it(`${sig} during a download that never arrives`, async () => {
      const p = await places(`download-${sig}`);
      const before = held.length;
      const r = await interrupt(
        ["pack", `127.0.0.1:${silentPort}/stalled/image:1`, "--cache", p.cache, "-o", join(p.out, "b.tar")],
        sig,
        async () => held.length > before,
        { TMPDIR: p.tmp, AIRPACK_IDLE_TIMEOUT_MS: "600000", AIRPACK_CONNECT_TIMEOUT_MS: "600000" },
      );
      await assertClean(r, sig, p);
    });

    it(`${sig} while workers identify a gzip layer's encoder`, async () => {
      const p = await places(`workers-${sig}`);
      const ingest = join(p.cache, "ingest");
      const r = await interrupt(
        ["pack", `oci:${gzipLayout}`, "--layers", "uncompressed", "--cache", p.cache, "-o", join(p.out, "b.tar.zst")],
        sig,
        // The uncompressed tar is being written into the store while the candidates run.
        async () => !(await isEmpty(ingest)),
        { TMPDIR: p.tmp },
      );
      await assertClean(r, sig, p);
    });

    it(`${sig} while the xz child compresses`, async () => {
      const p = await places(`xz-${sig}`);
      const r = await interrupt(
        [
          "pack",
          `oci:${plainLayout}`,
          "--cache",
          p.cache,
          "--compress",
          "xz",
          "--level",
          "9",
          "-T",
          "1",
          "-o",
          join(p.out, "b.tar.xz"),
        ],
        sig,
        async () => (await readdir(p.out)).some((n) => n.includes("airpack-tmp")),
        { TMPDIR: p.tmp },
      );
      await assertClean(r, sig, p);
    });

    it(`${sig} while unpack spools for a stdout nobody reads`, async () => {
      const p = await places(`spool-${sig}`);
      const r = await interrupt(["unpack", bigBundle, "-o", "-"], sig, async () => !(await isEmpty(p.tmp)), {
        TMPDIR: p.tmp,
      });
      await assertClean(r, sig, p);
    });
  }
});
