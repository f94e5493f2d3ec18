import yargs from "yargs";
import { describeSystemError, UsageError } from "../util/errors";
import { toolVersion } from "../version";
import { withSignal } from "./command-module";
import { cacheCommand } from "./commands/cache";
import { demoCommand } from "./commands/demo";
import { inspectCommand } from "./commands/inspect";
import { inventoryCommand } from "./commands/inventory";
import { diffCommand } from "./commands/diff";
import { packCommand } from "./commands/pack";
import { copyCommand, pushCommand } from "./commands/push";
import { serveCommand } from "./commands/serve";
import { unpackCommand } from "./commands/unpack";
import { verifyCommand } from "./commands/verify";
import { abortOnSignals } from "./signals";
import { removeLeftoversNow } from "../util/leftovers";

// One module per command under commands/; each loads its implementation (unpack, the store) only
// when it runs, so start-up and --help stay fast.

async function main(argv: string[], signal: AbortSignal): Promise<void> {
  const cli = yargs(argv)
    .scriptName("airpack")
    .usage("$0 <command>\n\nMove container images into air-gapped sites as one verified bundle file.")
    .option("quiet", { alias: "q", type: "boolean", default: false, describe: "no progress or log lines" })
    .option("json", { type: "boolean", default: false, describe: "machine-readable output on stdout" })
    .option("debug", {
      type: "boolean",
      default: false,
      describe: "log token realms, redirects and error stacks on stderr",
    })
    .middleware((a) => {
      if (a.debug) process.env.AIRPACK_DEBUG = "1";
    })
    .command(withSignal(packCommand, signal))
    .command(withSignal(unpackCommand, signal))
    .command(withSignal(verifyCommand, signal))
    .command(withSignal(inspectCommand, signal))
    .command(withSignal(pushCommand, signal))
    .command(withSignal(copyCommand, signal))
    .command(withSignal(serveCommand, signal))
    .command(withSignal(inventoryCommand, signal))
    .command(withSignal(diffCommand, signal))
    .command(withSignal(cacheCommand, signal))
    .command(withSignal(demoCommand, signal))
    .demandCommand(1, "name a command: pack, unpack, verify, inspect, push, copy, serve, inventory, diff or cache")
    .strict()
    .version(toolVersion())
    .help()
    .alias("h", "help")
    .epilogue("Exit codes: 0 ok, 1 failure, 2 usage error. Docs: README.md, docs/bundle-format.md")
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err, y) => {
      if (err) throw err;
      void y;
      process.stderr.write(`airpack: ${msg}\nRun 'airpack --help' for usage.\n`);
      process.exit(2);
    });
  await cli.parseAsync();
}

export function run(): void {
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(process.exitCode ?? 1);
  });
  let settled = false;
  // A promise that can never settle (a stream that stalled) must not end as a silent exit 0.
  process.on("beforeExit", () => {
    if (!settled) {
      process.stderr.write("airpack: internal error: work stalled before finishing (please report)\n");
      process.exit(1);
    }
  });
  // A bug that escapes every handler still ends as one line, exit 1, and no temp files or children.
  const crash = (err: unknown): void => {
    const e = err instanceof Error ? err : new Error(String(err));
    process.stderr.write(`airpack: internal error: ${e.message.split("\n")[0] ?? ""} (please report)\n`);
    if (process.env.AIRPACK_DEBUG) process.stderr.write(`${e.stack ?? ""}\n`);
    removeLeftoversNow();
    process.exit(1);
  };
  process.on("uncaughtException", crash);
  process.on("unhandledRejection", crash);
  // Installed first, so a Ctrl-C during start-up is handled the same way.
  const signal = abortOnSignals();
  main(process.argv.slice(2), signal)
    .then(() => {
      settled = true;
    })
    .catch((err: unknown) => {
      settled = true;
      const e = err instanceof Error ? err : new Error(String(err));
      const msg = describeSystemError(e) ?? e.message.split("\n")[0] ?? String(err);
      process.stderr.write(`airpack: ${msg}\n`);
      if (process.env.AIRPACK_DEBUG) process.stderr.write(`${e.stack ?? ""}\n`);
      process.exit(e instanceof UsageError ? 2 : process.exitCode && process.exitCode !== 0 ? process.exitCode : 1);
    });
}
