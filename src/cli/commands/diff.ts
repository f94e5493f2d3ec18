import { defaultCacheDir } from "../cache-dir";
import { defineCommand, examples } from "../command-module";
import { registryAccess, registryAccessOptions } from "../credentials";
import { formatBytes, printJson, table } from "../output";
import { checkCount } from "../validate";

const SIDE = "an inventory file, a bundle (bundle:FILE or FILE), oci:DIR, store, or a registry REGISTRY[/PREFIX]";

export const diffCommand = defineCommand({
  command: "diff <old> <new>",
  describe: "per image: added, removed, changed, the layers that changed and the bytes a delta would carry",
  builder: (y) =>
    registryAccessOptions(y)
      .positional("old", { type: "string", demandOption: true, describe: `what the site has: ${SIDE}` })
      .positional("new", { type: "string", demandOption: true, describe: `what it is to get: ${SIDE}` })
      .option("jobs", { alias: "j", type: "number", default: 8, describe: "registry requests in flight" })
      .option("cache", { type: "string", default: defaultCacheDir(), describe: "the store `store` names" })
      .epilogue(
        examples([
          ["what a delta would carry to the site", "diff site.inventory.json registry.corp:5000/team"],
          ["two bundles, for scripts", "diff --json old.tar.xz new.tar.xz | jq .totals"],
        ]),
      ),
  handler: async (a) => {
    const { inventoryOf } = await import("../../inventory/collect.js");
    const { diffInventories } = await import("../../inventory/diff.js");
    const opts = { registry: await registryAccess(a), cacheDir: a.cache, jobs: checkCount(a.jobs, "--jobs") ?? 8 };
    const d = diffInventories(await inventoryOf(a.old, opts), await inventoryOf(a.new, opts));
    if (a.json) return printJson(d);
    const rows = [["IMAGE", "STATUS", "OLD", "NEW", "LAYERS +/-", "DELTA LAYER BYTES"]];
    for (const i of d.images) {
      rows.push([
        i.image,
        i.status,
        i.oldDigest?.slice(7, 19) ?? "-",
        i.newDigest?.slice(7, 19) ?? "-",
        `+${i.addedLayers.length} -${i.removedLayers.length}`,
        formatBytes(i.deltaLayerBytes),
      ]);
      for (const l of i.addedLayers) rows.push(["", "  + layer", "", l.slice(7, 19), "", ""]);
      for (const l of i.removedLayers) rows.push(["", "  - layer", l.slice(7, 19), "", "", ""]);
    }
    const t = d.totals;
    process.stdout.write(
      `${table(rows)}\n\n${t.added} added, ${t.removed} removed, ${t.changed} changed, ${t.unchanged} unchanged; ` +
        `a delta would carry ${t.deltaLayers} layer(s), ${formatBytes(t.deltaLayerBytes)}, plus ${formatBytes(t.metadataBytes)} of manifests and configs\n`,
    );
  },
});
