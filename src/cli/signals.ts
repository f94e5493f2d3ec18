import { setMaxListeners } from "node:events";

/** Ctrl-C aborts the work; outputs are only renamed into place on success. */
export function abortOnSignals(): AbortSignal {
  const controller = new AbortController();
  // One listener per stream in flight; the default cap of 10 is too low for --jobs.
  setMaxListeners(256, controller.signal);
  const onSignal = (sig: NodeJS.Signals): void => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write(`airpack: ${sig}, stopping and removing partial output\n`);
    controller.abort(new Error(`interrupted by ${sig}`));
    process.exitCode = 130;
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  return controller.signal;
}
