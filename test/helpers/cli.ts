/**
 * Runs the built airpack CLI (bin/airpack → dist/src/cli/main.js) as a child
 * process, the way a user would. Build first: `npx tsc -p tsconfig.json`.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import type { Readable } from "node:stream";

import type { Containerd } from "./peers/containerd";
import { run, runOk } from "./peers/process";

/** Repository root (this file is compiled to dist/test/helpers/cli.js). */
export const REPO_ROOT = path.resolve(__dirname, "..", "..", "..");
export const AIRPACK_BIN = path.join(REPO_ROOT, "bin", "airpack");
/** fixtures/out of the repository (see fixtures/README.md). */
export const FIXTURES = path.join(REPO_ROOT, "fixtures", "out");

export interface AirpackOptions {
  /** Fed to stdin (for `-` arguments). */
  input?: Buffer | string | Readable;
  /** Extra environment variables on top of process.env. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
}

export interface AirpackResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** `node bin/airpack ARGS`; resolves whatever the exit code is. */
export async function runAirpack(args: readonly string[], opts: AirpackOptions = {}): Promise<AirpackResult> {
  const r = await run(process.execPath, [AIRPACK_BIN, ...args], {
    input: opts.input,
    env: { ...process.env, ...(opts.env ?? {}) },
    cwd: opts.cwd ?? REPO_ROOT,
    timeoutMs: opts.timeoutMs ?? 120_000,
  });
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

/** Like runAirpack, but throws (with stderr) unless the exit code is 0. */
export async function airpackOk(args: readonly string[], opts: AirpackOptions = {}): Promise<AirpackResult> {
  const r = await runAirpack(args, opts);
  if (r.code !== 0) {
    throw new Error(`airpack ${args.join(" ")} exited with ${r.code}:\n${r.stderr.trim()}`);
  }
  return r;
}

/**
 * `airpack pack SOURCES... -o OUTPUT --cache CACHE EXTRA...` (never touches ~/.cache). Layers are
 * kept as they are unless `extra` says `--layers`: most tests compare a bundle as written with the
 * source's own digests; the default (`--layers auto`) has tests of its own.
 */
export function pack(
  sources: readonly string[],
  output: string,
  cache: string,
  extra: readonly string[] = [],
  opts: AirpackOptions = {},
): Promise<AirpackResult> {
  const layers = extra.includes("--layers") ? [] : ["--layers", "keep"];
  return airpackOk(["pack", ...sources, "-o", output, "--cache", cache, ...layers, ...extra], opts);
}

// ---------------------------------------------------------------------------
// Reading OCI layouts and tars independently of airpack (node:crypto + JSON)
// ---------------------------------------------------------------------------

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os: string; architecture: string; variant?: string };
}

export interface ImageIndex {
  mediaType?: string;
  manifests: Descriptor[];
}

export interface ImageManifest {
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface ImageConfig {
  architecture?: string;
  os?: string;
  rootfs: { type: string; diff_ids: string[] };
}

export const REF_NAME = "org.opencontainers.image.ref.name";

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function asDescriptor(v: unknown, what: string): Descriptor {
  if (!isRecord(v) || typeof v.digest !== "string" || typeof v.size !== "number" || typeof v.mediaType !== "string") {
    throw new Error(`${what}: not a descriptor: ${JSON.stringify(v)}`);
  }
  return v as unknown as Descriptor;
}

export function asIndex(v: unknown, what = "index"): ImageIndex {
  if (!isRecord(v) || !Array.isArray(v.manifests)) throw new Error(`${what}: no manifests array`);
  v.manifests.forEach((m, i) => asDescriptor(m, `${what}.manifests[${i}]`));
  return v as unknown as ImageIndex;
}

export function asManifest(v: unknown, what = "manifest"): ImageManifest {
  if (!isRecord(v) || !Array.isArray(v.layers)) throw new Error(`${what}: no layers array`);
  asDescriptor(v.config, `${what}.config`);
  v.layers.forEach((l, i) => asDescriptor(l, `${what}.layers[${i}]`));
  return v as unknown as ImageManifest;
}

export function asConfig(v: unknown, what = "config"): ImageConfig {
  if (!isRecord(v) || !isRecord(v.rootfs) || !Array.isArray(v.rootfs.diff_ids)) {
    throw new Error(`${what}: no rootfs.diff_ids`);
  }
  return v as unknown as ImageConfig;
}

export function sha256Of(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

export async function sha256File(file: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return `sha256:${h.digest("hex")}`;
}

export function blobPath(layoutDir: string, digest: string): string {
  const [alg, hex] = digest.split(":");
  if (alg !== "sha256" || hex === undefined || !/^[0-9a-f]{64}$/.test(hex)) throw new Error(`bad digest ${digest}`);
  return path.join(layoutDir, "blobs", alg, hex);
}

/** Reads a blob and checks that its sha256 is its name (and its size when given). */
export async function readBlob(layoutDir: string, digest: string, size?: number): Promise<Buffer> {
  const data = await fs.readFile(blobPath(layoutDir, digest));
  const actual = sha256Of(data);
  if (actual !== digest) throw new Error(`blob ${digest} in ${layoutDir} hashes to ${actual}`);
  if (size !== undefined && data.length !== size) throw new Error(`blob ${digest}: ${data.length} bytes, want ${size}`);
  return data;
}

export async function readBlobJson(layoutDir: string, desc: Descriptor): Promise<unknown> {
  return JSON.parse((await readBlob(layoutDir, desc.digest, desc.size)).toString("utf8")) as unknown;
}

export async function readLayoutIndex(layoutDir: string): Promise<ImageIndex> {
  return asIndex(JSON.parse(await fs.readFile(path.join(layoutDir, "index.json"), "utf8")) as unknown, layoutDir);
}

export function isIndexMediaType(mediaType: string): boolean {
  return (
    mediaType === "application/vnd.oci.image.index.v1+json" ||
    mediaType === "application/vnd.docker.distribution.manifest.list.v2+json"
  );
}

/** One image manifest of a layout, with its config, found by walking index.json (nested indexes too). */
export interface LayoutImage {
  /** ref.name of the top-level index entry it came from. */
  ref: string;
  /** Top-level descriptor (may be an index). */
  top: Descriptor;
  /** The image manifest descriptor (differs from top for a platform of an index). */
  desc: Descriptor;
  manifest: ImageManifest;
  config: ImageConfig;
}

export async function layoutImages(layoutDir: string): Promise<LayoutImage[]> {
  const out: LayoutImage[] = [];
  const walk = async (ref: string, top: Descriptor, desc: Descriptor): Promise<void> => {
    const json = await readBlobJson(layoutDir, desc);
    if (isIndexMediaType(desc.mediaType)) {
      for (const child of asIndex(json, desc.digest).manifests) await walk(ref, top, child);
      return;
    }
    const manifest = asManifest(json, desc.digest);
    const config = asConfig(await readBlobJson(layoutDir, manifest.config), manifest.config.digest);
    out.push({ ref, top, desc, manifest, config });
  };
  for (const top of (await readLayoutIndex(layoutDir)).manifests) {
    await walk(top.annotations?.[REF_NAME] ?? "", top, top);
  }
  return out;
}

/** containerd snapshot keys of committed layers: the OCI chain IDs of the diff_ids. */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : sha256Of(`${prev} ${d}`));
  }
  return out;
}

/** Member names of a plain tar file, via the system tar. */
export async function tarMembers(tarFile: string): Promise<string[]> {
  const r = await runOk("tar", ["-tf", tarFile]);
  return r.stdout
    .toString("utf8")
    .split("\n")
    .filter((l) => l !== "");
}

/** Extracts one member of a plain tar (system tar). */
export async function tarMember(tarFile: string, member: string): Promise<Buffer> {
  return (await runOk("tar", ["-xOf", tarFile, member])).stdout;
}

export type OuterFormat = "xz" | "zstd" | "gzip" | "none";

/** Outer format of a file from its magic bytes. */
export async function sniffFile(file: string): Promise<OuterFormat | "unknown"> {
  const fh = await fs.open(file, "r");
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await fh.read(head, 0, 512, 0);
    return sniff(head.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

export function sniff(head: Buffer): OuterFormat | "unknown" {
  if (head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return "xz";
  if (head.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) return "zstd";
  if (head.subarray(0, 2).equals(Buffer.from([0x1f, 0x8b]))) return "gzip";
  if (head.length >= 262 && head.subarray(257, 262).toString("latin1") === "ustar") return "none";
  return "unknown";
}

/** Keys of the snapshots containerd holds in namespace ns (its default snapshotter). */
export async function snapshotKeys(ctd: Containerd, ns: string): Promise<Set<string>> {
  const r = await ctd.ctrOk(["snapshots", "--snapshotter", ctd.snapshotter, "ls"], { namespace: ns });
  return new Set(
    r.stdout
      .toString("utf8")
      .split("\n")
      .slice(1)
      .map((l) => l.trim().split(/\s+/)[0] ?? "")
      .filter((k) => k !== ""),
  );
}

/**
 * Asserts containerd unpacked every layer of every image: committed snapshots
 * are keyed by the chain IDs of the config's diff_ids.
 */
export async function assertSnapshotsFor(
  ctd: Containerd,
  ns: string,
  images: readonly { ref: string; diffIds: readonly string[] }[],
): Promise<void> {
  const keys = await snapshotKeys(ctd, ns);
  for (const img of images) {
    for (const id of chainIds(img.diffIds)) {
      if (!keys.has(id)) throw new Error(`${img.ref}: no snapshot ${id} in ${ns}; have ${[...keys].join(" ")}`);
    }
  }
}

/** A failed run: exit code 1, exactly one stderr line matching `pattern`, nothing on stdout. */
export function assertOneLineError(r: AirpackResult, pattern: RegExp): string {
  assert.equal(r.code, 1, `expected exit 1, got ${r.code}: ${r.stderr}`);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `expected one line, got:\n${r.stderr}`);
  assert.match(lines[0]!, pattern);
  assert.equal(r.stdout.length, 0, "nothing on stdout");
  return lines[0]!;
}
