import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { unpack, verify } from "../bundle/unpack";
import type { Digest } from "../oci/digest";
import { blobPath } from "../transports/layout";
import { OciLayoutSource } from "../transports/layout";
import { DirTree, TarTree } from "../util/files";
import { trackTempPath, untrackTempPath } from "../util/leftovers";
import { addToCatalog, inLayoutDir, type Catalog } from "./catalog";
import { startServer, type RunningServer } from "./server";

export interface ServeOptions {
  bundles: string[];
  host: string;
  port: number;
  prefix: string;
  /** Where each bundle's verified, digest-restored layout is kept while serving. */
  workDir: string;
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
 * A plain .tar bundle with nothing to restore is served from its own bytes, at their offsets,
 * after one verifying read: no copy is made. Compressed bundles, and bundles whose original
 * digests must be rebuilt from recipes, are unpacked first.
 */
async function servedInPlace(bundle: string, catalog: Catalog, opts: ServeOptions): Promise<boolean> {
  if (bundle === "-") return false;
  const head = await TarTree.open(bundle).catch(() => undefined);
  if (!head) return false; // compressed (or not a tar): the unpack path says what is wrong
  const contents = await verify(bundle, opts.signal);
  const restores = (contents.metadata?.images ?? []).some(
    (i) => (i.restored && i.restored.digest !== i.digest) || i.manifests.some((m) => m.layers.some((l) => l.recipe)),
  );
  if (restores) return false;
  const source = new OciLayoutSource(head, `bundle ${bundle}`);
  const locate = (digest: Digest): { path: string; start: number } => ({
    path: bundle,
    start: head.locate(blobPath({ digest })).offset,
  });
  await addToCatalog(catalog, locate, source, await source.images(), opts.prefix);
  opts.log(`${bundle}: verified, served in place`);
  return true;
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
