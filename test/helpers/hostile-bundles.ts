/**
 * A corpus of hostile bundles (issue 12, "Trust nothing, for real"), built at test time into a temp
 * dir from airpack's own bundles of the fixture images. Everything here is test-side: its own tar
 * writer (so it can lie in headers, leave out the end-of-archive marker or add bytes after it), the
 * system xz/zstd/gzip for the outer codecs, and node:crypto for every digest it makes up. Bombs are
 * built from one compressed chunk of zeros repeated (concatenated xz/zstd streams and gzip members
 * are valid), so a multi-GB payload costs milliseconds to make and a few MB of disk.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, open, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { FIXTURES, pack } from "./cli";
import { readTar, type TarItem } from "./tar";

export type Codec = "none" | "gzip" | "zstd" | "xz";

/** How the corpus test runs each bundle. */
export type Mode = "verify" | "verify-deep" | "unpack-dir" | "unpack-file" | "stdin" | "unpack-uncompressed";
export const MODES: readonly Mode[] = [
  "verify",
  "verify-deep",
  "unpack-dir",
  "unpack-file",
  "stdin",
  "unpack-uncompressed",
];

export interface HostileCase {
  name: string;
  /** The issue's class: 1 bombs and tar framing, 2 kept layers, 3 graphs, 4 format rules, 5 recipes. */
  issueClass: 1 | 2 | 3 | 4 | 5;
  what: string;
  file: string;
  /** Modes that must fail with exit 1 (default: all). The others may pass, within the same bounds. */
  mustFail?: readonly Mode[];
  /** A legitimate (if odd) bundle: every mode must succeed. */
  ok?: boolean;
}

const GiB = 1024 * 1024 * 1024;
const MiB = 1024 * 1024;
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
const LAYER_TAR = "application/vnd.oci.image.layer.v1.tar";
const LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";
const LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd";

type Json = Record<string, unknown>;
interface Desc {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

// ---------------------------------------------------------------------------------------------
// A tar writer that can lie

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width, "0") + " ";
}

/** A ustar header; sizes of 8 GiB and more in base-256 (as GNU tar). `type` is the typeflag. */
export function header(name: string, size: number, type = "0", mode = 0o644): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 100, "utf8");
  b.write(octal(mode, 6), 100, "ascii");
  b.write(octal(0, 6), 108, "ascii");
  b.write(octal(0, 6), 116, "ascii");
  if (size >= 8 * GiB) {
    b[124] = 0x80;
    let n = size;
    for (let i = 11; i > 0; i--) {
      b[124 + i] = n % 256;
      n = Math.floor(n / 256);
    }
  } else {
    b.write(octal(size, 11), 124, "ascii");
  }
  b.write(octal(1700000000, 11), 136, "ascii");
  b.write(type, 156, "ascii");
  b.write("ustar\x0000", 257, "ascii");
  let sum = 8 * 32;
  for (let i = 0; i < 512; i++) if (i < 148 || i >= 156) sum += b[i]!;
  b.write(octal(sum, 6), 148, "ascii");
  return b;
}

function pad(n: number): Buffer {
  return Buffer.alloc((512 - (n % 512)) % 512);
}

export function entry(name: string, data: Buffer): Buffer {
  return Buffer.concat([header(name, data.length), data, pad(data.length)]);
}

function dirEntry(name: string): Buffer {
  return header(name, 0, "5", 0o755);
}

/** A pax extended header ('x') with the given records. */
function paxEntry(records: Record<string, string>): Buffer {
  let body = "";
  for (const [k, v] of Object.entries(records)) {
    const rec = ` ${k}=${v}\n`;
    let len = rec.length + 1;
    while (String(len).length + rec.length !== len) len = String(len).length + rec.length;
    body += `${len}${rec}`;
  }
  const data = Buffer.from(body);
  return Buffer.concat([header("PaxHeader/x", data.length, "x"), data, pad(data.length)]);
}

const EOA = Buffer.alloc(1024);

/** The bundle's bytes: buffers, and runs of zeros that are never held in memory. */
type Part = Buffer | { zeros: number } | { repeat: Buffer; times: number };

function merge(parts: Part[]): Part[] {
  const out: Part[] = [];
  let run: Buffer[] = [];
  const flush = (): void => {
    if (run.length > 0) out.push(Buffer.concat(run));
    run = [];
  };
  for (const p of parts) {
    if (Buffer.isBuffer(p)) run.push(p);
    else {
      flush();
      out.push(p);
    }
  }
  flush();
  return out;
}

function compressBuffer(codec: Exclude<Codec, "none">, data: Buffer, best = false): Buffer {
  const level = best ? "-9" : "-1";
  const args = {
    xz: ["xz", level, "-c", "-T1", "-q"],
    zstd: ["zstd", best ? "-19" : "-1", "-c", "-q"],
    gzip: ["gzip", level, "-c", "-n"],
  }[codec];
  const r = spawnSync(args[0]!, args.slice(1), { input: data, maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`${args.join(" ")} failed: ${r.stderr.toString()}`);
  return r.stdout;
}

/** One compressed chunk of this many uncompressed bytes, repeated: every codec reads concatenated streams. */
const CHUNK = 64 * MiB;
const chunkCache = new Map<string, Buffer>();

function compressedChunk(codec: Exclude<Codec, "none">, data: Buffer, key: string): Buffer {
  const k = `${codec}:${key}`;
  let c = chunkCache.get(k);
  if (!c) {
    c = compressBuffer(codec, data, key === "zeros" && codec === "gzip");
    chunkCache.set(k, c);
  }
  return c;
}

export async function writeBundle(file: string, parts: Part[], codec: Codec): Promise<void> {
  const fh = await open(file, "w");
  try {
    let pos = 0;
    const put = async (b: Buffer): Promise<void> => {
      await fh.write(b, 0, b.length, pos);
      pos += b.length;
    };
    for (const p of merge(parts)) {
      if (Buffer.isBuffer(p)) {
        await put(codec === "none" ? p : compressBuffer(codec, p));
      } else if ("zeros" in p) {
        if (codec === "none") {
          pos += p.zeros; // a hole: the file is sparse
          continue;
        }
        const whole = Math.floor(p.zeros / CHUNK);
        const chunk = compressedChunk(codec, Buffer.alloc(CHUNK), "zeros");
        for (let i = 0; i < whole; i++) await put(chunk);
        const rest = p.zeros % CHUNK;
        if (rest > 0) await put(compressBuffer(codec, Buffer.alloc(rest)));
      } else {
        // A repeated block: compressed as a chunk of whole repeats, then repeated.
        const per = Math.max(1, Math.floor(CHUNK / p.repeat.length));
        const block = Buffer.concat(Array.from({ length: Math.min(per, p.times) }, () => p.repeat));
        const key = createHash("sha256").update(block).digest("hex");
        const whole = Math.floor(p.times / per);
        if (codec === "none") {
          for (let i = 0; i < whole; i++) await put(block);
          const rest = p.times % per;
          if (rest > 0) await put(Buffer.concat(Array.from({ length: rest }, () => p.repeat)));
          continue;
        }
        const chunk = compressedChunk(codec, block, key);
        for (let i = 0; i < whole; i++) await put(chunk);
        const rest = p.times % per;
        if (rest > 0) await put(compressBuffer(codec, Buffer.concat(Array.from({ length: rest }, () => p.repeat))));
      }
    }
    await fh.truncate(pos);
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Documents and blobs

function sha256(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

function json(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v));
}

function descOf(mediaType: string, data: Buffer): Desc {
  return { mediaType, digest: sha256(data), size: data.length };
}

function blobName(digest: string): string {
  return `blobs/sha256/${digest.slice(7)}`;
}

function named(d: Desc, name: string): Desc {
  return { ...d, annotations: { "io.containerd.image.name": name, "org.opencontainers.image.ref.name": name } };
}

/** A bundle from scratch: oci-layout, index.json listing `roots`, then the blobs in the order given. */
function layoutParts(roots: Desc[], blobs: Buffer[], opts: { eoa?: boolean; airpack?: Buffer } = {}): Buffer[] {
  const parts = [entry("oci-layout", Buffer.from('{"imageLayoutVersion":"1.0.0"}'))];
  if (opts.airpack) parts.push(entry("airpack.json", opts.airpack));
  parts.push(entry("index.json", json({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: roots })));
  parts.push(dirEntry("blobs/"), dirEntry("blobs/sha256/"));
  for (const b of blobs) parts.push(entry(blobName(sha256(b)), b));
  if (opts.eoa !== false) parts.push(EOA);
  return parts;
}

/** Replace digests (and the sizes next to them) everywhere in a JSON value, blob paths included. */
function rekey(v: unknown, map: Map<string, Desc>): unknown {
  if (typeof v === "string") {
    const hit = map.get(v);
    if (hit) return hit.digest;
    const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(v);
    const byPath = m ? map.get(`sha256:${m[1]!}`) : undefined;
    return byPath ? blobName(byPath.digest) : v;
  }
  if (Array.isArray(v)) return v.map((x) => rekey(x, map));
  if (v && typeof v === "object") {
    const o = v as Json;
    const hit = typeof o.digest === "string" ? map.get(o.digest) : undefined;
    const out: Json = {};
    for (const [k, x] of Object.entries(o)) out[k] = rekey(x, map);
    if (hit) {
      out.digest = hit.digest;
      if (typeof o.size === "number") out.size = hit.size;
      if (typeof o.mediaType === "string" && hit.mediaType) out.mediaType = hit.mediaType;
    }
    return out;
  }
  return v;
}

/** The fixture bundles, parsed. */
interface Base {
  items: TarItem[];
  file(name: string): Buffer;
  manifest: { desc: Desc; doc: Json; data: Buffer };
  config: { desc: Desc; doc: Json; data: Buffer };
  layers: { desc: Desc; data: Buffer }[];
}

async function loadBase(file: string): Promise<Base> {
  const items = await readTar(file);
  const get = (name: string): Buffer => {
    const it = items.find((i) => i.header.name === name);
    if (!it) throw new Error(`${file}: no ${name}`);
    return it.data;
  };
  const index = JSON.parse(get("index.json").toString()) as { manifests: Desc[] };
  const root = index.manifests[0]!;
  const mData = get(blobName(root.digest));
  const mDoc = JSON.parse(mData.toString()) as Json;
  const cDesc = mDoc.config as Desc;
  const cData = get(blobName(cDesc.digest));
  const layers = (mDoc.layers as Desc[]).map((desc) => ({ desc, data: get(blobName(desc.digest)) }));
  return {
    items,
    file: get,
    manifest: { desc: root, doc: mDoc, data: mData },
    config: { desc: cDesc, doc: JSON.parse(cData.toString()) as Json, data: cData },
    layers,
  };
}

/** The base bundle's entries in its order, re-serialised with this writer, with edits. */
function reserialise(
  base: Base,
  edit: { map?: Map<string, Desc>; blobs?: Map<string, Buffer>; files?: Record<string, Buffer | null> } = {},
): Buffer[] {
  const map = edit.map ?? new Map<string, Desc>();
  const parts: Buffer[] = [];
  for (const it of base.items) {
    const name = it.header.name;
    if (it.header.type === "directory") {
      parts.push(dirEntry(name));
      continue;
    }
    if (edit.files && name in edit.files) {
      const f = edit.files[name];
      if (f) parts.push(entry(name, f));
      continue;
    }
    if (!name.startsWith("blobs/")) {
      parts.push(entry(name, json(rekey(JSON.parse(it.data.toString()), map))));
      continue;
    }
    const digest = `sha256:${name.slice("blobs/sha256/".length)}`;
    const replaced = edit.blobs?.get(digest);
    if (replaced) parts.push(entry(blobName(sha256(replaced)), replaced));
    else parts.push(entry(name, it.data));
  }
  parts.push(EOA);
  return parts;
}

/** A gzip or zstd blob of `size` zeros (many members/frames of one chunk). */
function zerosBlob(codec: "gzip" | "zstd", size: number): Buffer {
  const chunk = compressedChunk(codec, Buffer.alloc(CHUNK), "zeros");
  const whole = Math.floor(size / CHUNK);
  const parts = Array.from({ length: whole }, () => chunk);
  if (size % CHUNK) parts.push(compressBuffer(codec, Buffer.alloc(size % CHUNK)));
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------
// The corpus

export async function makeHostileCorpus(dir: string): Promise<HostileCase[]> {
  await mkdir(dir, { recursive: true });
  const cache = join(dir, "cache");
  const keptFile = join(dir, "base-keep.tar");
  const recipeFile = join(dir, "base-recipes.tar");
  await pack([`oci:${join(FIXTURES, "oci")}:mixed`], keptFile, cache);
  await pack([`oci:${join(FIXTURES, "oci")}:mixed`], recipeFile, cache, ["--layers", "uncompressed"]);
  const kept = await loadBase(keptFile);
  const rec = await loadBase(recipeFile);
  const cases: HostileCase[] = [];
  const add = async (c: Omit<HostileCase, "file">, parts: Part[], codec: Codec = "none"): Promise<void> => {
    const ext = { none: "tar", gzip: "tar.gz", zstd: "tar.zst", xz: "tar.xz" }[codec];
    const file = join(dir, `${c.name}.${ext}`);
    const t0 = Date.now();
    await writeBundle(file, parts, codec);
    if (process.env.HOSTILE_TIMING) console.log(`${c.name}: ${Date.now() - t0} ms`);
    cases.push({ ...c, file });
  };
  const good = reserialise(kept);
  const codecs: Codec[] = ["xz", "zstd", "gzip", "none"];

  // 1. Bombs and tar framing -----------------------------------------------------------------
  for (const codec of codecs) {
    await add(
      {
        name: `zeros-after-eoa-${codec}`,
        issueClass: 1,
        what: "a good bundle, its end-of-archive marker, then 4 GiB of zeros",
      },
      [...good, { zeros: 4 * GiB }],
      codec,
    );
    // tar-stream reads a directory's data as headers: 8 GiB of "data" that is zero blocks.
    const parts: Part[] = reserialise(kept);
    const dirAt = parts.findIndex((p) => Buffer.isBuffer(p) && p.subarray(0, 7).toString() === "blobs/\0");
    parts.splice(dirAt, 1, header("blobs/", 8 * GiB, "5", 0o755), { zeros: 8 * GiB });
    await add(
      {
        name: `directory-with-data-${codec}`,
        issueClass: 1,
        what: "the blobs/ directory entry declares 8 GiB of data",
      },
      parts,
      codec,
    );
  }
  {
    // A layer entry far bigger than its descriptor: refused at the header, but the zstd decoder
    // used to inflate the whole first input chunk (GBs) before anyone could say no.
    const parts = reserialise(kept).slice(0, -1);
    const last = kept.layers[kept.layers.length - 1]!;
    const at = parts.findIndex((p) => p.subarray(0, 100).toString().startsWith(blobName(last.desc.digest)));
    parts.splice(at, 1, header(blobName(last.desc.digest), 16 * GiB));
    await add(
      {
        name: "layer-entry-16GiB-zstd",
        issueClass: 1,
        what: "the last layer's tar header says 16 GiB (its descriptor 10240 bytes), then zeros",
      },
      [...parts, { zeros: 16 * GiB }, EOA],
      "zstd",
    );
    const p2 = reserialise(kept).slice(0, -1);
    const idx = p2.findIndex((p) => p.subarray(0, 11).toString() === "index.json\0");
    p2.splice(idx, 1, header("index.json", 8 * GiB));
    await add(
      { name: "index-json-8GiB-zstd", issueClass: 1, what: "index.json declares 8 GiB of zeros" },
      [...p2.slice(0, idx + 1), { zeros: 8 * GiB }, ...p2.slice(idx + 1), EOA],
      "zstd",
    );
  }
  await add(
    { name: "entry-after-eoa-none", issueClass: 1, what: "a directory entry after the end-of-archive marker" },
    [...good, dirEntry("smuggled/")],
  );
  await add(
    { name: "file-after-eoa-gzip", issueClass: 1, what: "a 'repositories' file after the end-of-archive marker" },
    [...good, entry("repositories", Buffer.from("{}")), EOA],
    "gzip",
  );
  for (const codec of ["none", "xz"] as const) {
    await add(
      { name: `no-eoa-${codec}`, issueClass: 4, what: "a complete bundle without its end-of-archive marker" },
      good.slice(0, -1),
      codec,
    );
  }
  {
    const parts = reserialise(kept);
    parts.splice(3, 0, Buffer.alloc(512));
    await add(
      { name: "lone-zero-block-none", issueClass: 1, what: "one zero block between index.json and manifest.json" },
      parts,
    );
  }
  await add(
    { name: "pax-flood-xz", issueClass: 1, what: "16 million empty pax headers after index.json" },
    [...good.slice(0, 3), { repeat: paxEntry({ comment: "x" }), times: 16 * 1024 * 1024 }, ...good.slice(3)],
    "xz",
  );
  await add(
    { name: "directory-flood-zstd", issueClass: 1, what: "16 million 'blobs/' directory entries" },
    [...good.slice(0, 5), { repeat: dirEntry("blobs/"), times: 16 * 1024 * 1024 }, ...good.slice(5)],
    "zstd",
  );
  {
    // Many configs of 3.9 MiB each: every document is under the per-document cap, together 66 MiB.
    const blobs: Buffer[] = [];
    const roots: Desc[] = [];
    const layer = kept.layers[kept.layers.length - 1]!; // the uncompressed one
    for (let i = 0; i < 17; i++) {
      const cfg = json({
        architecture: "amd64",
        os: "linux",
        rootfs: { type: "layers", diff_ids: [layer.desc.digest] },
        history: [{ comment: `${i} ${"x".repeat(3.9 * MiB)}` }],
      });
      const m = json({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: descOf(OCI_CONFIG, cfg),
        layers: [layer.desc],
      });
      roots.push(named(descOf(OCI_MANIFEST, m), `localhost/big:${i}`));
      blobs.push(m, cfg);
    }
    blobs.push(layer.data);
    await add(
      { name: "documents-66MiB-zstd", issueClass: 1, what: "17 configs of 3.9 MiB each (66 MiB of JSON held)" },
      layoutParts(roots, blobs),
      "zstd",
    );
  }

  // 2. Kept compressed layers that inflate far beyond their diff_id --------------------------
  {
    const gzipLayer = kept.layers.find((l) => l.desc.mediaType === LAYER_GZIP)!;
    const zstdLayer = kept.layers.find((l) => l.desc.mediaType === LAYER_ZSTD)!;
    const tarLayer = kept.layers.find((l) => l.desc.mediaType === LAYER_TAR)!;
    const swapLayer = (old: Desc, data: Buffer, claim?: number): Buffer[] => {
      const map = new Map<string, Desc>([[old.digest, descOf(old.mediaType, data)]]);
      const m2 = json(rekey(kept.manifest.doc, map));
      map.set(kept.manifest.desc.digest, descOf(OCI_MANIFEST, m2));
      const files: Record<string, Buffer> = {};
      if (claim !== undefined) {
        const meta = rekey(JSON.parse(kept.file("airpack.json").toString()), map) as {
          images: { manifests: { layers: { digest: string; uncompressedSize?: number }[] }[] }[];
        };
        for (const l of meta.images[0]!.manifests[0]!.layers) if (l.digest === sha256(data)) l.uncompressedSize = claim;
        files["airpack.json"] = json(meta);
      }
      return reserialise(kept, {
        map,
        blobs: new Map([
          [old.digest, data],
          [kept.manifest.desc.digest, m2],
        ]),
        files,
      });
    };
    const twoKept: Mode[] = ["verify-deep", "unpack-uncompressed"];
    await add(
      {
        name: "kept-gzip-4GiB-claimed-200KiB",
        issueClass: 2,
        what: "a kept gzip layer replaced by 4 GiB of zeros; config diff_id and airpack.json (204800 bytes) unchanged",
        mustFail: twoKept,
      },
      swapLayer(gzipLayer.desc, zerosBlob("gzip", 4 * GiB), 204800),
    );
    await add(
      {
        name: "kept-zstd-16GiB",
        issueClass: 2,
        what: "the kept zstd layer replaced by 16 GiB of zeros (a 500 KB blob); no size recorded anywhere",
        mustFail: twoKept,
      },
      swapLayer(zstdLayer.desc, zerosBlob("zstd", 16 * GiB)),
      "xz",
    );
    await add(
      {
        name: "kept-gzip-1GiB-unclaimed",
        issueClass: 2,
        what: "a kept gzip layer replaced by 1 GiB of zeros; no size recorded, only the diff_id",
        mustFail: twoKept,
      },
      swapLayer(gzipLayer.desc, zerosBlob("gzip", 1 * GiB)),
    );
    await add(
      {
        name: "kept-gzip-other-content",
        issueClass: 2,
        what: "a kept gzip layer replaced by gzip of another tar of the same size (diff_id differs)",
        mustFail: twoKept,
      },
      swapLayer(gzipLayer.desc, compressBuffer("gzip", Buffer.alloc(gzipLayer.data.length, 7))),
    );
    // An uncompressed layer is its own diff_id: here the config says otherwise.
    const cfg2 = json(
      rekey(kept.config.doc, new Map([[tarLayer.desc.digest, { ...tarLayer.desc, digest: sha256("other") }]])),
    );
    const cmap = new Map<string, Desc>([[kept.config.desc.digest, descOf(OCI_CONFIG, cfg2)]]);
    const m3 = json(rekey(kept.manifest.doc, cmap));
    cmap.set(kept.manifest.desc.digest, descOf(OCI_MANIFEST, m3));
    await add(
      {
        name: "uncompressed-layer-not-its-diff-id",
        issueClass: 2,
        what: "the config's diff_id for the uncompressed layer is not that layer's digest",
        mustFail: twoKept,
      },
      reserialise(kept, {
        map: cmap,
        blobs: new Map([
          [kept.config.desc.digest, cfg2],
          [kept.manifest.desc.digest, m3],
        ]),
      }),
    );
  }

  // 3. Graph attacks ---------------------------------------------------------------------------
  const image = [kept.manifest.data, kept.config.data, ...kept.layers.map((l) => l.data)];
  const chain = (levels: number, fanout: number): { root: Desc; blobs: Buffer[] } => {
    let child: Desc = kept.manifest.desc;
    const docs: Buffer[] = [];
    for (let i = 0; i < levels; i++) {
      const doc = json({
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: Array.from({ length: fanout }, () => child),
      });
      docs.unshift(doc);
      child = descOf(OCI_INDEX, doc);
    }
    return { root: child, blobs: [...docs, ...image] };
  };
  {
    const c = chain(48, 2);
    await add(
      { name: "diamond-chain-48", issueClass: 3, what: "48 indexes, each listing the next one twice (2^48 paths)" },
      layoutParts([named(c.root, "localhost/diamond:48")], c.blobs),
      "zstd",
    );
    const w = chain(8, 300);
    await add(
      {
        name: "wide-diamond-8x300",
        issueClass: 3,
        what: "8 indexes, each listing the next one 300 times (300^8 paths, 9 distinct documents): legitimate",
        ok: true,
      },
      layoutParts([named(w.root, "localhost/wide:8")], w.blobs),
      "zstd",
    );
    const deep = chain(20000, 1);
    await add(
      { name: "deep-chain-20000", issueClass: 3, what: "20000 indexes nested one in the next" },
      layoutParts([named(deep.root, "localhost/deep:20000")], deep.blobs),
      "zstd",
    );
    const over = chain(17, 1);
    await add(
      { name: "chain-17", issueClass: 3, what: "17 nested indexes, one more than the documented depth" },
      layoutParts([named(over.root, "localhost/deep:17")], over.blobs),
    );
  }
  {
    // 5 manifests of 22,000 distinct one-byte... layers each: 110,000 blobs, every one present.
    const roots: Desc[] = [];
    const blobs: Buffer[] = [];
    const layerBlobs: Buffer[] = [];
    for (let i = 0; i < 5; i++) {
      const layers: Desc[] = [];
      for (let j = 0; j < 22000; j++) {
        const data = Buffer.from(`${i}/${j}`);
        layers.push(descOf(LAYER_TAR, data));
        layerBlobs.push(data);
      }
      const cfg = json({
        architecture: "amd64",
        os: "linux",
        rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) },
      });
      const m = json({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: descOf(OCI_CONFIG, cfg), layers });
      roots.push(named(descOf(OCI_MANIFEST, m), `localhost/many:${i}`));
      blobs.push(m, cfg);
    }
    await add(
      { name: "nodes-110k", issueClass: 3, what: "5 manifests with 22,000 distinct tiny layers each (110,010 blobs)" },
      layoutParts(roots, [...blobs, ...layerBlobs]),
      "gzip",
    );
  }
  {
    // CVE-2021-41190: one document that reads as an index and as a manifest.
    const m = kept.manifest.doc;
    const asIndex = json({ ...m, mediaType: OCI_INDEX, manifests: [kept.manifest.desc] });
    await add(
      {
        name: "polyglot-index",
        issueClass: 4,
        what: "an index that also has the manifest's config and layers",
      },
      layoutParts([named(descOf(OCI_INDEX, asIndex), "localhost/poly:index")], [asIndex, ...image]),
    );
    const other = chain(1, 1);
    const asManifest = json({ ...m, manifests: [other.root] });
    await add(
      {
        name: "polyglot-manifest",
        issueClass: 4,
        what: "a manifest that also lists an index under manifests",
      },
      layoutParts(
        [named(descOf(OCI_MANIFEST, asManifest), "localhost/poly:manifest")],
        [asManifest, kept.config.data, ...kept.layers.map((l) => l.data)],
      ),
    );
    const nested = "[".repeat(100000) + "]".repeat(100000);
    const deepJson = Buffer.from(JSON.stringify({ ...m, annotations: undefined }).replace(/^\{/, `{"x":${nested},`));
    await add(
      {
        name: "json-nested-100000",
        issueClass: 3,
        what: "a manifest with an unknown field nested 100,000 arrays deep",
      },
      layoutParts([named(descOf(OCI_MANIFEST, deepJson), "localhost/nested:1")], [deepJson, ...image.slice(1)]),
    );
  }

  // 4./5. Recipes --------------------------------------------------------------------------------
  const recipeMeta = JSON.parse(rec.file("airpack.json").toString()) as {
    images: { manifests: { layers: { size: number; recipe?: Json }[] }[] }[];
  };
  const withRecipe = (name: string, what: string, change: (r: Json, size: number) => void): Promise<void> => {
    const meta = structuredClone(recipeMeta);
    const layer = meta.images[0]!.manifests[0]!.layers.find((l) => l.recipe)!;
    change(layer.recipe!, layer.size);
    const text = JSON.stringify(meta).replace('"__NESTED__"', "[".repeat(100000) + "]".repeat(100000));
    return add(
      { name, issueClass: name.includes("format") ? 4 : 5, what },
      reserialise(rec, { files: { "airpack.json": Buffer.from(text) } }),
    );
  };
  const member = (r: Json, size: number): Json => ({
    encoder: r.encoder,
    family: r.family,
    level: r.level,
    versions: r.versions,
    header: r.header,
    size,
  });
  await withRecipe("recipe-format-lz4", "a recipe whose format is lz4", (r) => (r.format = "lz4"));
  await withRecipe("recipe-format-missing", "a recipe without a format", (r) => delete r.format);
  await withRecipe("recipe-unknown-encoder", "a recipe naming encoder zz-flate-6", (r) => (r.encoder = "zz-flate-6"));
  await withRecipe("recipe-absurd-level", "encoder go-flate-99, level 99", (r) => {
    r.encoder = "go-flate-99";
    r.level = 99;
  });
  await withRecipe("recipe-encoder-object", "the encoder is an object", (r) => (r.encoder = { id: "go-flate-6" }));
  await withRecipe("recipe-members-overflow", "two members of 2^53 bytes each", (r) => {
    r.members = [member(r, 2 ** 53), member(r, 2 ** 53)];
  });
  await withRecipe("recipe-negative-size", "members of -1 and size+1 bytes", (r, size) => {
    r.members = [member(r, -1), member(r, size + 1)];
  });
  await withRecipe("recipe-member-sizes-short", "members that add up to one byte less than the layer", (r, size) => {
    r.members = [member(r, 1), member(r, size - 2)];
  });
  await withRecipe("recipe-15000-members", "15,000 members (one holds every byte)", (r, size) => {
    r.members = Array.from({ length: 15000 }, (_, i) => member(r, i === 0 ? size : 0));
  });
  await withRecipe("recipe-header-not-gzip", "a header that is not a gzip header", (r) => (r.header = "AAAAAAAA"));
  await withRecipe("recipe-nested-100000", "an unknown recipe field nested 100,000 arrays deep", (r) => {
    r.extra = "__NESTED__";
  });
  return cases;
}

/** A bundle whose one layer consistently claims 64 GiB of zeros (for interrupting a long, legitimate-looking read). */
export async function makeLongBundle(dir: string, codec: Codec = "zstd"): Promise<string> {
  const size = 64 * GiB;
  const cfg = json({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [sha256("zeros")] } });
  const layer: Desc = { mediaType: LAYER_TAR, digest: sha256("not the zeros"), size };
  const m = json({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: descOf(OCI_CONFIG, cfg), layers: [layer] });
  const parts: Part[] = layoutParts([named(descOf(OCI_MANIFEST, m), "localhost/long:1")], [m, cfg], { eoa: false });
  parts.push(header(blobName(layer.digest), size), { zeros: size }, EOA);
  const file = join(dir, `long.${codec === "zstd" ? "tar.zst" : "tar"}`);
  await writeBundle(file, parts, codec);
  return file;
}

export async function writeCorpusList(file: string, cases: HostileCase[]): Promise<void> {
  await writeFile(file, cases.map((c) => `${c.name}\t${c.issueClass}\t${c.what}`).join("\n") + "\n");
}
