/**
 * Shared setup of the containers/image tools (podman, skopeo): a private
 * /var/lib per helper, and an env + config files that keep them off the
 * user's config, auth and cache files.
 */
import * as fs from "node:fs/promises";
import * as path from "node:path";

import { isRoot, missingTools, run } from "./process";
import { makeTempDir, removeDir } from "./temp";

// ---------------------------------------------------------------------------
// /var/lib isolation for containers/image tools (podman, skopeo)
// ---------------------------------------------------------------------------
//
// As root, containers/image keeps its blob-info cache in
// /var/lib/containers/cache/blob-info-cache-v1.boltdb whatever HOME/XDG say,
// and neither podman 4.3 nor skopeo 1.9 has a flag for it. When we are root
// and `unshare` works, each podman/skopeo call runs in a private mount
// namespace where a temp dir is bind-mounted over /var/lib, so the cache (and
// anything else under /var/lib) is per-helper and the host is never touched.

let varLibIsolationProbe: Promise<boolean> | null = null;

/** Whether podman/skopeo calls can get a private /var/lib (root + unshare + mount). */
export function canIsolateVarLib(): Promise<boolean> {
  varLibIsolationProbe ??= (async () => {
    if (!isRoot() || process.platform !== "linux") return false;
    if ((await missingTools(["unshare", "mount", "sh"])).length > 0) return false;
    const dir = await makeTempDir("airpack-varlib-probe");
    try {
      const r = await run("unshare", [...varLibWrapperArgs(dir), "true"], {
        timeoutMs: 10_000,
      });
      return r.code === 0;
    } catch {
      return false;
    } finally {
      await removeDir(dir);
    }
  })();
  return varLibIsolationProbe;
}

function varLibWrapperArgs(varLibDir: string): string[] {
  return [
    "--mount",
    "--propagation",
    "private",
    "--",
    "sh",
    "-c",
    'mount --bind "$0" /var/lib && exec "$@"',
    varLibDir,
  ];
}

/** Command + args that run `cmd args` with `varLibDir` over /var/lib (or directly when not isolated). */
export function wrapVarLib(
  isolated: boolean,
  varLibDir: string,
  cmd: string,
  args: readonly string[],
): [string, string[]] {
  return isolated ? ["unshare", [...varLibWrapperArgs(varLibDir), cmd, ...args]] : [cmd, [...args]];
}

/** Env for containers/image tools that keeps them off the user's config, auth and cache files. */
export function containersEnv(dir: string, extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return {
    ...process.env,
    HOME: path.join(dir, "home"),
    XDG_CONFIG_HOME: path.join(dir, "home", ".config"),
    XDG_DATA_HOME: path.join(dir, "home", ".local", "share"),
    XDG_CACHE_HOME: path.join(dir, "home", ".cache"),
    XDG_RUNTIME_DIR: path.join(dir, "xdg-run"),
    TMPDIR: path.join(dir, "tmp"),
    CONTAINERS_REGISTRIES_CONF: path.join(dir, "registries.conf"),
    REGISTRY_AUTH_FILE: path.join(dir, "auth.json"),
    ...extra,
  };
}

export async function writeContainersFiles(dir: string): Promise<void> {
  for (const sub of ["home/.config", "home/.local/share", "home/.cache", "xdg-run", "tmp", "varlib", "registries.d"]) {
    await fs.mkdir(path.join(dir, sub), { recursive: true, mode: 0o700 });
  }
  await fs.writeFile(path.join(dir, "registries.conf"), "unqualified-search-registries = []\n");
  await fs.writeFile(path.join(dir, "auth.json"), '{"auths":{}}\n', {
    mode: 0o600,
  });
  await fs.writeFile(path.join(dir, "policy.json"), '{"default":[{"type":"insecureAcceptAnything"}]}\n');
}
