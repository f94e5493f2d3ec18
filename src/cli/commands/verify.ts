import { defineCommand, examples } from "../command-module";
import type { Globals } from "../globals";
import { formatBytes, printJson } from "../output";

export const verifyCommand = defineCommand({
  command: "verify <bundle>",
  describe: "check every blob's digest and size and every reference; write nothing",
  builder: (y) =>
    y
      .positional("bundle", { type: "string", describe: "bundle file, or - for stdin" })
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
        ]),
      ),
  handler: async (a, signal) => {
    const g: Globals = { quiet: Boolean(a.quiet), json: Boolean(a.json) };
    const { summarize, verify } = await import("../../bundle/unpack.js");
    const s = summarize(await verify(a.bundle || "-", signal, a.deep));
    if (g.json) printJson({ ok: true, ...s });
    else if (!g.quiet)
      process.stdout.write(
        `OK: ${s.images.length} image(s), ${s.totals.blobs} blobs, ${formatBytes(s.totals.layerBytes)} of layers verified${a.deep ? ", every layer against its diff_id" : ""}\n`,
      );
  },
});
