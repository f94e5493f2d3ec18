/**
 * Helpers for the registry end-to-end tests (test/e2e/registry-*.test.ts):
 * pushing the fixture images to a real registry (skopeo, or plain HTTP for
 * what skopeo cannot read from the fixture layout), reading fixture manifests
 * independently of airpack, checking the store after a failed run, and a
 * one-line-error assertion.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as fs from "node:fs/promises";
import * as http from "node:http";
import * as https from "node:https";
import * as path from "node:path";

import {
  FIXTURES,
  REF_NAME,
  asIndex,
  asManifest,
  blobPath,
  runAirpack,
  sha256Of,
  type AirpackResult,
  type Descriptor,
  type ImageManifest,
} from "./cli";
import type { Registry, RegistryRequest } from "./peers/registry";
import type { Skopeo } from "./peers/skopeo";

/** The fixture OCI layout (see fixtures/out/FIXTURES.md). */
export const LAYOUT = path.join(FIXTURES, "oci");

export const MediaTypes = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
} as const;

// ---------------------------------------------------------------------------
// the fixture layout
// ---------------------------------------------------------------------------

/** Bytes of a blob of the fixture layout (hash-checked). */
export async function layoutBlob(digest: string): Promise<Buffer> {
  const data = await fs.readFile(blobPath(LAYOUT, digest));
  assert.equal(sha256Of(data), digest, `fixture blob ${digest} is corrupt`);
  return data;
}

/** The top-level descriptor of a tag of the fixture layout. */
export async function layoutTag(tag: string): Promise<Descriptor> {
  const index = asIndex(JSON.parse(await fs.readFile(path.join(LAYOUT, "index.json"), "utf8")) as unknown);
  const desc = index.manifests.find((m) => m.annotations?.[REF_NAME] === tag);
  assert.ok(desc, `fixture tag ${tag} missing`);
  return desc;
}

export interface FixtureManifest {
  desc: Descriptor;
  bytes: Buffer;
  manifest: ImageManifest;
}

/** An image manifest of the fixture layout, by digest. */
export async function layoutManifest(desc: Descriptor): Promise<FixtureManifest> {
  const bytes = await layoutBlob(desc.digest);
  return { desc, bytes, manifest: asManifest(JSON.parse(bytes.toString("utf8")) as unknown, desc.digest) };
}

/** The children of the fixture's multi-platform index `tag`. */
export async function layoutIndexChildren(tag: string): Promise<Descriptor[]> {
  const top = await layoutTag(tag);
  return asIndex(JSON.parse((await layoutBlob(top.digest)).toString("utf8")) as unknown).manifests;
}

// ---------------------------------------------------------------------------
// pushing
// ---------------------------------------------------------------------------

export interface PushOptions {
  /** user:password for --dest-creds. */
  creds?: string;
  /** Dir with ca.crt for a TLS registry; without it TLS is not verified. */
  certDir?: string;
}

/** `skopeo copy --preserve-digests [--all] oci:LAYOUT:tag docker://dest` (OCI entries only; see docs/peers.md). */
export async function pushFixture(sk: Skopeo, tag: string, dest: string, opts: PushOptions = {}): Promise<void> {
  const top = await layoutTag(tag);
  const args = ["--preserve-digests"];
  if (top.mediaType === MediaTypes.ociIndex) args.push("--all");
  if (opts.certDir) args.push("--dest-cert-dir", opts.certDir);
  else args.push("--dest-tls-verify=false");
  if (opts.creds) args.push("--dest-creds", opts.creds);
  await sk.copy(`oci:${LAYOUT}:${tag}`, `docker://${dest}`, args);
}

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface HttpRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer;
  /** Trust this CA (PEM) for https URLs. */
  ca?: string;
  timeoutMs?: number;
}

/** One request on a fresh connection (no keep-alive agent). */
export function httpRequest(url: string, opts: HttpRequestOptions = {}): Promise<HttpResult> {
  return new Promise<HttpResult>((resolve, reject) => {
    const u = new URL(url);
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (opts.body) headers["Content-Length"] = String(opts.body.length);
    const onResponse = (res: http.IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    };
    const req =
      u.protocol === "https:"
        ? https.request(u, { method: opts.method ?? "GET", headers, agent: false, ca: opts.ca }, onResponse)
        : http.request(u, { method: opts.method ?? "GET", headers, agent: false }, onResponse);
    req.setTimeout(opts.timeoutMs ?? 15_000, () => req.destroy(new Error(`timeout: ${url}`)));
    req.on("error", reject);
    req.end(opts.body);
  });
}

export function basicAuth(user: string, password: string): Record<string, string> {
  return { Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` };
}

/** Uploads a blob (monolithic POST + PUT) unless the repository has it already. */
export async function uploadBlob(
  baseUrl: string,
  repo: string,
  data: Buffer,
  auth: Record<string, string> = {},
): Promise<string> {
  const digest = sha256Of(data);
  const head = await httpRequest(`${baseUrl}/v2/${repo}/blobs/${digest}`, { method: "HEAD", headers: auth });
  if (head.status === 200) return digest;
  const start = await httpRequest(`${baseUrl}/v2/${repo}/blobs/uploads/`, { method: "POST", headers: auth });
  assert.equal(start.status, 202, `upload start: ${start.status} ${start.body.toString("utf8")}`);
  const location = new URL(String(start.headers.location), baseUrl);
  location.searchParams.set("digest", digest);
  const put = await httpRequest(location.toString(), {
    method: "PUT",
    headers: { ...auth, "Content-Type": "application/octet-stream" },
    body: data,
  });
  assert.equal(put.status, 201, `upload ${digest}: ${put.status} ${put.body.toString("utf8")}`);
  return digest;
}

/** PUTs manifest bytes under a tag or digest; returns their digest. */
export async function putManifest(
  baseUrl: string,
  repo: string,
  reference: string,
  bytes: Buffer,
  mediaType: string,
  auth: Record<string, string> = {},
): Promise<string> {
  const res = await httpRequest(`${baseUrl}/v2/${repo}/manifests/${reference}`, {
    method: "PUT",
    headers: { ...auth, "Content-Type": mediaType },
    body: bytes,
  });
  assert.equal(res.status, 201, `PUT manifest ${repo}:${reference}: ${res.status} ${res.body.toString("utf8")}`);
  const digest = sha256Of(bytes);
  assert.equal(res.headers["docker-content-digest"], digest);
  return digest;
}

export interface DockerListPush {
  /** Digest of the manifest list (= sha256 of the bytes PUT). */
  listDigest: string;
  listBytes: Buffer;
  amd64: { digest: string; configDigest: string; diffIds: string[] };
  arm64: { digest: string; configDigest: string; diffIds: string[] };
}

/**
 * Pushes a Docker manifest list `repo:tag` by plain HTTP: the fixture's v2s2
 * image (linux/amd64) and a v2s2 image made here from the fixture's
 * linux/arm64/v8 entry of `multi` (same config and layers, Docker media types).
 */
export async function pushDockerManifestList(
  baseUrl: string,
  repo: string,
  tag: string,
  auth: Record<string, string> = {},
): Promise<DockerListPush> {
  const v2s2 = await layoutManifest(await layoutTag("v2s2"));
  const arm = (await layoutIndexChildren("multi")).find((d) => d.platform?.architecture === "arm64");
  assert.ok(arm);
  const armOci = await layoutManifest(arm);
  const armManifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.dockerManifest,
    config: {
      mediaType: MediaTypes.dockerConfig,
      size: armOci.manifest.config.size,
      digest: armOci.manifest.config.digest,
    },
    layers: armOci.manifest.layers.map((l) => ({
      mediaType: MediaTypes.dockerLayerGzip,
      size: l.size,
      digest: l.digest,
    })),
  };
  const armBytes = Buffer.from(JSON.stringify(armManifest, null, 3));
  const diffIdsOf = async (configDigest: string): Promise<string[]> =>
    (JSON.parse((await layoutBlob(configDigest)).toString("utf8")) as { rootfs: { diff_ids: string[] } }).rootfs
      .diff_ids;
  for (const m of [v2s2.manifest, armOci.manifest]) {
    for (const d of [m.config, ...m.layers]) await uploadBlob(baseUrl, repo, await layoutBlob(d.digest), auth);
  }
  const amdDigest = await putManifest(baseUrl, repo, v2s2.desc.digest, v2s2.bytes, MediaTypes.dockerManifest, auth);
  const armDigest = await putManifest(baseUrl, repo, sha256Of(armBytes), armBytes, MediaTypes.dockerManifest, auth);
  const list = {
    schemaVersion: 2,
    mediaType: MediaTypes.dockerList,
    manifests: [
      {
        mediaType: MediaTypes.dockerManifest,
        size: v2s2.bytes.length,
        digest: amdDigest,
        platform: { architecture: "amd64", os: "linux" },
      },
      {
        mediaType: MediaTypes.dockerManifest,
        size: armBytes.length,
        digest: armDigest,
        platform: { architecture: "arm64", os: "linux", variant: "v8" },
      },
    ],
  };
  const listBytes = Buffer.from(JSON.stringify(list, null, 3));
  const listDigest = await putManifest(baseUrl, repo, tag, listBytes, MediaTypes.dockerList, auth);
  return {
    listDigest,
    listBytes,
    amd64: {
      digest: amdDigest,
      configDigest: v2s2.manifest.config.digest,
      diffIds: await diffIdsOf(v2s2.manifest.config.digest),
    },
    arm64: {
      digest: armDigest,
      configDigest: armOci.manifest.config.digest,
      diffIds: await diffIdsOf(armOci.manifest.config.digest),
    },
  };
}

/** sha256 of the manifest bytes the registry serves for `ref` (skopeo inspect --raw). */
export async function registryDigest(sk: Skopeo, ref: string, extraArgs: readonly string[] = []): Promise<string> {
  return sha256Of(await sk.inspectRawBytes(`docker://${ref}`, { tlsVerify: false, extraArgs }));
}

// ---------------------------------------------------------------------------
// registry access log
// ---------------------------------------------------------------------------

/** The digest of a blob GET line, or null. */
export function blobDigestOf(r: RegistryRequest): string | null {
  return /\/blobs\/(sha256:[0-9a-f]{64})(\?|$)/.exec(r.path)?.[1] ?? null;
}

/** Blob GETs the registry logged after the first `mark` lines (mark = registry.requests().length earlier). */
export function blobGetsSince(reg: Registry, mark: number): RegistryRequest[] {
  return reg
    .requests()
    .slice(mark)
    .filter((r) => r.method === "GET" && blobDigestOf(r) !== null);
}

/** Counts per blob digest. */
export function countByDigest(reqs: readonly RegistryRequest[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of reqs) {
    const d = blobDigestOf(r);
    if (d) out.set(d, (out.get(d) ?? 0) + 1);
  }
  return out;
}

/**
 * The registry writes an access-log line when a response is finished, which can be
 * a moment after the client has it: wait until the log stops growing.
 */
export async function settledRequests(reg: Registry, quietMs = 300): Promise<RegistryRequest[]> {
  let last = -1;
  for (;;) {
    const n = reg.requests().length;
    if (n === last) return reg.requests();
    last = n;
    await new Promise((r) => setTimeout(r, quietMs));
  }
}

// ---------------------------------------------------------------------------
// checks on airpack's results
// ---------------------------------------------------------------------------

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

/** Every file under blobs/sha256 of the store; throws if one does not hash to its name. */
export async function storeBlobs(cache: string): Promise<string[]> {
  const dir = path.join(cache, "blobs", "sha256");
  const names = (await exists(dir)) ? await fs.readdir(dir) : [];
  for (const name of names) {
    const data = await fs.readFile(path.join(dir, name));
    const hex = createHash("sha256").update(data).digest("hex");
    assert.equal(hex, name, `store blob ${name} hashes to ${hex}`);
  }
  return names.map((n) => `sha256:${n}`);
}

/** `airpack cache ls` works and every blob of the store hashes to its name. */
export async function assertStoreConsistent(cache: string): Promise<string[]> {
  const ls = await runAirpack(["cache", "ls", "--json", "--cache", cache]);
  assert.equal(ls.code, 0, `cache ls failed: ${ls.stderr}`);
  const listing = JSON.parse(ls.stdout.toString("utf8")) as { images: unknown[]; blobs: number };
  assert.ok(Array.isArray(listing.images));
  const blobs = await storeBlobs(cache);
  assert.equal(listing.blobs, blobs.length, "cache ls counts other blobs than there are");
  return blobs;
}

export interface FailureExpectation {
  /** What the single stderr line must say. */
  message: RegExp;
  cache: string;
  /** The -o file that must not exist. */
  output: string;
  /** Strings that must never show up in stdout or stderr (passwords). */
  secrets?: readonly string[];
}

/** Exit 1, exactly one non-empty stderr line matching `message`, no output file, a consistent store. */
export async function assertCleanFailure(r: AirpackResult, exp: FailureExpectation): Promise<string> {
  assert.equal(r.code, 1, `expected exit 1, got ${r.code}; stderr:\n${r.stderr}`);
  const lines = r.stderr.split("\n").filter((l) => l.trim() !== "");
  assert.equal(lines.length, 1, `expected one stderr line, got ${lines.length}:\n${r.stderr}`);
  const line = lines[0] ?? "";
  assert.match(line, exp.message);
  for (const s of exp.secrets ?? []) {
    assert.ok(!r.stderr.includes(s), `stderr contains a secret: ${r.stderr}`);
    assert.ok(!r.stdout.toString("utf8").includes(s), "stdout contains a secret");
  }
  assert.equal(await exists(exp.output), false, `${exp.output} exists after a failed pack`);
  const dir = path.dirname(exp.output);
  const base = path.basename(exp.output);
  const leftovers = (await fs.readdir(dir)).filter((n) => n.startsWith(base) || n.startsWith(`.${base}`));
  assert.deepEqual(leftovers, [], `temp files of the output left in ${dir}`);
  await assertStoreConsistent(exp.cache);
  return line;
}

// ---------------------------------------------------------------------------
// bundles
// ---------------------------------------------------------------------------

export interface InspectPlatform {
  platform: string;
  digest: string;
  layers: { digest: string; mediaType: string; size: number; mode: string }[];
}

export interface InspectImage {
  name: string;
  digest: string;
  mediaType: string;
  sourceDigest: string;
  platforms: InspectPlatform[];
  skipped: { platform: string; digest: string; reason: string }[];
}

/** `airpack inspect --json BUNDLE`. */
export async function inspectBundle(bundle: string): Promise<InspectImage[]> {
  const r = await runAirpack(["inspect", "--json", bundle]);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout.toString("utf8")) as { images: InspectImage[] };
  assert.ok(Array.isArray(doc.images));
  return doc.images;
}
