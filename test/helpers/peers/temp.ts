/**
 * Temp dirs and ports for the e2e peers: makeTempDir, removeDir (which first
 * lazily unmounts what a peer left mounted below the dir) and freePort.
 */
import * as fs from "node:fs/promises";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

import { isRoot, run } from "./process";

/** A fresh directory under os.tmpdir(); the caller removes it (see removeDir). */
export async function makeTempDir(prefix: string): Promise<string> {
  const safe = prefix.replace(/[^\w.-]/g, "-");
  return fs.mkdtemp(path.join(os.tmpdir(), safe.endsWith("-") ? safe : `${safe}-`));
}

function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Mount points at or below `dir` (deepest first), read from /proc/self/mountinfo. */
export async function mountsUnder(dir: string): Promise<string[]> {
  let info: string;
  try {
    info = await fs.readFile("/proc/self/mountinfo", "utf8");
  } catch {
    return [];
  }
  const root = path.resolve(dir);
  const found: string[] = [];
  for (const line of info.split("\n")) {
    const fields = line.split(" ");
    if (fields.length < 5) continue;
    const mp = unescapeMountPath(fields[4] ?? "");
    if (mp === root || mp.startsWith(`${root}/`)) found.push(mp);
  }
  return found.sort((a, b) => b.length - a.length);
}

/** rm -rf that first lazily unmounts anything left mounted below `dir`. Never throws for a missing dir. */
export async function removeDir(dir: string): Promise<void> {
  if (isRoot()) {
    for (const mp of await mountsUnder(dir)) {
      await run("umount", ["-l", mp], { timeoutMs: 10_000 }).catch(() => undefined);
    }
  }
  await fs.rm(dir, {
    recursive: true,
    force: true,
    maxRetries: 3,
    retryDelay: 100,
  });
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      if (addr === null || typeof addr === "string") {
        srv.close();
        reject(new Error("could not get a free port"));
        return;
      }
      const port = addr.port;
      srv.close(() => resolve(port));
    });
  });
}
