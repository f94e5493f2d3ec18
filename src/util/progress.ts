import { Transform, type Readable, type TransformCallback } from "node:stream";

export type ProgressEvent =
  | { type: "start"; id: string; label: string; total?: number }
  | { type: "advance"; id: string; bytes: number }
  | { type: "done"; id: string };

export type ProgressListener = (event: ProgressEvent) => void;

/** A transfer's progress events, for code that sees its bytes without a stream in between. */
export function progressCounter(
  id: string,
  label: string,
  total: number | undefined,
  listener: ProgressListener,
): { advance: (bytes: number) => void; done: () => void } {
  listener({ type: "start", id, label, ...(total !== undefined ? { total } : {}) });
  return {
    advance: (bytes) => listener({ type: "advance", id, bytes }),
    done: () => listener({ type: "done", id }),
  };
}

/** Pass-through that reports bytes as they flow. */
export function meter(id: string, label: string, total: number | undefined, listener?: ProgressListener): Transform {
  const counter = listener ? progressCounter(id, label, total, listener) : undefined;
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      counter?.advance(chunk.length);
      cb(null, chunk);
    },
    flush(cb: TransformCallback) {
      counter?.done();
      cb();
    },
  });
}

/** A stream's bytes counted as they pass (a no-op without a listener); errors carry over. */
export function metered(
  data: Readable,
  id: string,
  label: string,
  total: number | undefined,
  onProgress: ProgressListener | undefined,
): Readable {
  if (!onProgress) return data;
  const counted = data.pipe(meter(id, label, total, onProgress));
  data.on("error", (err) => counted.destroy(err));
  return counted;
}
