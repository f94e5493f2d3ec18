import { createHash, type Hash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";

/** A validated "sha256:<64 hex>" string. */
export type Digest = string & { readonly __digest: unique symbol };

const digestPattern = /^sha256:[a-f0-9]{64}$/;

export function isDigest(value: unknown): value is Digest {
  return typeof value === "string" && digestPattern.test(value);
}

export function parseDigest(value: unknown, errorLabel = "digest"): Digest {
  if (!isDigest(value)) {
    const shown = typeof value === "string" ? JSON.stringify(value.slice(0, 80)) : typeof value;
    throw new Error(`${errorLabel}: invalid digest ${shown} (airpack supports sha256 only)`);
  }
  return value;
}

export function digestHex(digest: Digest): string {
  return digest.slice("sha256:".length);
}

export function shortDigest(digest: string): string {
  return digest.slice(0, "sha256:".length + 12);
}

export function sha256(data: Uint8Array | string): Digest {
  return ("sha256:" + createHash("sha256").update(data).digest("hex")) as Digest;
}

export class DigestMismatchError extends Error {
  constructor(
    readonly errorLabel: string,
    readonly expected: { digest: string; size: number },
    readonly actual: { digest: string; size: number },
  ) {
    const detail =
      actual.size !== expected.size
        ? `size mismatch (expected ${expected.size} bytes, got ${actual.size})`
        : `digest mismatch (got ${shortDigest(actual.digest)}…)`;
    super(`${errorLabel}: ${detail}`);
  }
}

/**
 * Pass-through stream that hashes and counts. With an expectation it fails the
 * stream as soon as too many bytes arrive, and at the end if digest or size differ.
 */
export class DigestStream extends Transform {
  private readonly hash: Hash = createHash("sha256");
  private count = 0;
  private result?: { digest: Digest; size: number };

  constructor(
    /** `maxSize`: fail at the first byte past it (a bound, where `size` is the exact size). */
    private readonly expected?: { digest: string; size?: number; maxSize?: number },
    private readonly errorLabel = "blob",
  ) {
    super();
  }

  get size(): number {
    return this.count;
  }

  /** Digest and size of everything that passed; available after 'finish'. */
  get digest(): { digest: Digest; size: number } {
    if (!this.result) throw new Error("DigestStream: digest read before the stream ended");
    return this.result;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.count += chunk.length;
    const want = this.expected;
    if (want?.size !== undefined && this.count > want.size) {
      callback(
        new DigestMismatchError(
          this.errorLabel,
          { digest: want.digest, size: want.size },
          { digest: "sha256:?", size: this.count },
        ),
      );
      return;
    }
    if (want?.maxSize !== undefined && this.count > want.maxSize) {
      callback(new Error(`${this.errorLabel}: more than ${want.maxSize} bytes (the limit for it)`));
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.result = { digest: ("sha256:" + this.hash.digest("hex")) as Digest, size: this.count };
    const want = this.expected;
    if (want && (want.digest !== this.result.digest || (want.size !== undefined && want.size !== this.result.size))) {
      callback(
        new DigestMismatchError(
          this.errorLabel,
          { digest: want.digest, size: want.size ?? this.result.size },
          this.result,
        ),
      );
      return;
    }
    callback();
  }
}
