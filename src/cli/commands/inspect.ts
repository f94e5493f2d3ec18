import { defineCommand, examples } from "../command-module";
import { printJson } from "../output";
import { printSummary } from "../summary";

export const inspectCommand = defineCommand({
  command: "inspect <bundle>",
  describe: "list images, platforms and layers of a bundle",
  builder: (y) =>
    y
      .positional("bundle", { type: "string", describe: "bundle file, or - for stdin" })
      .option("verify", { type: "boolean", default: false, describe: "also read and verify every layer" })
      .epilogue(
        examples([
          ["a table of images and layers", "inspect site.tar.xz"],
          ["for scripts", "inspect site.tar.xz --json | jq '.images[].name'"],
        ]),
      ),
  handler: async (a) => {
    const { inspect } = await import("../../bundle/unpack.js");
    const { bundleFileSize } = await import("../../bundle/parts.js");
    const s = await inspect(a.bundle || "-", a.verify);
    const bytes = a.bundle && a.bundle !== "-" ? bundleFileSize(a.bundle) : undefined; // all parts of a split one
    if (a.json) printJson({ ...s, ...(bytes !== undefined ? { bundleBytes: bytes } : {}) });
    else printSummary(s, bytes);
  },
});
