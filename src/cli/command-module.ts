import type { ArgumentsCamelCase, Argv, CommandModule } from "yargs";
import type { Globals } from "./globals";

/**
 * One airpack command, as yargs' CommandModule but with the handler also given the signal that
 * Ctrl-C aborts. Builders receive yargs with the global options already on it.
 */
export interface AirpackCommand<U> {
  command: string;
  /** false hides the command from --help. */
  describe: string | false;
  builder: (y: Argv<Globals>) => Argv<U>;
  handler: (args: ArgumentsCamelCase<U>, signal: AbortSignal) => Promise<void>;
}

/** Only there so the handler's argument type is inferred from the builder. */
export function defineCommand<U>(command: AirpackCommand<U>): AirpackCommand<U> {
  return command;
}

/** The yargs CommandModule for a command, its handler bound to the run's abort signal. */
export function withSignal<U>(c: AirpackCommand<U>, signal: AbortSignal): CommandModule<Globals, U> {
  return { command: c.command, describe: c.describe, builder: c.builder, handler: (a) => c.handler(a, signal) };
}
