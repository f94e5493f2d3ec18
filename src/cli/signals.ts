import { setMaxListeners } from "node:events";
import { removeLeftoversNow } from "../util/leftovers";

/** How long the work gets to stop by itself after a signal before the process ends it. */
const GRACE_MS = 1500;

/**
 * Ctrl-C (or SIGTERM) aborts the work; outputs are only renamed into place on success. Whatever
 * has not stopped after GRACE_MS (a stuck read, a worker, a child), or a second signal, ends the
 * process there and then, after removing every temp file and directory it made.
 */
export function abortOnSignals(): AbortSignal {
  const controller = new AbortController();
  // One listener per stream in flight; the default cap of 10 is too low for --jobs.
  setMaxListeners(256, controller.signal);
  const forceExit = (): never => {
    removeLeftoversNow();
    process.exit(130);
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    if (controller.signal.aborted) forceExit();
    process.stderr.write(`airpack: ${sig}, stopping and removing partial output\n`);
    controller.abort(new Error(`interrupted by ${sig}`));
    process.exitCode = 130;
    setTimeout(forceExit, GRACE_MS);
    process.once(sig, onSignal); // a second one ends it at once
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  return controller.signal;
}
