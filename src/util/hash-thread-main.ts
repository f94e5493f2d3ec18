import { createHash, type Hash } from "node:crypto";
import { parentPort } from "node:worker_threads";
import type { FromHashThread, ToHashThread } from "./hash-thread";

/** The hash thread: sha256 of streams whose blocks the main thread shares with it (hash-thread.ts). */
const streams = new Map<number, Hash>();
const memories = new Map<number, SharedArrayBuffer>();
const port = parentPort!;

port.on("message", (msg: ToHashThread) => {
  let reply: FromHashThread;
  switch (msg.type) {
    case "memory":
      memories.set(msg.memoryId, msg.memory);
      return;
    case "open":
      streams.set(msg.id, createHash("sha256"));
      return;
    case "update": {
      const hash = streams.get(msg.id);
      const memory = memories.get(msg.memoryId);
      if (!hash || !memory) {
        reply = { type: "error", id: msg.id, seq: msg.seq, message: `unknown stream ${msg.id} or memory` };
        break;
      }
      hash.update(new Uint8Array(memory, msg.offset, msg.length));
      reply = { type: "updated", id: msg.id, seq: msg.seq };
      break;
    }
    case "digest": {
      const hash = streams.get(msg.id);
      streams.delete(msg.id);
      reply = hash
        ? { type: "digest", id: msg.id, seq: msg.seq, hex: hash.digest("hex") }
        : { type: "error", id: msg.id, seq: msg.seq, message: `unknown stream ${msg.id}` };
      break;
    }
    case "drop":
      streams.delete(msg.id);
      return;
  }
  port.postMessage(reply);
});
