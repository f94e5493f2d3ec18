import { createHash, type Hash } from "node:crypto";
import { parentPort } from "node:worker_threads";
import type { FromHashThread, ToHashThread } from "./hash-thread";

/** The hash thread: sha256 of streams whose blocks the main thread shares with it (hash-thread.ts). */
const streams = new Map<number, { hash: Hash; memory: SharedArrayBuffer }>();
const port = parentPort!;

port.on("message", (msg: ToHashThread) => {
  let reply: FromHashThread;
  switch (msg.type) {
    case "open":
      streams.set(msg.id, { hash: createHash("sha256"), memory: msg.memory });
      return;
    case "update": {
      const stream = streams.get(msg.id)!;
      stream.hash.update(new Uint8Array(stream.memory, msg.offset, msg.length));
      reply = { type: "updated", id: msg.id, seq: msg.seq };
      break;
    }
    case "digest": {
      const stream = streams.get(msg.id)!;
      streams.delete(msg.id);
      reply = { type: "digest", id: msg.id, seq: msg.seq, hex: stream.hash.digest("hex") };
      break;
    }
    case "drop":
      streams.delete(msg.id);
      return;
  }
  port.postMessage(reply);
});
