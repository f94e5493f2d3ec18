import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { UsageError } from "../../util/errors";
import { defaultCacheDir } from "../cache-dir";
import { defineCommand, examples } from "../command-module";
import { log, type Globals } from "../globals";

function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new UsageError(`--listen ${text}: expected HOST:PORT, e.g. 127.0.0.1:5000`);
  return { host: m[1] ?? (m[2] || "0.0.0.0"), port };
}

export const serveCommand = defineCommand({
  command: "serve <bundles..>",
  describe: "serve bundles as a read-only registry (verified, original digests)",
  builder: (y) =>
    y
      .positional("bundles", { type: "string", array: true, demandOption: true, describe: "bundle files" })
      .option("listen", { type: "string", default: "127.0.0.1:5000", describe: "HOST:PORT to listen on" })
      .option("prefix", { type: "string", default: "", describe: "serve every repository under this path" })
      .option("tls-cert", { type: "string", describe: "PEM certificate (with --tls-key) to serve HTTPS" })
      .option("tls-key", { type: "string", describe: "PEM private key" })
      .option("htpasswd", { type: "string", describe: "require Basic auth for these users (bcrypt, htpasswd -B)" })
      .option("cache", {
        type: "string",
        default: defaultCacheDir(),
        describe: "directory under which the verified layouts are kept while serving",
      })
      .epilogue(
        examples([
          ["a mirror for containerd and podman", "serve site.tar.xz --listen 0.0.0.0:5000"],
          ["two bundles, under a path", "serve a.tar.xz b.tar.zst --prefix mirror"],
        ]),
      ),
  handler: async (a, signal) => {
    const g: Globals = { quiet: Boolean(a.quiet), json: Boolean(a.json) };
    const { host, port } = parseListen(a.listen);
    if (Boolean(a["tls-cert"]) !== Boolean(a["tls-key"])) throw new UsageError("--tls-cert and --tls-key go together");
    if (
      a.prefix &&
      !/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(a.prefix)
    )
      throw new UsageError(`--prefix ${a.prefix}: lower-case letters, digits and . _ - /`);
    const tls =
      a["tls-cert"] && a["tls-key"]
        ? { cert: await readFile(a["tls-cert"]), key: await readFile(a["tls-key"]) }
        : undefined;
    const { parseHtpasswd, serveBundles } = await import("../../serve/serve.js");
    const users = a.htpasswd ? parseHtpasswd(await readFile(a.htpasswd, "utf8"), a.htpasswd) : undefined;
    const serving = await serveBundles({
      bundles: a.bundles,
      host,
      port,
      prefix: a.prefix,
      workDir: join(a.cache, "serve"),
      log: (line) => {
        if (!g.quiet) process.stderr.write(`${line}\n`);
      },
      ...(tls ? { tls } : {}),
      ...(users ? { users } : {}),
      signal,
    });
    const scheme = tls ? "https" : "http";
    if (g.json)
      process.stdout.write(`${JSON.stringify({ address: serving.address, repositories: serving.repositories })}\n`);
    else log(g, `serving ${serving.repositories.length} repositories on ${scheme}://${serving.address} (Ctrl-C stops)`);
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      signal.addEventListener("abort", () => resolve(), { once: true });
    });
    await serving.close();
  },
});
