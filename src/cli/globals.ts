/** The options every command takes (--quiet, --json), as the handlers see them. */
export interface Globals {
  quiet: boolean;
  json: boolean;
}

export function log(g: Globals, line: string): void {
  if (!g.quiet && !g.json) process.stderr.write(line + "\n");
}
