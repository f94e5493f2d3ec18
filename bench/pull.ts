/**
 * Bench part A, "Pull from real registries": a real CNCF registry (test/helpers/peers/registry.ts) holding
 * images whose layers skopeo gzipped on push (pgzip level 1, like real registry images); then
 *   - `airpack pack HOST/bench/img1:1 … --layers keep --compress none` against `skopeo copy
 *     docker://… oci:DIR:imgN` for every image (summed), interleaved, best of BENCH_PULL_REPEAT;
 *   - a second pack with the warm cache, counting blob GETs in the registry's access log;
 *   - peak RSS of the airpack pack (process tree).
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { rm } from "node:fs/promises";
import { missingTools } from "../test/helpers/peers/process";
import { startRegistry, type Registry } from "../test/helpers/peers/registry";
import { createSkopeo, type Skopeo } from "../test/helpers/peers/skopeo";
import {
  AIRPACK,
  KEEP,
  allWalls,
  best,
  cpuOf,
  envInt,
  kbToMb,
  log,
  makeLayout,
  mb,
  mbps,
  peakKb,
  peakMb,
  run,
  sec,
  sleep,
  table,
  tmp,
  verdict,
  writeLayoutIndex,
  type Metric,
  type PartResult,
  type RunResult,
} from "./lib";

/** Uncompressed MiB of all pushed images together (make-big.sh content; pgzip -1 makes ~46 % of it). */
export const PULL_MB = envInt("BENCH_PULL_MB", 480);
const PULL_IMAGES = Math.max(1, envInt("BENCH_PULL_IMAGES", 3));
const PULL_LAYERS = Math.max(1, envInt("BENCH_PULL_LAYERS", 2));
const PULL_REPEAT = Math.max(1, envInt("BENCH_PULL_REPEAT", 5));
const LAYER_ACCEPT = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");

/** argv that runs `skopeo ARGS` with the helper's isolated state, as its run() does (test/helpers/peers/skopeo.ts). */
function skopeoArgv(s: Skopeo, args: string[]): string[] {
  const global = [
    "--policy",
    s.policyPath,
    "--registries.d",
    join(s.dir, "registries.d"),
    "--tmpdir",
    join(s.dir, "tmp"),
  ];
  const argv = ["skopeo", ...global, ...args];
  if (!s.isolated) return argv;
  // A private mount namespace with the helper's varlib over /var/lib (its blob-info cache lives there).
  const wrap = ["--mount", "--propagation", "private", "--", "sh", "-c", 'mount --bind "$0" /var/lib && exec "$@"'];
  return ["unshare", ...wrap, join(s.dir, "varlib"), ...argv];
}

interface PushedImage {
  ref: string;
  compressedBytes: number;
  uncompressedBytes: number;
  layers: number;
}

async function manifestLayers(reg: Registry, repo: string, tag: string): Promise<{ size: number }[]> {
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, { headers: { Accept: LAYER_ACCEPT } });
  if (!res.ok) throw new Error(`GET manifest ${repo}:${tag}: HTTP ${res.status}`);
  const doc = (await res.json()) as { layers?: { size: number }[] };
  return doc.layers ?? [];
}

export async function benchPull(): Promise<PartResult> {
  const title = "A. Pull from a real registry (CNCF distribution, localhost)";
  const missing = await missingTools(["docker-registry", "skopeo"]);
  if (missing.length > 0) {
    return { sections: [{ title, body: `Skipped: ${missing.join(", ")} not found.` }], metrics: [] };
  }
  const metrics: Metric[] = [];
  const layout = join(tmp(), "pull-layout");
  const made = await makeLayout(layout, PULL_MB, PULL_IMAGES * PULL_LAYERS);
  // One make-big.sh run, split into images: every layer holds different files (no shared blobs).
  await writeLayoutIndex(
    layout,
    Array.from({ length: PULL_IMAGES }, (_, i) => {
      const layers = made.layers.slice(i * PULL_LAYERS, (i + 1) * PULL_LAYERS);
      return { ref: `img${i + 1}`, layers, diffIds: layers.map((l) => l.digest) };
    }),
  );

  const registry = await startRegistry();
  try {
    const host = registry.host;
    const pushed: PushedImage[] = [];
    const pushStart = Date.now();
    for (let i = 1; i <= PULL_IMAGES; i++) {
      log(`pull: skopeo push img${i} (gzip level 1) → ${host}`);
      const s = await createSkopeo(); // fresh blob-info cache per push
      try {
        await s.copy(`oci:${layout}:img${i}`, `docker://${host}/bench/img${i}:1`, [
          "--dest-tls-verify=false",
          "--dest-compress-format",
          "gzip",
          "--dest-compress-level",
          "1",
        ]);
      } finally {
        await s.cleanup();
      }
      const layers = await manifestLayers(registry, `bench/img${i}`, "1");
      const own = made.layers.slice((i - 1) * PULL_LAYERS, i * PULL_LAYERS);
      pushed.push({
        ref: `${host}/bench/img${i}:1`,
        compressedBytes: layers.reduce((a, l) => a + l.size, 0),
        uncompressedBytes: own.reduce((a, l) => a + l.size, 0),
        layers: layers.length,
      });
    }
    const pushS = (Date.now() - pushStart) / 1000;
    if (!KEEP) await rm(layout, { recursive: true, force: true });
    const compressed = pushed.reduce((a, p) => a + p.compressedBytes, 0);
    const uncompressed = pushed.reduce((a, p) => a + p.uncompressedBytes, 0);
    const nLayers = pushed.reduce((a, p) => a + p.layers, 0);

    // --- cold pulls, interleaved --------------------------------------------------------------
    const airRuns: RunResult[] = [];
    const airGets: number[] = [];
    const skoRounds: { wall: number; cpu?: number; peakKb: number; runs: RunResult[] }[] = [];
    let warmCache = "";
    for (let r = 0; r < PULL_REPEAT; r++) {
      const order = r % 2 === 0 ? ["skopeo", "airpack"] : ["airpack", "skopeo"];
      for (const which of order) {
        // Flush what the previous command wrote, so neither tool pays for the other's writeback.
        spawnSync("sync");
        if (which === "skopeo") {
          const dir = join(tmp(), `pull-skopeo-${r}`);
          const runs: RunResult[] = [];
          for (let i = 1; i <= PULL_IMAGES; i++) {
            const s = await createSkopeo();
            try {
              log(`pull ${r + 1}/${PULL_REPEAT}: skopeo copy img${i} → oci:`);
              const argv = skopeoArgv(s, [
                "copy",
                "--src-tls-verify=false",
                `docker://${host}/bench/img${i}:1`,
                `oci:${dir}:img${i}`,
              ]);
              runs.push(await run(`skopeo copy img${i}`, argv, { env: s.env }));
            } finally {
              await s.cleanup();
            }
          }
          await rm(dir, { recursive: true, force: true });
          const cpus = runs.map((x) => x.cpu);
          skoRounds.push({
            wall: runs.reduce((a, x) => a + x.wall, 0),
            cpu: cpus.every((c) => c !== undefined) ? cpus.reduce((a, c) => a + c!, 0) : undefined,
            peakKb: Math.max(...runs.map(peakKb)),
            runs,
          });
        } else {
          const cache = join(tmp(), `pull-cache-${r}`);
          const out = join(tmp(), `pull-${r}.tar`);
          const before = registry.blobGets().length;
          log(`pull ${r + 1}/${PULL_REPEAT}: airpack pack ${PULL_IMAGES} images --layers keep (fresh cache)`);
          airRuns.push(
            await run("airpack pack (registry)", [
              AIRPACK,
              "pack",
              ...pushed.map((p) => p.ref),
              "--layers",
              "keep",
              "--compress",
              "none",
              "-o",
              out,
              "--cache",
              cache,
              "-q",
            ]),
          );
          await sleep(300); // the access log arrives through the daemon's stderr pipe
          airGets.push(registry.blobGets().length - before);
          await rm(out, { force: true });
          if (warmCache) await rm(warmCache, { recursive: true, force: true });
          warmCache = cache;
        }
      }
    }

    // --- warm cache: no blob should be fetched again --------------------------------------------
    log("pull: airpack pack again with the warm cache");
    const warmOut = join(tmp(), "pull-warm.tar");
    const before = registry.blobGets().length;
    const warm = await run("airpack pack (warm)", [
      AIRPACK,
      "pack",
      ...pushed.map((p) => p.ref),
      "--layers",
      "keep",
      "--compress",
      "none",
      "-o",
      warmOut,
      "--cache",
      warmCache,
      "-q",
    ]);
    await sleep(300);
    const warmGets = registry.blobGets().slice(before);
    await rm(warmOut, { force: true });
    await rm(warmCache, { recursive: true, force: true });

    // --- report ---------------------------------------------------------------------------------
    const air = best(airRuns);
    const sko = skoRounds.reduce((a, b) => (b.wall < a.wall ? b : a));
    const ratio = air.wall / sko.wall;
    const airPeak = Math.max(...airRuns.map(peakMb), peakMb(warm));
    const airPeakRun = [...airRuns, warm].reduce((a, b) => (peakKb(b) > peakKb(a) ? b : a));
    const skoCmd = `skopeo copy docker://HOST/bench/imgN:1 oci:DIR:imgN (N = 1…${PULL_IMAGES}, summed)`;
    const airCmd = `airpack pack HOST/bench/img1:1 … --layers keep --compress none -o OUT.tar --cache FRESH`;
    const rows = [
      [
        "airpack pack (cold cache)",
        airCmd,
        sec(air.wall),
        allWalls(airRuns),
        mbps(compressed, air.wall),
        cpuOf(air),
        kbToMb(peakKb(air)),
        airGets.join(" / "),
      ],
      [
        "skopeo copy ×" + PULL_IMAGES,
        skoCmd,
        sec(sko.wall),
        skoRounds.map((x) => x.wall.toFixed(2)).join(" / "),
        mbps(compressed, sko.wall),
        sko.cpu !== undefined ? sec(sko.cpu) : "n/a",
        kbToMb(sko.peakKb),
        "—",
      ],
      [
        "airpack pack (warm cache)",
        "the same, --cache WARM (the last cold run's)",
        sec(warm.wall),
        warm.wall.toFixed(2),
        mbps(compressed, warm.wall),
        cpuOf(warm),
        kbToMb(peakKb(warm)),
        String(warmGets.length),
      ],
    ];
    const imageRows = pushed.map((p) => [
      p.ref.replace(host, "HOST"),
      String(p.layers),
      mb(p.uncompressedBytes),
      mb(p.compressedBytes),
    ]);
    const body = [
      `${PULL_IMAGES} images, ${nLayers} layers of different /usr files (fixtures/make-big.sh, one run split ` +
        `into images), pushed with \`skopeo copy --dest-compress-format gzip --dest-compress-level 1\` ` +
        `(klauspost/pgzip level 1) from a fresh skopeo state each, in ${pushS.toFixed(1)} s; ` +
        `${mb(compressed)} compressed (${mb(uncompressed)} uncompressed).`,
      "",
      table(["image", "layers", "uncompressed", "gzip (in the registry)"], imageRows),
      "",
      table(
        ["run", "command", "wall (best)", "all runs (s)", "compressed MB/s", "CPU (best run)", "peak RSS", "blob GETs"],
        rows,
      ),
      "",
      `airpack / skopeo: ${ratio.toFixed(3)}. Rounds alternate which tool goes first; each airpack run has a fresh ` +
        `--cache and each skopeo copy a fresh state and a fresh OCI layout. skopeo per image (best round): ` +
        `${sko.runs.map((x) => `${x.wall.toFixed(2)} s`).join(", ")}. Blob GETs are counted in the registry's access log ` +
        `(configs are blobs too: ${nLayers} layers + ${PULL_IMAGES} configs = ${nLayers + PULL_IMAGES} per cold pack).` +
        (warmGets.length > 0 ? ` Warm-cache blob GETs: ${warmGets.map((g) => g.path).join(", ")}.` : "") +
        ` Peak RSS counts the process tree (${airPeakRun.processes}).`,
    ].join("\n");
    metrics.push(
      {
        metric: `pull: registry images, compressed (${PULL_IMAGES} images, ${nLayers} layers)`,
        value: mb(compressed),
        target: "> 200 MB",
        verdict: verdict(compressed > 200 * 1e6),
      },
      {
        metric: "pull: time, airpack pack / skopeo copy (sum)",
        value: `${ratio.toFixed(3)} (${sec(air.wall)} vs ${sec(sko.wall)})`,
        target: "≤ 1.00",
        verdict: verdict(ratio <= 1),
      },
      {
        metric: "pull: blob GETs during a warm-cache pack",
        value: String(warmGets.length),
        target: "0",
        verdict: verdict(warmGets.length === 0),
      },
      {
        metric: "pull: peak RSS, airpack pack from the registry",
        value: `${airPeak.toFixed(0)} MB`,
        target: "< 300 MB",
        verdict: verdict(airPeak < 300),
      },
    );
    return { sections: [{ title, body }], metrics };
  } finally {
    await registry.stop();
  }
}
