/**
 * Worker thread body. CPU-heavy recipe work runs here, beside the main thread's tar parsing,
 * hashing and I/O, and several layers can use several cores:
 * - "regenerate": uncompressed chunks in, the original gzip blob out;
 * - "identify": uncompressed chunks in, the matching recipe (if any) out.
 */
import { parentPort, workerData } from "node:worker_threads";
import { allCandidates } from "./encoders";
import { regenerateGzip } from "./regenerate";
import { GzipIdentifier, type GzipOriginal } from "./identify";
import type { GzipRecipe } from "./format";

export type WorkerJob =
  { kind: "regenerate"; recipe: GzipRecipe } | { kind: "identify"; file: string; original: GzipOriginal };
export type ToWorker = { type: "data"; chunk: Uint8Array } | { type: "end" };
export type FromWorker =
  | { type: "out"; chunk: Uint8Array }
  | { type: "ack" }
  | { type: "done"; recipe?: GzipRecipe }
  | { type: "error"; message: string };

type Handler = { data(chunk: Uint8Array): void; end(): void };

function regenerate(recipe: GzipRecipe, send: (msg: FromWorker, transfer?: ArrayBuffer[]) => void): Handler {
  const regen = regenerateGzip(recipe);
  regen.on("data", (out: Buffer) => {
    const copy = new Uint8Array(out);
    send({ type: "out", chunk: copy }, [copy.buffer]);
  });
  regen.on("end", () => send({ type: "done" }));
  regen.on("error", (err) => send({ type: "error", message: err.message }));
  return {
    data(chunk) {
      regen.write(chunk);
    },
    end() {
      regen.end();
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
