import { createHash } from "node:crypto";
import { join } from "node:path";
import { Worker } from "node:worker_threads";

export type ToHashThread =
  | { type: "memory"; memoryId: number; memory: SharedArrayBuffer }
  | { type: "open"; id: number }
  | { type: "update"; id: number; seq: number; memoryId: number; offset: number; length: number }
  | { type: "digest"; id: number; seq: number }
  | { type: "drop"; id: number };

export type FromHashThread =
  | { type: "updated"; id: number; seq: number }
  | { type: "digest"; id: number; seq: number; hex: string }
  | { type: "error"; id: number; seq: number; message: string };

/**
 * sha256 on a second core. A download's bytes are copied once, into aligned blocks in shared
 * memory (file-writer.ts); the thread hashes each block while the disk writes it, so the main
 * thread only reads the socket and copies (measured: hashing was a fifth of a cold pack's wall time).
 * One thread serves all streams; blocks of one stream are hashed in the order they were sent.
 */
export class HashThread implements Hasher {
  private worker: Worker | undefined;
  private nextId = 1;
  private nextSeq = 1;
  /** Shared memories the thread knows, by the id it knows them by. */
  private memories = new WeakMap<SharedArrayBuffer, number>();
  private readonly replies = new Map<
    number,
    { resolve: (msg: FromHashThread) => void; reject: (err: Error) => void }
  >();

  private ensureThread(): Worker {
    if (!this.worker) {
      const worker = new Worker(join(__dirname, "hash-thread-main.js"));
      worker.on("message", (msg: FromHashThread) => {
        const waiter = this.replies.get(msg.seq);
        this.replies.delete(msg.seq);
        if (this.replies.size === 0) worker.unref();
        if (msg.type === "error") waiter?.reject(new Error(`hash thread: ${msg.message}`));
        else waiter?.resolve(msg);
      });
      // A thread that died takes its streams and memories with it: those streams fail, and the
      // next stream starts a new thread that learns its memories afresh.
      const gone = (err: Error): void => {
        if (this.worker !== worker) return;
        this.worker = undefined;
        this.memories = new WeakMap();
        this.failAll(err);
      };
      worker.on("error", gone);
      worker.on("exit", (code) => gone(new Error(`hash thread exited (code ${code})`)));
      worker.unref();
      this.worker = worker;
    }
    return this.worker;
  }

  /** Start the thread ahead of its first use. */
  start(): void {
    this.ensureThread();
  }

  private failAll(err: Error): void {
    for (const waiter of this.replies.values()) waiter.reject(err);
    this.replies.clear();
  }

  /** Ask and wait for the reply; the thread keeps the process alive only while an answer is due. */
  private request(msg: ToHashThread & { seq: number }): Promise<FromHashThread> {
    const thread = this.ensureThread();
    return new Promise((resolve, reject) => {
      this.replies.set(msg.seq, { resolve, reject });
      thread.ref();
      thread.postMessage(msg);
    });
  }

  private memoryId(memory: SharedArrayBuffer): number {
    let memoryId = this.memories.get(memory);
    if (memoryId === undefined) {
      memoryId = this.nextId++;
      this.memories.set(memory, memoryId);
      this.ensureThread().postMessage({ type: "memory", memoryId, memory } satisfies ToHashThread);
    }
    return memoryId;
  }

  /** A new stream; its blocks must live in shared memory. */
  open(): ThreadHash {
    const id = this.nextId++;
    this.ensureThread().postMessage({ type: "open", id } satisfies ToHashThread);
    return {
      update: async (block, length) => {
        if (!(block.buffer instanceof SharedArrayBuffer)) throw new Error("hash thread: block not in shared memory");
        const memoryId = this.memoryId(block.buffer);
        await this.request({ type: "update", id, seq: this.nextSeq++, memoryId, offset: block.byteOffset, length });
      },
      digest: async () => {
        const reply = await this.request({ type: "digest", id, seq: this.nextSeq++ });
        return reply.type === "digest" ? reply.hex : "";
      },
      drop: () => this.worker?.postMessage({ type: "drop", id } satisfies ToHashThread),
    };
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }
}

/** Where a block writer's sha256 runs (see BlockWriterOptions.hashThread). */
export interface Hasher {
  open(): ThreadHash;
}

/**
 * sha256 on the calling thread, for blobs too small to be worth a trip to the hash thread (and
 * that should not wait for it to start): each update hashes the block at once.
 */
export const inlineHasher: Hasher = {
  open(): ThreadHash {
    const hash = createHash("sha256");
    return {
      update: (block, length) => {
        hash.update(block.subarray(0, length));
        return Promise.resolve();
      },
      digest: () => Promise.resolve(hash.digest("hex")),
      drop: () => undefined,
    };
  },
};

/** One stream's running sha256 in the hash thread. */
export interface ThreadHash {
  /** Hash the first `length` bytes of `block` (shared memory; it must not change until this resolves). */
  update(block: Buffer, length: number): Promise<void>;
  /** The hex sha256 of everything updated so far; ends the stream. */
  digest(): Promise<string>;
  /** Forget the stream (after an error). */
  drop(): void;
}
