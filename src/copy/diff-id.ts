import { DigestStream, shortDigest, type Digest } from "../oci/digest";

/**
 * A pass-through that checks a layer's uncompressed bytes against the config's diff_id. Every
 * decompression of a layer goes through one: conversions, --verify-diff-ids and recipe searches.
 */
export function diffIdCheck(diffId: Digest, label: string): DigestStream {
  return new DigestStream(
    { digest: diffId },
    `${label}: uncompressed content does not match the config's diff_id ${shortDigest(diffId)}…`,
  );
}
