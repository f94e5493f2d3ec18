/**
 * S. `airpack serve` over a .tar.xz bundle served from its xz blocks (no unpack): time to the first
 * byte of every layer (the last one sits at the end of the bundle), one-stream throughput against
 * `xz -dc -T1` of the whole bundle, and 50 parallel pulls (aggregate MB/s, peak RSS of serve and its
 * xz children).
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { rm } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import {
  AIRPACK,
  envInt,
  fileSize,
  kbToMb,
  log,
  makeLayout,
  mb,
  mbps,
  q,
  run,
  sec,
  sh,
  table,
  tmp,
  TreeSampler,
  verdict,
  xzUncompressedSize,
  type OciDescriptor,
  type PartResult,
} from "./lib";

export const SERVE_MB = envInt("BENCH_SERVE_MB", 500);
const LAYERS = 8;
const PARALLEL = 50;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** GET a blob: ms to its first byte, then (unless `firstOnly`) every byte, hashed. */
async function pull(url: string, firstOnly: boolean): Promise<{ ttfbMs: number; bytes: number; digest: string }> {
  const t0 = performance.now();
  const res = await fetch(url);
  if (res.status !== 200 || !res.body) throw new Error(`${url}: ${res.status}`);
  const reader = res.body.getReader();
  const hash = createHash("sha256");
  let ttfbMs = 0;
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (bytes === 0) ttfbMs = performance.now() - t0;
    bytes += value.length;
    hash.update(value);
    if (firstOnly) {
      await reader.cancel();
      break;
    }
  }
  return { ttfbMs, bytes, digest: `sha256:${hash.digest("hex")}` };
}

export async function benchServe(): Promise<PartResult> {
  const dir = join(tmp(), "serve");
  const layout = join(dir, "layout");
  const made = await makeLayout(layout, SERVE_MB, LAYERS);
  const bundle = join(dir, "site.tar.xz");
  log(`serve: pack ${mb(made.layerBytes)} to .tar.xz`);
  await run("pack", [
    AIRPACK,
    "pack",
    `oci:${layout}`,
    "--compress",
    "xz",
    "-o",
    bundle,
    "--cache",
    join(dir, "c"),
    "-q",
  ]);
  await rm(layout, { recursive: true, force: true });
  await rm(join(dir, "c"), { recursive: true, force: true });
  const tarBytes = xzUncompressedSize(bundle);
  const xzd = await run("xz -dc", sh(`exec xz -dc -T1 ${q(bundle)} > /dev/null`));
  const xzRate = tarBytes / xzd.wall;

  const port = await freePort();
  const t0 = Date.now();
  const child = spawn(
    process.execPath,
    [AIRPACK, "serve", bundle, "--listen", `127.0.0.1:${port}`, "--cache", join(dir, "c2")],
    {
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let serveLog = "";
  child.stderr.on("data", (c: Buffer) => (serveLog += c.toString("utf8")));
  try {
    while (!serveLog.includes("serving ")) {
      if (child.exitCode !== null) throw new Error(`serve exited:\n${serveLog}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const startS = (Date.now() - t0) / 1000;
    if (!/from its xz blocks/.test(serveLog)) throw new Error(`serve did not serve in place:\n${serveLog}`);
    const catalog = (await (await fetch(`http://127.0.0.1:${port}/v2/_catalog`)).json()) as { repositories: string[] };
    const repo = catalog.repositories[0]!;
    const url = (l: OciDescriptor): string => `http://127.0.0.1:${port}/v2/${repo}/blobs/${l.digest}`;
    const ttfbs: number[] = [];
    for (const l of made.layers) ttfbs.push((await pull(url(l), true)).ttfbMs);
    const biggest = [...made.layers].sort((a, b) => b.size - a.size)[0]!;
    const s0 = performance.now();
    const one = await pull(url(biggest), false);
    const oneS = (performance.now() - s0) / 1000;
    if (one.digest !== biggest.digest) throw new Error("serve sent a wrong blob");
    const oneRate = one.bytes / oneS;

    const sampler = new TreeSampler(child.pid!, true);
    const p0 = performance.now();
    const all = await Promise.all(
      Array.from({ length: PARALLEL }, (_, i) => pull(url(made.layers[i % made.layers.length]!), false)),
    );
    const parS = (performance.now() - p0) / 1000;
    const rss = sampler.stop();
    const wrong = all.filter((r, i) => r.digest !== made.layers[i % made.layers.length]!.digest).length;
    const parBytes = all.reduce((n, r) => n + r.bytes, 0);
    const maxTtfb = Math.max(...ttfbs);
    const ratio = oneRate / xzRate;
    return {
      metrics: [
        {
          metric: "serve .tar.xz: first byte of a blob, worst of every layer",
          value: `${maxTtfb.toFixed(0)} ms (first layer ${ttfbs[0]!.toFixed(0)}, last ${ttfbs[ttfbs.length - 1]!.toFixed(0)})`,
          target: "< 200 ms",
          verdict: verdict(maxTtfb < 200),
        },
        {
          metric: "serve .tar.xz: one stream / xz -dc -T1",
          value: `${ratio.toFixed(2)} (${mbps(one.bytes, oneS)} vs ${mbps(tarBytes, xzd.wall)})`,
          target: "≥ 0.80",
          verdict: verdict(ratio >= 0.8),
        },
        {
          metric: `serve .tar.xz: peak RSS, ${PARALLEL} parallel pulls (serve + xz children)`,
          value: `${kbToMb(rss.rssSumPeakKb)} (${rss.processes})`,
          target: "< 300 MB",
          verdict: verdict((rss.rssSumPeakKb * 1024) / 1e6 < 300 && wrong === 0),
        },
      ],
      sections: [
        {
          title: `S. Serve a ${mb(await fileSize(bundle))} .tar.xz (${mb(tarBytes)} of tar, ${LAYERS} layers) from its xz blocks`,
          body: [
            table(
              ["measure", "value"],
              [
                ["start-up, first run (one indexing pass, then cached)", sec(startS)],
                ["first byte, per layer in bundle order (ms)", ttfbs.map((t) => t.toFixed(0)).join(" / ")],
                [`one stream, ${mb(biggest.size)} layer`, `${mbps(one.bytes, oneS)}`],
                ["xz -dc -T1 of the whole bundle", `${mbps(tarBytes, xzd.wall)} (${sec(xzd.wall)})`],
                [
                  `${PARALLEL} parallel pulls (${mb(parBytes)})`,
                  `${mbps(parBytes, parS)} aggregate, ${sec(parS)}, ${wrong} wrong digests`,
                ],
                ["peak RSS during them (sum over serve and its xz)", `${kbToMb(rss.rssSumPeakKb)}`],
              ],
            ),
            "",
            "Each pull holds one `xz -dc -T1` (at most AIRPACK_SERVE_DECODERS, default 8, at once; the rest wait), " +
              "so parallel pulls use every core through separate processes; node only hashes and copies.",
          ].join("\n"),
        },
      ],
    };
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    await rm(dir, { recursive: true, force: true });
  }
}
