import { defineCommand, examples } from "../command-module";
import type { Globals } from "../globals";
import { formatBytes, printJson } from "../output";
import { registryAccess, registryAccessOptions } from "../credentials";
import { printDelta } from "../summary";

export const verifyCommand = defineCommand({
  command: "verify <bundle>",
  describe: "check every blob's digest and size and every reference; write nothing",
  builder: (y) =>
    registryAccessOptions(y)
      .positional("bundle", { type: "string", describe: "bundle file, or - for stdin" })
      .option("base", {
        type: "string",
        describe: "a delta bundle's base (BUNDLE or oci:DIR): its relied-on blobs are read from there and verified too",
      })
      .option("base-registry", {
        type: "string",
        describe: "a delta bundle's base as a registry (REG[/PREFIX] the base was pushed to)",
      })
      .option("deep", {
        type: "boolean",
        default: false,
        describe:
          "also decompress every compressed layer and check it against its config's diff_id (within the size " +
          "airpack.json records, or 1100 times the layer's size)",
      })
      .epilogue(
        examples([
          ["check a bundle after copying it", "verify site.tar.xz"],
          ["and every layer's content against its diff_id", "verify --deep site.tar.xz"],
          ["a delta and the blobs it relies on, from its base", "verify delta.tar.xz --base site.tar.xz"],
        ]),
      ),
  handler: async (a, signal) => {
    const g: Globals = { quiet: Boolean(a.quiet), json: Boolean(a.json) };
    const { summarize, verify } = await import("../../bundle/unpack.js");
    const withBase = a.base !== undefined || a["base-registry"] !== undefined;
    const base = {
      ...(a.base !== undefined ? { base: a.base } : {}),
      ...(a["base-registry"] !== undefined ? { baseRegistry: a["base-registry"] } : {}),
      ...(withBase ? { registry: await registryAccess(a) } : {}),
    };
    const s = summarize(await verify(a.bundle || "-", signal, a.deep, base));
    if (g.json) printJson({ ok: true, ...s, ...(s.delta ? { baseChecked: withBase } : {}) });
    else if (!g.quiet) {
      const relied = s.delta ? s.delta.relies.length : 0;
      const checked = relied > 0 && withBase ? `, and the ${relied} blob(s) it relies on in the base` : "";
      process.stdout.write(
        `OK: ${s.images.length} image(s), ${s.totals.blobs} blobs, ${formatBytes(s.totals.layerBytes)} of layers verified${a.deep ? ", every layer against its diff_id" : ""}${checked}\n`,
      );
      if (!withBase) printDelta(s);
    }
  },
});
