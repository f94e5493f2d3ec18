import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { gzipSync } from "node:zlib";
import { looksLikeTar, sniffCompression } from "../../src/compression/sniff";

/** Compress with the real command-line tools, so the magic bytes come from outside airpack. */
function tool(cmd: string, args: string[], input: Buffer): Buffer {
  return execFileSync(cmd, args, { input });
}

describe("magic-byte sniffing", () => {
  const text = Buffer.from("airpack ".repeat(4096));
  it("recognises xz, zstd and gzip made by the real tools", () => {
    assert.equal(sniffCompression(tool("xz", ["-c"], text)), "xz");
    assert.equal(sniffCompression(tool("zstd", ["-c", "-q"], text)), "zstd");
    assert.equal(sniffCompression(tool("gzip", ["-c"], text)), "gzip");
    assert.equal(sniffCompression(gzipSync(text)), "gzip");
    assert.equal(sniffCompression(text), "none");
    assert.equal(sniffCompression(Buffer.alloc(0)), "none");
  });

  it("recognises a tar header made by GNU tar, and not random bytes", () => {
    const tarBytes = tool("tar", ["-cf", "-", "-C", "/etc", "hostname"], Buffer.alloc(0));
    assert.equal(looksLikeTar(tarBytes.subarray(0, 512)), true);
    assert.equal(looksLikeTar(text.subarray(0, 512)), false);
    assert.equal(looksLikeTar(Buffer.alloc(100)), false);
  });
});
