/**
 * The reference encoder for the goflate tests: fixtures/gogzip/main.go (Go's compress/gzip at a
 * given level, ModTime zero), built once per test process into a temporary directory, plus a
 * small companion program (written next to it) that exercises Flush and the optional header
 * fields, which main.go does not.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "./cli";

/** Go source of the companion: gzip with header fields from argv and a Flush after every chunk. */
const FLUSHER_SRC = `package main

import (
	"bufio"
	"compress/gzip"
	"io"
	"os"
	"strconv"
	"time"
)

// usage: flusher LEVEL CHUNK FLUSH(0|1) MTIME NAME COMMENT EXTRAHEX(-=none)
func main() {
	level, _ := strconv.Atoi(os.Args[1])
	chunk, _ := strconv.Atoi(os.Args[2])
	flush := os.Args[3] == "1"
	mtime, _ := strconv.ParseInt(os.Args[4], 10, 64)
	out := bufio.NewWriter(os.Stdout)
	zw, err := gzip.NewWriterLevel(out, level)
	if err != nil {
		panic(err)
	}
	zw.Header.ModTime = time.Time{}
	if mtime != 0 {
		zw.Header.ModTime = time.Unix(mtime, 0)
	}
	zw.Header.Name = os.Args[5]
	zw.Header.Comment = os.Args[6]
	if os.Args[7] != "-" {
		zw.Header.Extra = []byte{}
		for i := 0; i+1 < len(os.Args[7]); i += 2 {
			v, _ := strconv.ParseUint(os.Args[7][i:i+2], 16, 8)
			zw.Header.Extra = append(zw.Header.Extra, byte(v))
		}
	}
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		panic(err)
	}
	for len(data) > 0 {
		n := chunk
		if n > len(data) {
			n = len(data)
		}
		if _, err := zw.Write(data[:n]); err != nil {
			panic(err)
		}
		data = data[n:]
		if flush {
			if err := zw.Flush(); err != nil {
				panic(err)
			}
		}
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	if err := out.Flush(); err != nil {
		panic(err)
	}
}
`;

interface Built {
  gogzip: string;
  flusher: string;
}

let built: Built | null | undefined;
let workDir: string | undefined;

/** Whether the Go toolchain is present (the tests skip without it). */
export function haveGo(): boolean {
  try {
    execFileSync("go", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function build(): Built {
  if (built) return built;
  workDir = mkdtempSync(join(tmpdir(), "airpack-gogzip-"));
  process.once("exit", () => {
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });
  const env = {
    ...process.env,
    GO111MODULE: "off",
    GOFLAGS: "",
    GOPATH: join(workDir, "path"),
    GOCACHE: join(workDir, "cache"),
  };
  const gogzip = join(workDir, "gogzip");
  execFileSync("go", ["build", "-o", gogzip, "./main.go"], {
    cwd: join(REPO_ROOT, "fixtures", "gogzip"),
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  const flusherDir = join(workDir, "flusher");
  mkdirSync(flusherDir);
  writeFileSync(join(flusherDir, "main.go"), FLUSHER_SRC);
  const flusher = join(workDir, "flusher-bin");
  execFileSync("go", ["build", "-o", flusher, "./main.go"], {
    cwd: flusherDir,
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  built = { gogzip, flusher };
  return built;
}

/** Go's gzip output for `input` at `level` (fixtures/gogzip). */
export function goGzip(input: Uint8Array, level: number): Buffer {
  return execFileSync(build().gogzip, [String(level)], { input, maxBuffer: 1 << 30 });
}

export interface GoFlushOptions {
  level: number;
  /** Size of each Write call. */
  chunk: number;
  /** Call Flush after every Write. */
  flush: boolean;
  mtime?: number;
  name?: string;
  comment?: string;
  extra?: Uint8Array;
}

/** Go's gzip output when written in fixed-size chunks, optionally flushing after each. */
export function goGzipChunked(input: Uint8Array, o: GoFlushOptions): Buffer {
  const args = [
    String(o.level),
    String(o.chunk),
    o.flush ? "1" : "0",
    String(o.mtime ?? 0),
    o.name ?? "",
    o.comment ?? "",
    o.extra === undefined ? "-" : Buffer.from(o.extra).toString("hex"),
  ];
  return execFileSync(build().flusher, args, { input, maxBuffer: 1 << 30 });
}
