/**
 * Worker thread body: regenerates one gzip blob from uncompressed chunks sent by the main thread,
 * so the CPU-heavy deflate runs beside the main thread's tar parsing, hashing and I/O.
 */
import { parentPort, workerData } from "node:worker_threads";
import { candidateById } from "./encoders";
import { crc32 } from "../compression/goflate";
import { gzipTrailer } from "./gzip-header";
import type { GzipRecipe } from "./identify";

export type ToWorker = { type: "data"; chunk: Uint8Array } | { type: "end" };
export type FromWorker =
  { type: "out"; chunk: Uint8Array } | { type: "ack" } | { type: "done" } | { type: "error"; message: string };

const port = parentPort;
if (port) {
  const recipe = (workerData as { recipe: GzipRecipe }).recipe;
  const candidate = candidateById(recipe.encoder);
  let crc = 0;
  let size = 0;
  const send = (msg: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(msg, transfer);
  const emit = (out: Uint8Array): void => {
    const copy = new Uint8Array(out);
    send({ type: "out", chunk: copy }, [copy.buffer]);
  };
  if (!candidate) {
    send({ type: "error", message: `recipe needs encoder "${recipe.encoder}", which this airpack does not have` });
  } else {
    const encoder = candidate.create(emit);
    emit(Buffer.from(recipe.header, "base64"));
    port.on("message", (msg: ToWorker) => {
      try {
        if (msg.type === "data") {
          crc = crc32(msg.chunk, crc);
          size += msg.chunk.length;
          encoder.write(msg.chunk);
          send({ type: "ack" });
        } else {
          encoder.end();
          emit(gzipTrailer(crc, size));
          send({ type: "done" });
        }
      } catch (err) {
        send({ type: "error", message: (err as Error).message });
      }
    });
  }
}
