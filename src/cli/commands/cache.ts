import { stat } from "node:fs/promises";
import { defaultCacheDir } from "../cache-dir";
import { defineCommand, examples } from "../command-module";
import { formatBytes, printJson, table } from "../output";

export const cacheCommand = defineCommand({
  command: "cache <action>",
  describe: "list or prune the content-addressed store",
  builder: (y) =>
    y
      .positional("action", { choices: ["ls", "prune"] as const, demandOption: true })
      .option("cache", { type: "string", default: defaultCacheDir(), describe: "store directory" })
      .option("all", { type: "boolean", default: false, describe: "prune: empty the store completely" })
      .epilogue(
        examples([
          ["images and space used", "cache ls"],
          ["drop blobs no cached image uses", "cache prune"],
        ]),
      ),
  handler: async (a) => {
    const [{ Store }, { listStore, pruneStore }] = await Promise.all([
      import("../../store/store.js"),
      import("../../store/admin.js"),
    ]);
    // Looking at a store must not make one: a mistyped --cache would otherwise leave a new directory behind.
    const exists = await stat(a.cache).then(
      (st) => st.isDirectory(),
      () => false,
    );
    if (!exists) {
      const empty = a.action === "ls" ? { root: a.cache, images: [], blobs: 0, bytes: 0 } : { removed: 0, bytes: 0 };
      if (a.json) printJson(empty);
      else if (!a.quiet) process.stdout.write(`no store at ${a.cache} (nothing cached yet)\n`);
      return;
    }
    const store = await Store.open(a.cache);
    if (a.action === "ls") {
      const l = await listStore(store);
      if (a.json) printJson(l);
      else {
        const rows = [
          ["IMAGE", "DIGEST", "TYPE"],
          ...l.images.map((i) => [i.name, i.digest, i.mediaType.replace(/^application\/vnd\./, "")]),
        ];
        process.stdout.write(table(rows) + `\n\n${l.blobs} blobs, ${formatBytes(l.bytes)} in ${l.root}\n`);
      }
    } else {
      const r = await pruneStore(store, a.all);
      if (a.json) printJson(r);
      else if (!a.quiet) process.stdout.write(`removed ${r.removed} blobs, ${formatBytes(r.bytes)}\n`);
    }
  },
});
