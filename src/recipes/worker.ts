/**
 * Worker thread body. CPU-heavy recipe work runs here, beside the main thread's tar parsing,
 * hashing and I/O, and several layers can use several cores:
 * - "regenerate": uncompressed chunks in, the original gzip blob out;
 * - "identify": uncompressed chunks in, the matching recipe (if any) out.
 */
import { parentPort, workerData } from "node:worker_threads";
import { candidateById, allCandidates } from "./encoders";
import { crc32 } from "../compression/goflate";
import { gzipTrailer } from "./gzip-header";
import { GzipIdentifier, type GzipRecipe } from "./identify";

export type WorkerJob =
  | { kind: "regenerate"; recipe: GzipRecipe }
  | { kind: "identify"; file: string; original: { digest: string; size: number } };
export type ToWorker = { type: "data"; chunk: Uint8Array } | { type: "end" };
export type FromWorker =
  | { type: "out"; chunk: Uint8Array }
  | { type: "ack" }
  | { type: "done"; recipe?: GzipRecipe }
  | { type: "error"; message: string };

type Handler = { data(chunk: Uint8Array): void; end(): void };

function regenerate(recipe: GzipRecipe, send: (msg: FromWorker, transfer?: ArrayBuffer[]) => void): Handler {
  const candidate = candidateById(recipe.encoder);
  if (!candidate) throw new Error(`recipe needs encoder "${recipe.encoder}", which this airpack does not have`);
  const emit = (out: Uint8Array): void => {
    const copy = new Uint8Array(out);
    send({ type: "out", chunk: copy }, [copy.buffer]);
  };
  let crc = 0;
  let size = 0;
  const encoder = candidate.create(emit);
  emit(Buffer.from(recipe.header, "base64"));
  return {
    data(chunk) {
      crc = crc32(chunk, crc);
      size += chunk.length;
      encoder.write(chunk);
    },
    end() {
      encoder.end();
      emit(gzipTrailer(crc, size));
      send({ type: "done" });
    },
  };
}

function identify(job: Extract<WorkerJob, { kind: "identify" }>, send: (msg: FromWorker) => void): Handler {
  const identifier = new GzipIdentifier(job.file, job.original, allCandidates());
  identifier.on("error", (err) => send({ type: "error", message: err.message }));
  return {
    data(chunk) {
      identifier.write(chunk);
    },
    end() {
      identifier.end(() => {
        const recipe = identifier.result();
        send(recipe ? { type: "done", recipe } : { type: "done" });
      });
    },
  };
}

const port = parentPort;
if (port) {
  const send = (msg: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(msg, transfer);
  try {
    const job = workerData as WorkerJob;
    const handler = job.kind === "regenerate" ? regenerate(job.recipe, send) : identify(job, send);
    port.on("message", (msg: ToWorker) => {
      try {
        if (msg.type === "data") {
          handler.data(msg.chunk);
          send({ type: "ack" });
        } else handler.end();
      } catch (err) {
        send({ type: "error", message: (err as Error).message });
      }
    });
  } catch (err) {
    send({ type: "error", message: (err as Error).message });
  }
}
