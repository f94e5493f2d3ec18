import { homedir } from "node:os";
import { join } from "node:path";

export function defaultCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "airpack");
}
