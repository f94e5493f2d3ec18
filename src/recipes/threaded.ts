import { join } from "node:path";
import { Transform, type TransformCallback } from "node:stream";
import { Worker } from "node:worker_threads";
import type { GzipOriginal } from "./identify";
import type { GzipRecipe } from "./format";
import type { FromWorker, ToWorker, WorkerJob } from "./worker";

/** Chunks in flight to the worker before the stream waits (bounded memory). */
const WINDOW = 4;

/**
 * A Transform whose work happens in a worker thread: chunks go in with backpressure, the worker's
 * output comes out in order, and `recipe` holds what an identify job found.
 */
class WorkerStream extends Transform {
  private readonly worker: Worker;
  private inFlight = 0;
  private waiting?: TransformCallback;
  private finishing?: TransformCallback;
  recipe?: GzipRecipe;

  constructor(job: WorkerJob) {
    super({ readableHighWaterMark: 1 << 20, writableHighWaterMark: 1 << 20 });
    this.worker = new Worker(join(__dirname, "worker.js"), { workerData: job });
    this.worker.on("message", (msg: FromWorker) => this.onMessage(msg));
    this.worker.on("error", (err) => this.destroy(err));
    this.worker.on("exit", (code) => {
      if (code !== 0 && !this.destroyed && this.finishing === undefined && !this.writableFinished) {
        this.destroy(new Error(`recipe worker exited with ${code}`));
      }
    });
  }

  private onMessage(msg: FromWorker): void {
    switch (msg.type) {
      case "out":
        this.push(Buffer.from(msg.chunk.buffer, msg.chunk.byteOffset, msg.chunk.byteLength));
        break;
      case "ack": {
        this.inFlight--;
        const cb = this.waiting;
        this.waiting = undefined;
        cb?.();
        break;
      }
      case "done": {
        if (msg.recipe) this.recipe = msg.recipe;
        const cb = this.finishing;
        this.finishing = undefined;
        void this.worker.terminate();
        cb?.();
        break;
      }
      case "error":
        this.destroy(new Error(msg.message));
        break;
    }
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const copy = new Uint8Array(chunk);
    this.worker.postMessage({ type: "data", chunk: copy } satisfies ToWorker, [copy.buffer]);
    this.inFlight++;
    if (this.inFlight < WINDOW) cb();
    else this.waiting = cb;
  }

  override _flush(cb: TransformCallback): void {
    this.finishing = cb;
    this.worker.postMessage({ type: "end" } satisfies ToWorker);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    void this.worker.terminate();
    cb(err);
  }
}

/** regenerateGzip in a worker thread: uncompressed tar in, the original gzip blob out. */
export function regenerateGzipThreaded(recipe: GzipRecipe): Transform {
  return new WorkerStream({ kind: "regenerate", recipe });
}

/** GzipIdentifier in a worker thread: write the uncompressed tar in; `.recipe` is set when it finishes. */
export function identifyGzipThreaded(file: string, original: GzipOriginal): WorkerStream {
  return new WorkerStream({ kind: "identify", file, original });
}
