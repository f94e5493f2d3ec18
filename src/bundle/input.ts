import { createReadStream } from "node:fs";
import { PassThrough, type Readable } from "node:stream";
import { decompressStream } from "../compression/codecs";
import { looksLikeTar, sniffCompression, type StreamFormat } from "../compression/sniff";
import { fileErrorReason } from "../util/errors";
import { openParts } from "./parts";

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
 * Decompress a bundle stream, detecting xz, zstd, gzip or plain tar by magic bytes.
 * Returns the tar stream and the detected format.
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
    const pass = new PassThrough({ highWaterMark: 1 << 20 });
    input.on("error", (err) => pass.destroy(err));
    return { tar: input.pipe(pass), format };
  }
  const decoder = decompressStream(format, errorLabel);
  input.on("error", (err) => decoder.destroy(err));
  const tar = input.pipe(decoder) as Readable;
  return { tar, format };
}
