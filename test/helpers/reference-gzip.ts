/**
 * Real gzip encoders used as references in tests: Python's gzip/zlib (vanilla zlib), GNU gzip,
 * pigz. Expected bytes always come from these programs, never from airpack.
 */
import { execFileSync } from "node:child_process";

const PYTHON_GZIP = `
import sys, zlib, struct
level, mtime, flush_at = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
data = sys.stdin.buffer.read()
c = zlib.compressobj(level, zlib.DEFLATED, -15, 8, 0)
if flush_at > 0:
    body = c.compress(data[:flush_at]) + c.flush(zlib.Z_FULL_FLUSH) + c.compress(data[flush_at:]) + c.flush()
else:
    body = c.compress(data) + c.flush()
xfl = 2 if level == 9 else (4 if level == 1 else 0)
header = b"\\x1f\\x8b\\x08\\x00" + struct.pack("<I", mtime) + bytes([xfl, 255])
sys.stdout.buffer.write(header + body + struct.pack("<II", zlib.crc32(data) & 0xffffffff, len(data) & 0xffffffff))
`;

/** Python's zlib (as gzip.compress writes it). `flushAt` > 0 inserts a full flush: valid gzip no plain encoder writes. */
export function pythonGzip(data: Buffer, level: number, mtime = 0, flushAt = 0): Buffer {
  return execFileSync("python3", ["-c", PYTHON_GZIP, String(level), String(mtime), String(flushAt)], {
    input: data,
    maxBuffer: 1 << 30,
  });
}

export function gnuGzip(data: Buffer, level: number): Buffer {
  return execFileSync("gzip", ["-n", `-${level}`, "-c"], { input: data, maxBuffer: 1 << 30 });
}

/** pigz with its default thread count, or `-p threads`. */
export function pigz(data: Buffer, level: number, threads?: number): Buffer {
  const p = threads ? ["-p", String(threads)] : [];
  return execFileSync("pigz", ["-n", `-${level}`, ...p, "-c"], { input: data, maxBuffer: 1 << 30 });
}
