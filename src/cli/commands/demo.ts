import { defineCommand } from "../command-module";

/** npm start; hidden from --help. The work is in ../demo.ts, loaded only when it runs. */
export const demoCommand = defineCommand({
  command: "demo",
  describe: false,
  builder: (y) => y,
  handler: async (a) => {
    const { runDemo } = await import("../demo.js");
    await runDemo({ quiet: a.quiet, json: a.json });
  },
});
