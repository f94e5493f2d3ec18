import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { unpack } from "../bundle/unpack";
import { OciLayoutSource } from "../transports/layout";
import { DirTree } from "../util/files";
import { trackTempPath, untrackTempPath } from "../util/leftovers";
import { addToCatalog, type Catalog } from "./catalog";
import { startServer, type RunningServer } from "./server";

export interface ServeOptions {
  bundles: string[];
  host: string;
  port: number;
  prefix: string;
  /** Where each bundle's verified, digest-restored layout is kept while serving. */
  workDir: string;
  tls?: { cert: Buffer; key: Buffer };
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
      await addToCatalog(catalog, layout, source, await source.images(), opts.prefix);
      opts.log(`${bundle}: verified, ${catalog.repositories.size} repositories so far`);
    }
    const server = await startServer({
      catalog,
      host: opts.host,
      port: opts.port,
      log: opts.log,
      ...(opts.tls ? { tls: opts.tls } : {}),
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
