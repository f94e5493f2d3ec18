import { constants } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";

/**
 * Direct I/O (O_DIRECT) for the big files airpack writes once and does not read back soon: store
 * blobs and bundles. Bytes go from our buffers to the disk without passing through the page cache,
 * so a multi-GB pack does not evict the rest of the machine's cache, and writing does not pay for
 * fresh page-cache pages (measured on the bench VM: 400 MB through the page cache 1.1 s, direct 0.21 s;
 * docs/benchmarks.md). Filesystems that refuse it (tmpfs, some FUSE) get ordinary buffered I/O.
 *
 * O_DIRECT wants the memory address, file offset and length aligned to the device's block size.
 * ALIGN covers 512-byte and 4 KiB devices; WebAssembly memories start on a page boundary, which is
 * the one way to get an aligned buffer in Node.
 */
export const ALIGN = 4096;

/** The one part of the WebAssembly global used here (tsconfig has no DOM lib, where its types live). */
interface WasmMemoryConstructor {
  new (descriptor: { initial: number; maximum?: number; shared?: boolean }): {
    readonly buffer: ArrayBuffer | SharedArrayBuffer;
  };
}
/** Looked up when used: Node run with --jitless has no WebAssembly (then there is no direct I/O). */
function wasmMemory(): WasmMemoryConstructor | undefined {
  return (globalThis as unknown as { WebAssembly?: { Memory: WasmMemoryConstructor } }).WebAssembly?.Memory;
}

/** Set AIRPACK_DIRECT_IO=0 to use the page cache for everything (e.g. to compare, or on odd filesystems). */
export function directIoWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.AIRPACK_DIRECT_IO !== "0" && constants.O_DIRECT !== undefined && wasmMemory() !== undefined;
}

/**
 * `count` buffers of `size` bytes (a multiple of ALIGN), each starting on an ALIGN boundary.
 * `shared`: in one SharedArrayBuffer (each buffer's .buffer), so a worker thread can read them.
 */
export function alignedBuffers(size: number, count: number, shared = false): Buffer[] {
  if (size % ALIGN !== 0) throw new Error(`aligned buffer size ${size} is not a multiple of ${ALIGN}`);
  const pages = Math.ceil((size * count) / 65536);
  let memory: ArrayBuffer | SharedArrayBuffer;
  try {
    const Memory = wasmMemory();
    if (!Memory) throw new Error("no WebAssembly");
    memory = new Memory(shared ? { initial: pages, maximum: pages, shared } : { initial: pages }).buffer;
  } catch {
    // V8 reserves address space for each WebAssembly memory; under a tight `ulimit -v` that can fail.
    // Unaligned buffers still work: a direct write or read of one fails with EINVAL, and the file
    // falls back to the page cache (FileTarget, ReadAheadStream).
    memory = shared ? new SharedArrayBuffer(size * count) : new ArrayBuffer(size * count);
  }
  return Array.from({ length: count }, (_, i) => Buffer.from(memory, i * size, size));
}

export const alignUp = (n: number): number => Math.ceil(n / ALIGN) * ALIGN;
export const alignDown = (n: number): number => Math.floor(n / ALIGN) * ALIGN;

export interface OpenedFile {
  handle: FileHandle;
  /** Whether the handle bypasses the page cache (then every access must be aligned). */
  direct: boolean;
}

/**
 * Open with O_DIRECT when wanted and the filesystem allows it, else without. EINVAL is how Linux
 * says "not on this filesystem" (tmpfs); anything else (ENOENT, EEXIST, EACCES) is a real error.
 */
export async function openMaybeDirect(path: string, flags: number, mode: number, direct: boolean): Promise<OpenedFile> {
  if (direct) {
    try {
      return { handle: await open(path, flags | constants.O_DIRECT, mode), direct: true };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EINVAL") throw err;
    }
  }
  return { handle: await open(path, flags, mode), direct: false };
}
