import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { unpack } from "../bundle/unpack";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { MAX_JSON_BYTES, type Descriptor } from "../oci/descriptor";
import { METADATA_FILE, parseMetadata } from "../bundle/format";
import { blobPath } from "../transports/layout";
import { OciLayoutSource } from "../transports/layout";
import { DirTree, TarTree, type FileTree } from "../util/files";
import { XzTree } from "./xz-tree";
import { RestoredTreeSource } from "./restored";
import { Store } from "../store/store";
import { trackTempPath, untrackTempPath } from "../util/leftovers";
import { addToCatalog, inLayoutDir, type BlobLocation, type Catalog } from "./catalog";
import { startServer, type RunningServer } from "./server";

export interface ServeOptions {
  bundles: string[];
  host: string;
  port: number;
  prefix: string;
  /** Where each bundle's verified, digest-restored layout is kept while serving. */
  workDir: string;
  /** Where the blob offsets of seekable .tar.xz bundles are kept between runs (default: beside workDir). */
  indexDir?: string;
  /** The store recipe layers rebuilt for a bundle served in place are kept in (default: workDir's parent). */
  storeDir?: string;
  tls?: { cert: Buffer; key: Buffer };
  users?: Map<string, string>;
  log: (line: string) => void;
  signal?: AbortSignal;
}

export interface Serving extends RunningServer {
  repositories: string[];
}

/**
 * serve: every bundle is read once, verified and its digests restored into a layout of its own
 * (nothing is served that was not checked); then a read-only registry answers from those.
 */
export async function serveBundles(opts: ServeOptions): Promise<Serving> {
  await mkdir(opts.workDir, { recursive: true });
  const dirs: string[] = [];
  const removeAll = async (): Promise<void> => {
    for (const dir of dirs) {
      await rm(dir, { recursive: true, force: true });
      untrackTempPath(dir);
    }
  };
  try {
    const catalog: Catalog = { repositories: new Map(), files: new Map() };
    for (const bundle of opts.bundles) {
      if (await servedInPlace(bundle, catalog, opts)) continue;
      const dir = trackTempPath(await mkdtemp(join(opts.workDir, "serve-")));
      dirs.push(dir);
      const layout = join(dir, "layout");
      await unpack({
        input: bundle,
        out: layout,
        format: "oci",
        force: false,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      const source = new OciLayoutSource(new DirTree(layout), `bundle ${bundle}`);
      await addToCatalog(catalog, inLayoutDir(layout), source, await source.images(), opts.prefix);
      opts.log(`${bundle}: verified, ${catalog.repositories.size} repositories so far`);
    }
    const server = await startServer({
      catalog,
      host: opts.host,
      port: opts.port,
      log: opts.log,
      ...(opts.tls ? { tls: opts.tls } : {}),
      ...(opts.users ? { users: opts.users } : {}),
    });
    return {
      address: server.address,
      repositories: [...catalog.repositories.keys()].sort(),
      close: async () => {
        await server.close();
        await removeAll();
      },
    };
  } catch (err) {
    await removeAll();
    throw err;
  }
}

/**
 * A plain .tar bundle, or a .tar.xz in blocks (as pack writes), with nothing to restore is served
 * from its own bytes, with no copy: its manifests and configs are checked now, every blob again
 * before its first byte is sent (a plain tar's in the background, an xz bundle's in the one-time
 * indexing pass). A blob that fails gets a 500 and a log line; the others are served. Other
 * bundles, and bundles whose original digests must be rebuilt, are unpacked first.
 */
async function servedInPlace(bundle: string, catalog: Catalog, opts: ServeOptions): Promise<boolean> {
  if (bundle === "-") return false;
  const tar = await TarTree.open(bundle).catch(() => undefined);
  const indexDir = opts.indexDir ?? join(dirname(opts.workDir), "serve-index");
  const xz = tar ? undefined : await XzTree.open(bundle, indexDir, opts.log);
  const tree: FileTree | undefined = tar ?? xz;
  if (!tree) return false; // compressed (or not a tar): the unpack path says what is wrong
  const restoring = await needsRestoring(tree);
  if (restoring && !xz) return false;
  const label = `bundle ${bundle}`;
  const restored = restoring ? await RestoredTreeSource.open(tree, label) : undefined;
  const store = restored ? await Store.open(opts.storeDir ?? dirname(opts.workDir)) : undefined;
  const checks: (() => Promise<void>)[] = [];
  const locate = (desc: Descriptor): BlobLocation => {
    const from = restored?.rebuildSource(desc);
    if (from && store && xz) return rebuiltLocation(desc, from, restored!, store, xz);
    if (xz) {
      const start = xz.offsetOf(blobPath(desc));
      const bad = xz.bad.has(desc.digest);
      return {
        path: bundle,
        start,
        read: (from, to) => xz.range(start + from, to - from + 1),
        check: () => (bad ? Promise.reject(new Error(`blob ${desc.digest} failed its check`)) : Promise.resolve()),
      };
    }
    const start = tar!.locate(blobPath(desc)).offset;
    let checked: Promise<void> | undefined;
    const check = (): Promise<void> => (checked ??= checkRange(bundle, start, desc));
    checks.push(check);
    return { path: bundle, start, check };
  };
  const source = restored ?? new OciLayoutSource(tree, label);
  await addToCatalog(catalog, locate, source, await source.images(), opts.prefix);
  if (xz) {
    for (const digest of xz.bad) opts.log(`${bundle}: blob ${digest} failed its check; it is not served`);
    opts.log(`${bundle}: served in place from its xz blocks; ${xz.bad.size} blobs failed their check`);
    return true;
  }
  opts.log(`${bundle}: served in place; checking ${checks.length} blobs in the background`);
  void (async () => {
    let bad = 0;
    for (const check of checks) {
      if (opts.signal?.aborted) return;
      await check().catch((err: Error) => {
        bad++;
        opts.log(`${bundle}: ${err.message}; it is not served`);
      });
    }
    opts.log(`${bundle}: ${checks.length - bad} of ${checks.length} blobs checked out`);
  })();
  return true;
}

/**
 * A recipe layer of a bundle served in place: its first request rebuilds it into the store (checked
 * there against the original digest before the rename), or checks the copy an earlier run left.
 */
function rebuiltLocation(
  desc: Descriptor,
  from: Descriptor,
  source: RestoredTreeSource,
  store: Store,
  tree: XzTree,
): BlobLocation {
  const file = store.blobFile(desc);
  let ready: Promise<void> | undefined;
  const check = (): Promise<void> =>
    (ready ??= (async () => {
      if (tree.bad.has(from.digest))
        throw new Error(`blob ${from.digest}, layer ${desc.digest}'s source, failed its check`);
      await checkRange(file, 0, desc).catch(() => source.rebuildInto(store, desc));
    })());
  return { path: file, start: 0, check };
}

/** Whether airpack.json says some original digest must be rebuilt (a recipe, or another root). */
async function needsRestoring(tree: FileTree): Promise<boolean> {
  if (!(await tree.exists(METADATA_FILE))) return false;
  const meta = parseMetadata(await tree.readSmall(METADATA_FILE, MAX_JSON_BYTES), `${tree.label}: ${METADATA_FILE}`);
  return meta.images.some(
    (img) =>
      (img.restored && img.restored.digest !== img.digest) ||
      img.manifests.some((m) => m.layers.some((l) => l.recipe !== undefined)),
  );
}

async function checkRange(path: string, start: number, desc: Descriptor): Promise<void> {
  const hash = createHash("sha256");
  let size = 0;
  if (desc.size > 0) {
    for await (const chunk of createReadStream(path, { start, end: start + desc.size - 1 })) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
  }
  const digest = `sha256:${hash.digest("hex")}`;
  if (size !== desc.size || digest !== desc.digest) {
    throw new Error(`blob ${desc.digest} failed its check (${size} bytes, sha256:${digest.slice(7, 19)}…)`);
  }
}

/** An htpasswd file of bcrypt entries (`htpasswd -B`), as distribution reads it. */
export function parseHtpasswd(text: string, file: string): Map<string, string> {
  const users = new Map<string, string>();
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const colon = line.indexOf(":");
    const hash = line.slice(colon + 1);
    if (colon <= 0 || !/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) {
      throw new Error(`${file}:${i + 1}: not a bcrypt entry (make it with htpasswd -B)`);
    }
    users.set(line.slice(0, colon), hash);
  }
  if (users.size === 0) throw new Error(`${file}: no users`);
  return users;
}
