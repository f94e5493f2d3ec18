import { defineCommand, examples } from "../command-module";
import type { Globals } from "../globals";
import { formatBytes, printJson } from "../output";

export const verifyCommand = defineCommand({
  command: "verify <bundle>",
  describe: "check every blob's digest and size and every reference; write nothing",
  builder: (y) =>
    y
      .positional("bundle", { type: "string", describe: "bundle file, or - for stdin" })
      .epilogue(examples([["check a bundle after copying it", "verify site.tar.xz"]])),
  handler: async (a, signal) => {
    const g: Globals = { quiet: Boolean(a.quiet), json: Boolean(a.json) };
    const { summarize, verify } = await import("../../bundle/unpack.js");
    const s = summarize(await verify(a.bundle || "-", signal));
    if (g.json) printJson({ ok: true, ...s });
    else if (!g.quiet)
      process.stdout.write(
        `OK: ${s.images.length} image(s), ${s.totals.blobs} blobs, ${formatBytes(s.totals.layerBytes)} of layers verified\n`,
      );
  },
});
