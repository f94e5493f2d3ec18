import { DigestStream, shortDigest, type Digest } from "../oci/digest";
import type { UncompressedLimit } from "../transports/types";

/**
 * A pass-through that checks a layer's uncompressed bytes against the config's diff_id. Every
 * decompression of a layer goes through one: conversions, --verify-diff-ids, verify --deep and recipe
 * searches. With a limit (untrusted sources) it fails at the first byte past it.
 */
export function diffIdCheck(diffId: Digest, label: string, limit?: UncompressedLimit): DigestStream {
  return new DigestStream(
    { digest: diffId, ...(limit ? (limit.exact ? { size: limit.size } : { maxSize: limit.size }) : {}) },
    `${label}: uncompressed content does not match the config's diff_id ${shortDigest(diffId)}…`,
  );
}
