/** A mistake in how a command was called: the CLI prints it with a hint and exits with code 2. */
export class UsageError extends Error {}
