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

/**
 * Examples as an epilogue, each command on a line of its own under a "# what it does" line (as
 * kubectl prints them): yargs' two-column examples wrap long commands mid-word. Keep each command
 * within 76 characters so an 80-column terminal shows it whole.
 */
export function examples(list: readonly (readonly [what: string, command: string])[]): string {
  const body = list.map(([what, command]) => `  # ${what}\n  airpack ${command}`).join("\n\n");
  return `Examples:\n${body}\n\nExit codes: 0 ok, 1 failure, 2 usage error.`;
}
