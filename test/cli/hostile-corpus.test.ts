/**
 * Issue 12 ("Trust nothing, for real"): every bundle of the hostile corpus (test/helpers/hostile-bundles.ts)
 * goes through verify, verify --deep, unpack into a directory, unpack into a file, unpack from stdin to
 * stdout, and unpack --layers uncompressed. Each run must end with exit 1 and one line on stderr (no stack
 * trace), leave nothing in the output directory or in $TMPDIR (a fresh one per run), finish within
 * TIME_BOUND_MS and stay under RSS_BOUND_KB of peak RSS, as /usr/bin/time -f %M measures it.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createReadStream, existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { AIRPACK_BIN, REPO_ROOT } from "../helpers/cli";
import { makeHostileCorpus, makeLongBundle, MODES, type HostileCase, type Mode } from "../helpers/hostile-bundles";
import { makeTempDir, removeDir } from "../helpers/peers/temp";

/** Peak RSS allowed for any run, in KiB (the documented bound: docs/bundle-format.md, "Limits"). */
const RSS_BOUND_KB = 300 * 1024;
/** Wall time allowed for any run (2 shared cores; a failing run takes well under a second here). */
const TIME_BOUND_MS = 15_000;

let dir: string;
let cases: HostileCase[] = [];
const measured: { name: string; mode: Mode; code: number; ms: number; rssKb: number; line: string }[] = [];

function args(mode: Mode, file: string, out: string, cache: string): string[] {
  switch (mode) {
    case "verify":
      return ["verify", file];
    case "verify-deep":
      return ["verify", "--deep", file];
    case "unpack-dir":
      return ["unpack", file, "--format", "oci", "-o", join(out, "layout")];
    case "unpack-file":
      return ["unpack", file, "-o", join(out, "images.tar")];
    case "stdin":
      return ["unpack", "-", "-o", "-"];
    case "unpack-uncompressed":
      return ["unpack", file, "--layers", "uncompressed", "--cache", cache, "-o", join(out, "plain.tar")];
  }
}

/** Kill a run (its whole process group: /usr/bin/time and airpack) after this long. */
const KILL_AFTER_MS = TIME_BOUND_MS + 5_000;

/** /usr/bin/time ARGS in a process group of its own, killed whole at KILL_AFTER_MS; stdout is discarded. */
function runBounded(
  argv: string[],
  env: NodeJS.ProcessEnv,
  stdinFile?: string,
): Promise<{ code: number; stderr: string; timedOut: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn("/usr/bin/time", argv, {
      cwd: REPO_ROOT,
      env,
      detached: true,
      stdio: [stdinFile ? "pipe" : "ignore", "pipe", "pipe"],
    });
    let stderr = "";
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // already gone
      }
    }, KILL_AFTER_MS);
    child.stdout!.resume();
    child.stderr!.on("data", (d: Buffer) => {
      if (stderr.length < 65536) stderr += d.toString();
    });
    if (stdinFile) {
      child.stdin!.on("error", () => undefined);
      createReadStream(stdinFile)
        .on("error", () => child.stdin!.destroy())
        .pipe(child.stdin!);
    }
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stderr, timedOut });
    });
  });
}

async function runCase(c: HostileCase, mode: Mode): Promise<void> {
  const base = join(dir, "runs", `${c.name}.${mode}`);
  const tmp = join(base, "tmp");
  const out = join(base, "out");
  await mkdir(tmp, { recursive: true });
  await mkdir(out, { recursive: true });
  const rssFile = join(base, "rss");
  const started = Date.now();
  const r = await runBounded(
    ["-f", "%M", "-o", rssFile, process.execPath, AIRPACK_BIN, ...args(mode, c.file, out, join(base, "cache"))],
    { ...process.env, TMPDIR: tmp, AIRPACK_DEBUG: "" },
    mode === "stdin" ? c.file : undefined,
  );
  const ms = Date.now() - started;
  const rssKb = Number((await readFile(rssFile, "utf8").catch(() => "0")).trim().split("\n").pop());
  const lines = r.stderr.trim().split("\n");
  measured.push({ name: c.name, mode, code: r.code, ms, rssKb, line: lines[0] ?? "" });
  const what = `${c.name} (${c.what}), ${mode}: exit ${r.code}, ${ms} ms, ${rssKb} KiB\n${r.stderr.slice(0, 2000)}`;
  assert.ok(!r.timedOut, `did not finish within ${KILL_AFTER_MS} ms (killed): ${what}`);
  const mustFail = !c.ok && (c.mustFail ?? MODES).includes(mode);
  if (c.ok) assert.equal(r.code, 0, what);
  else if (mustFail) assert.equal(r.code, 1, what);
  else assert.ok(r.code === 0 || r.code === 1, what);
  if (r.code !== 0) {
    assert.equal(lines.length, 1, `one line on stderr: ${what}`);
    assert.match(lines[0]!, /^airpack: \S/, what);
    assert.doesNotMatch(r.stderr, /\n\s+at |node:internal|node:events|Error: |RangeError/, `no stack trace: ${what}`);
    assert.deepEqual(await readdir(out), [], `nothing left in the output directory: ${what}`);
  }
  assert.deepEqual(await readdir(tmp), [], `nothing left in $TMPDIR: ${what}`);
  assert.ok(ms < TIME_BOUND_MS, `finished within ${TIME_BOUND_MS} ms: ${what}`);
  assert.ok(rssKb < RSS_BOUND_KB, `peak RSS under ${RSS_BOUND_KB} KiB: ${what}`);
  await rm(base, { recursive: true, force: true });
}

describe("hostile corpus", { skip: !existsSync("/usr/bin/time") && "needs /usr/bin/time" }, () => {
  before(async () => {
    dir = await makeTempDir("airpack-hostile-");
    const started = Date.now();
    cases = await makeHostileCorpus(join(dir, "corpus"));
    console.log(`# corpus: ${cases.length} bundles in ${Date.now() - started} ms`);
  });
  after(async () => {
    const worst = [...measured].sort((a, b) => b.rssKb - a.rssKb)[0];
    const slowest = [...measured].sort((a, b) => b.ms - a.ms)[0];
    if (worst) console.log(`# worst RSS: ${worst.rssKb} KiB (${worst.name}, ${worst.mode})`);
    if (slowest) console.log(`# slowest: ${slowest.ms} ms (${slowest.name}, ${slowest.mode})`);
    if (process.env.AIRPACK_HOSTILE_REPORT) {
      const { writeFile } = await import("node:fs/promises");
      await writeFile(process.env.AIRPACK_HOSTILE_REPORT, JSON.stringify(measured, null, 1));
    }
    await removeDir(dir);
  });

  it("has at least 30 cases, several in each class", () => {
    assert.ok(cases.length >= 30, `${cases.length} cases`);
    for (const k of [1, 2, 3, 4, 5]) {
      assert.ok(cases.filter((c) => c.issueClass === k).length >= 2, `class ${k}`);
    }
  });

  it("every case, every mode", async (t) => {
    for (const c of cases) {
      await t.test(c.name, async () => {
        for (const mode of MODES) await runCase(c, mode);
      });
    }
  });

  it("stops on SIGTERM in the middle of a long (legitimate-looking) layer, leaving nothing", async () => {
    const file = await makeLongBundle(join(dir, "corpus"));
    for (const mode of ["verify", "unpack-file"] as const) {
      const base = join(dir, "runs", `long.${mode}`);
      const tmp = join(base, "tmp");
      const out = join(base, "out");
      await mkdir(tmp, { recursive: true });
      await mkdir(out, { recursive: true });
      const child = spawn(process.execPath, [AIRPACK_BIN, ...args(mode, file, out, join(base, "cache"))], {
        env: { ...process.env, TMPDIR: tmp },
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
      await new Promise((r) => setTimeout(r, 1500));
      const sent = Date.now();
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      const code = await exited;
      clearTimeout(timer);
      const took = Date.now() - sent;
      assert.equal(code, 130, `${mode}: exit ${code}; ${stderr}`);
      assert.ok(took < 3000, `${mode}: stopped ${took} ms after SIGTERM`);
      assert.doesNotMatch(stderr, /\n\s+at /);
      assert.deepEqual(await readdir(out), []);
      assert.deepEqual(await readdir(tmp), []);
    }
  });
});
