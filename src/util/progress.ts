import { Transform, type TransformCallback } from "node:stream";

export type ProgressEvent =
  | { type: "start"; id: string; label: string; total?: number }
  | { type: "advance"; id: string; bytes: number }
  | { type: "done"; id: string };

export type ProgressListener = (event: ProgressEvent) => void;

/** Pass-through that reports bytes as they flow. */
export function meter(id: string, label: string, total: number | undefined, listener?: ProgressListener): Transform {
  listener?.({ type: "start", id, label, ...(total !== undefined ? { total } : {}) });
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      listener?.({ type: "advance", id, bytes: chunk.length });
      cb(null, chunk);
    },
    flush(cb: TransformCallback) {
      listener?.({ type: "done", id });
      cb();
    },
  });
}
