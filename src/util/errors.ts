/** A mistake in how a command was called: the CLI prints it with a hint and exits with code 2. */
export class UsageError extends Error {}

const FILE_ERRORS: Record<string, string> = {
  ENOENT: "no such file",
  EISDIR: "is a directory",
  ENOTDIR: "a part of the path is not a directory",
  EACCES: "permission denied",
  EPERM: "permission denied",
  ELOOP: "too many symlinks",
};

/** The reason a file could not be read, in words ("no such file"), for "<what>: cannot read (<reason>)". */
export function fileErrorReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return (e.code && FILE_ERRORS[e.code]) ?? e.message;
}

/** Whether an error is the operating system's (it has an errno code but names no source). */
export function isSystemError(err: unknown): boolean {
  return typeof (err as NodeJS.ErrnoException).code === "string" && "syscall" in (err as object);
}

const VERBS: Record<string, string> = {
  open: "open it",
  read: "read it",
  write: "write it",
  mkdir: "create it",
  rename: "rename it into place",
  lstat: "look at it",
  stat: "look at it",
  scandir: "list it",
  unlink: "remove it",
};

/**
 * A system error that escaped without a label ("ENOENT: no such file or directory, open '…'"),
 * said as "<path>: cannot <verb> (<reason>)". A temp file stands for the file it would become.
 */
export function describeSystemError(err: NodeJS.ErrnoException): string | undefined {
  if (!isSystemError(err) || !err.path) return undefined;
  const path = err.path.replace(/\/\.([^/]+)\.airpack-tmp-[0-9a-f]+$/, "/$1");
  const verb = VERBS[err.syscall ?? ""] ?? `${err.syscall ?? "use"} it`;
  return `${path}: cannot ${verb} (${fileErrorReason(err)})`;
}
