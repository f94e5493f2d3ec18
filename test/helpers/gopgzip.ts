/**
 * The reference encoder for the pgzip tests: test/helpers/gopgzip/main.go, which gzips stdin
 * with github.com/klauspost/pgzip exactly as containers/image does. It is built once per test
 * process (GOPATH mode, against Debian's golang-github-klauspost-pgzip-dev and
 * golang-github-klauspost-compress-dev sources under /usr/share/gocode).
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "./cli";

const GOCODE = "/usr/share/gocode";
const PGZIP_SRC = join(GOCODE, "src", "github.com", "klauspost", "pgzip");

let binary: string | undefined;

/** Whether Go and the Debian pgzip/compress sources are installed (the tests skip otherwise). */
export function haveGoPgzip(): boolean {
  if (!existsSync(join(PGZIP_SRC, "gzip.go"))) return false;
  try {
    execFileSync("go", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function build(): string {
  if (binary) return binary;
  const dir = mkdtempSync(join(tmpdir(), "airpack-gopgzip-"));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, "gopgzip");
  execFileSync("go", ["build", "-o", out, "./main.go"], {
    cwd: join(REPO_ROOT, "test", "helpers", "gopgzip"),
    env: {
      ...process.env,
      GO111MODULE: "off",
      GOFLAGS: "",
      GOPATH: `${GOCODE}:${join(dir, "path")}`,
      GOCACHE: join(dir, "cache"),
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  binary = out;
  return out;
}

export interface GoPgzipOptions {
  /** Size of each Write call (default 32 KiB, as io.Copy). */
  chunk?: number;
  /** Call SetConcurrency(blockSize, 4) first (default: pgzip's 1 MiB). */
  blockSize?: number;
}

/** The complete gzip stream Go's pgzip writes for `input`. */
export function goPgzip(input: Uint8Array, level: number, o: GoPgzipOptions = {}): Buffer {
  const args = [String(level), String(o.chunk ?? 0), String(o.blockSize ?? 0)];
  return execFileSync(build(), args, { input, maxBuffer: 1 << 30 });
}

/** Just the deflate body: the stream minus pgzip's 10-byte header and 8-byte trailer. */
export function goPgzipBody(input: Uint8Array, level: number, o: GoPgzipOptions = {}): Buffer {
  const gz = goPgzip(input, level, o);
  return gz.subarray(10, gz.length - 8);
}
