import { constants } from "node:fs";
import { rm } from "node:fs/promises";
import type { Digest } from "../oci/digest";
import { alignedBuffers, alignUp } from "../util/direct-io";
import { FileTarget, type FileSpot } from "../util/file-writer";
import { END_OF_ARCHIVE, TAR_BLOCK, tarEntrySpan, tarHeader } from "./tar-header";
import { newParentDirs } from "./tar-writer";
import type { BundleEntry } from "./writer";

/** Where a run of small entries (headers, JSON, configs) goes: bytes already laid out. */
interface Run {
  position: number;
  parts: Buffer[];
}

/**
 * A bundle tar written at known offsets instead of front to back: once the plan is known every
 * entry's place is, so each layer can be written as its bytes arrive (a download goes to the store
 * and its place in the bundle at once) and layers go in side by side. The bytes are the same as
 * the streamed writer's (layoutTar): same entries, same headers (tar-header.ts), same order.
 */
export class PositionalTar {
  private readonly layerAt = new Map<Digest, { position: number; size: number }>();
  private readonly runs: Run[] = [];
  readonly size: number;

  private constructor(
    private readonly target: FileTarget,
    entries: BundleEntry[],
    mtime: Date,
  ) {
    const dirs = new Set<string>();
    let position = 0;
    let run: Run = { position: 0, parts: [] };
    const add = (bytes: Buffer): void => {
      run.parts.push(bytes);
      position += bytes.length;
    };
    for (const entry of entries) {
      for (const dir of newParentDirs(entry.path, dirs))
        add(tarHeader({ name: dir, type: "directory", size: 0, mode: 0o755, mtime }));
      const size = entry.layer ? entry.layer.size : entry.bytes.length;
      add(tarHeader({ name: entry.path, type: "file", size, mode: 0o644, mtime }));
      if (entry.layer) {
        this.runs.push(run);
        if (!this.layerAt.has(entry.layer.digest)) this.layerAt.set(entry.layer.digest, { position, size });
        position += tarEntrySpan(size) - TAR_BLOCK;
        run = { position, parts: [] };
      } else {
        add(Buffer.from(entry.bytes));
        const pad = tarEntrySpan(size) - TAR_BLOCK - size;
        if (pad > 0) add(Buffer.alloc(pad));
      }
    }
    add(Buffer.alloc(END_OF_ARCHIVE));
    this.runs.push(run);
    this.size = position;
  }

  /** Create `path` (it must not exist), sized to the whole archive. */
  static async create(path: string, entries: BundleEntry[], mtime: Date, direct: boolean): Promise<PositionalTar> {
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;
    const target = await FileTarget.open(path, flags, 0o644, direct);
    try {
      const tar = new PositionalTar(target, entries, mtime);
      // Sized up front: the layers' writes then land inside the file instead of each extending it.
      await target.truncate(tar.size);
      return tar;
    } catch (err) {
      await target.close();
      await rm(path, { force: true });
      throw err;
    }
  }

  /** Write everything but the layers' data: headers, small entries, the end of the archive. */
  async writeFrame(): Promise<void> {
    const runs = this.runs.map((run) => ({ position: run.position, bytes: Buffer.concat(run.parts) }));
    // Direct I/O needs an aligned buffer, not just an aligned offset and length: one, reused.
    const [aligned] = alignedBuffers(alignUp(Math.max(...runs.map((r) => r.bytes.length))), 1);
    for (const { position, bytes } of runs) {
      if (bytes.length === 0) continue;
      bytes.copy(aligned!);
      await this.target.write(aligned!, bytes.length, position);
    }
  }

  /** The stretches writeFrame() writes: [start, end) of each run of headers and small entries. */
  frameRanges(): [number, number][] {
    return this.runs.map((run) => [run.position, run.position + run.parts.reduce((n, b) => n + b.length, 0)]);
  }

  /** The stretch layer `digest`'s data fills, with its padding to the next tar block: [start, end). */
  layerRange(digest: Digest): [number, number] {
    const place = this.layerAt.get(digest);
    if (!place) return [0, 0];
    return [place.position, place.position + tarEntrySpan(place.size) - TAR_BLOCK];
  }

  /** Where the data of layer `digest` goes (for a download that writes it there as well). */
  spot(digest: Digest, errorLabel: string, onBytes?: (bytes: number) => void): FileSpot {
    const place = this.layerAt.get(digest);
    if (!place) throw new Error(`${errorLabel}: not in the bundle's plan`);
    return { target: this.target, start: place.position, ...(onBytes ? { onBytes } : {}) };
  }

  /** Wait until everything written is on the disk (before the file is renamed into place). */
  sync(): Promise<void> {
    return this.target.sync();
  }

  close(): Promise<void> {
    return this.target.close();
  }
}
