import type { Readable } from "node:stream";
import { DigestStream } from "../oci/digest";
import type { Descriptor } from "../oci/descriptor";

/** Wrap a raw stream so it errors at the end (or early, on overflow) if it doesn't match `desc`. */
export function verifiedStream(
  raw: Readable,
  desc: Pick<Descriptor, "digest" | "size">,
  errorLabel: string,
  signal?: AbortSignal,
): Readable {
  const check = new DigestStream({ digest: desc.digest, size: desc.size }, errorLabel);
  raw.on("error", (err) => check.destroy(err));
  if (signal) {
    const onAbort = (): void => {
      // The stream may not be piped anywhere yet: its consumer finds the error on it later.
      check.on("error", () => undefined);
      raw.destroy();
      check.destroy(new Error(`${errorLabel}: cancelled`));
    };
    if (signal.aborted) {
      queueMicrotask(onAbort);
    } else {
      signal.addEventListener("abort", onAbort, { once: true });
      check.on("close", () => signal.removeEventListener("abort", onAbort));
    }
  }
  return raw.pipe(check);
}
