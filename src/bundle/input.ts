import { createReadStream } from "node:fs";
import { PassThrough, type Duplex, type Readable } from "node:stream";
import { decompressStream } from "../compression/codecs";
import { looksLikeTar, sniffCompression, type StreamFormat } from "../compression/sniff";
import { fileErrorReason } from "../util/errors";
import { openParts } from "./parts";
import { TarGuard } from "./tar-guard";

/** Read at least `n` bytes (or to EOF) from a stream without losing them. */
async function peek(stream: Readable, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let have = 0;
  for (;;) {
    const chunk = stream.read() as Buffer | null;
    if (chunk !== null) {
      chunks.push(chunk);
      have += chunk.length;
      if (have >= n) break;
      continue;
    }
    if (stream.readableEnded) break;
    const ended = await new Promise<boolean>((resolve, reject) => {
      const cleanup = (): void => {
        stream.off("readable", onReadable);
        stream.off("end", onEnd);
        stream.off("error", onError);
      };
      const onReadable = (): void => {
        cleanup();
        resolve(false);
      };
      const onEnd = (): void => {
        cleanup();
        resolve(true);
      };
      const onError = (err: Error): void => {
        cleanup();
        reject(err);
      };
      stream.on("readable", onReadable);
      stream.on("end", onEnd);
      stream.on("error", onError);
    });
    if (ended) break;
  }
  const head = Buffer.concat(chunks);
  if (head.length > 0) stream.unshift(head);
  return head;
}

export function openInput(path: string): Readable {
  if (path === "-") return process.stdin;
  // A split bundle (NAME.001 or NAME.parts.json): its parts as one stream, each checked as it is read.
  const parts = openParts(path);
  if (parts) return parts;
  return createReadStream(path, { highWaterMark: 1 << 20 });
}

/**
 * Decompress a bundle stream, detecting xz, zstd, gzip or plain tar by magic bytes, and check its
 * tar framing (TarGuard). Returns the tar stream and the detected format.
 */
export async function openTarStream(
  input: Readable,
  errorLabel: string,
): Promise<{ tar: Readable; format: StreamFormat }> {
  let head: Buffer;
  try {
    head = await peek(input, 512);
  } catch (err) {
    throw new Error(`${errorLabel}: cannot read (${fileErrorReason(err)})`, { cause: err });
  }
  if (head.length === 0) throw new Error(`${errorLabel}: empty input (expected a bundle)`);
  const format = sniffCompression(head);
  if (format === "none") {
    if (!looksLikeTar(head))
      throw new Error(`${errorLabel}: not a bundle (neither a tar nor xz/zstd/gzip-compressed data)`);
    return { tar: guarded(input, new PassThrough({ highWaterMark: 1 << 20 }), errorLabel), format };
  }
  return { tar: guarded(input, decompressStream(format, errorLabel), errorLabel), format };
}

/** input → decoder → TarGuard, errors passed down; when the guard is done with, so is the decoder. */
function guarded(input: Readable, decoder: Duplex, errorLabel: string): Readable {
  const guard = new TarGuard(errorLabel);
  input.on("error", (err) => decoder.destroy(err));
  decoder.on("error", (err) => guard.destroy(err));
  guard.once("close", () => {
    decoder.destroy();
    input.unpipe(decoder);
  });
  input.pipe(decoder).pipe(guard);
  return guard;
}
