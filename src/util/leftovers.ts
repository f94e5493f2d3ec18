import { rmSync } from "node:fs";

/**
 * Temp files, temp directories and child processes this process made, so that a second Ctrl-C, or
 * work that does not stop within the grace period after the first, can still leave nothing behind.
 * It is process-wide on purpose: the signal handler that uses it is too. Entries are removed when
 * the thing is renamed into place, deleted or exits; a stale entry costs one no-op rmSync.
 */
const paths = new Set<string>();
const children = new Set<{ kill(signal?: NodeJS.Signals): boolean }>();

export function trackTempPath(path: string): string {
  paths.add(path);
  return path;
}

export function untrackTempPath(path: string): void {
  paths.delete(path);
}

export function trackChild(child: {
  kill(signal?: NodeJS.Signals): boolean;
  once(event: "exit", f: () => void): unknown;
}): void {
  children.add(child);
  child.once("exit", () => children.delete(child));
}

/** Kill the children and remove every tracked temp path, synchronously (the process is about to exit). */
export function removeLeftoversNow(): void {
  for (const child of children) child.kill("SIGKILL");
  children.clear();
  for (const path of paths) {
    try {
      rmSync(path, { recursive: true, force: true });
    } catch {
      // nothing more can be done on the way out
    }
  }
  paths.clear();
}
