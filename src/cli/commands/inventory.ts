import { writeFileAtomic } from "../../util/atomic";
import { UsageError } from "../../util/errors";
import { defaultCacheDir } from "../cache-dir";
import { defineCommand, examples } from "../command-module";
import { registryAccess, registryAccessOptions } from "../credentials";
import { log, type Globals } from "../globals";
import { formatBytes } from "../output";
import { checkCount } from "../validate";

export const inventoryCommand = defineCommand({
  command: "inventory [sources..]",
  describe: "record what a site holds (blobs, manifests, names) for pack --have",
  builder: (y) =>
    registryAccessOptions(y)
      .positional("sources", {
        type: "string",
        array: true,
        describe:
          "REGISTRY[/PREFIX] or docker://REGISTRY[/PREFIX] (catalog, tags, manifests), bundle:FILE (or FILE), oci:DIR, store or store:DIR",
      })
      .option("output", {
        alias: "o",
        type: "string",
        demandOption: true,
        describe: "inventory file (JSON, see docs/inventory-format.md), or - for stdout",
      })
      .option("jobs", { alias: "j", type: "number", default: 8, describe: "registry requests in flight" })
      .option("cache", { type: "string", default: defaultCacheDir(), describe: "the store `store` names" })
      .epilogue(
        examples([
          ["the site registry, carried back for the next pack", "inventory registry.site:5000 -o site.inventory.json"],
          ["one prefix of it", "inventory registry.site:5000/team -o team.inventory.json"],
          ["what bundles and a layout hold", "inventory bundle:site.tar.xz oci:./layout -o site.inventory.json"],
        ]),
      ),
  handler: async (a) => {
    const g: Globals = { quiet: Boolean(a.quiet), json: Boolean(a.json) };
    const sources = a.sources ?? [];
    if (sources.length === 0) throw new UsageError("name at least one source (a registry, bundle, oci:DIR or store)");
    const jobs = checkCount(a.jobs, "--jobs") ?? 8;
    const { takeInventory } = await import("../../inventory/collect.js");
    const { encodeInventory } = await import("../../inventory/format.js");
    const inventory = await takeInventory(sources, { registry: await registryAccess(a), cacheDir: a.cache, jobs });
    const bytes = encodeInventory(inventory);
    if (a.output === "-") process.stdout.write(bytes);
    else await writeFileAtomic(a.output, bytes);
    const total = inventory.blobs.reduce((n, b) => n + b.size, 0);
    if (a.output !== "-")
      log(
        g,
        `wrote ${a.output}: ${inventory.manifests.length} manifest(s), ${inventory.blobs.length} blobs (${formatBytes(total)}) from ${inventory.sources.length} source(s)`,
      );
  },
});
