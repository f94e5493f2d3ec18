import { createReadStream } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import type { Descriptor } from "../oci/descriptor";
import type { StreamFormat } from "../compression/sniff";
import { blobPath } from "../transports/layout";
import type { LayoutFiles, LayoutSink } from "../transports/types";
import { makeTempDir, streamToFile, tempSibling } from "../util/atomic";
import { drain } from "../util/streams";
import { checkOutputParent, writeOutput, type OutputResult } from "./output";
import type { SplitOptions, SplitWriter } from "./split";
import { TarWriter } from "./tar-writer";
import { OCI_LAYOUT_JSON, topLevelEntries } from "./writer";

/** verify: consume and discard (the source checks every byte as it streams). */
export class NullSink implements LayoutSink {
  readonly label = "verify";
  async begin(): Promise<void> {}
  async hasBlob(): Promise<boolean> {
    return false;
  }
  async putSmall(): Promise<void> {}
  async putBlob(_desc: Descriptor, data: Readable): Promise<void> {
    await drain(data);
  }
  async tag(): Promise<void> {}
  async close(): Promise<void> {}
  async abort(): Promise<void> {}
}

/**
 * An OCI layout directory: built in a temp sibling directory and renamed into place only when
 * every blob checked out.
 */
export class LayoutDirSink implements LayoutSink {
  readonly label: string;
  private readonly tmp: string;
  private started = false;

  constructor(
    private readonly out: string,
    private readonly force: boolean,
  ) {
    this.label = `oci:${out}`;
    this.tmp = tempSibling(out);
  }

  private async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await mkdir(dirname(this.out), { recursive: true });
    await mkdir(join(this.tmp, "blobs", "sha256"), { recursive: true });
  }

  /** Refuse to replace a directory holding something else, unless --force. */
  private async checkTarget(indexJson: Uint8Array): Promise<void> {
    let entries: string[];
    try {
      entries = await readdir(this.out);
    } catch {
      return;
    }
    if (entries.length === 0 || this.force) return;
    let existing: Buffer | undefined;
    try {
      existing = await readFile(join(this.out, "index.json"));
    } catch {
      existing = undefined;
    }
    if (existing && Buffer.compare(existing, Buffer.from(indexJson)) === 0) return;
    const holds = existing ? "a different OCI layout" : "other files";
    throw new Error(
      `${this.out}: the directory already holds ${holds}; choose an empty directory or pass --force to replace it`,
    );
  }

  async begin(files: LayoutFiles): Promise<void> {
    await this.checkTarget(files.indexJson);
    await this.start();
    await writeFile(join(this.tmp, "oci-layout"), OCI_LAYOUT_JSON);
    await writeFile(join(this.tmp, "index.json"), files.indexJson);
    if (files.dockerManifest) await writeFile(join(this.tmp, "manifest.json"), files.dockerManifest);
  }

  async hasBlob(): Promise<boolean> {
    return false;
  }

  async putSmall(desc: Descriptor, bytes: Uint8Array): Promise<void> {
    await this.start();
    await writeFile(join(this.tmp, blobPath(desc)), bytes);
  }

  async putBlob(desc: Descriptor, data: Readable): Promise<void> {
    await this.start();
    await streamToFile(data, join(this.tmp, blobPath(desc)));
  }

  async tag(): Promise<void> {}

  async close(): Promise<void> {
    await this.start();
    let old: string | undefined;
    try {
      await stat(this.out);
      old = tempSibling(this.out);
      await rename(this.out, old);
    } catch {
      old = undefined;
    }
    await rename(this.tmp, this.out);
    if (old) await rm(old, { recursive: true, force: true });
  }

  async abort(): Promise<void> {
    await rm(this.tmp, { recursive: true, force: true });
  }
}

export interface ArchiveSinkOptions {
  /** Outer compression of the whole tar (bundles); "none" for oci-archive and docker-archive. */
  format?: StreamFormat;
  level?: number;
  threads?: number;
  /** Entry times (bundles use their creation time; unpacked archives the epoch). */
  mtime?: Date;
  /** Write docker's manifest.json (docker-archive and bundles). */
  dockerManifest: boolean;
  /** Write airpack.json (bundles only). */
  metadata?: boolean;
  /**
   * On stdout nothing can be taken back: spool each layer to a temp file and send it only once
   * its digest checked out. For sources whose blobs were checked before (the store) this is off.
   */
  checkBeforeStdout?: boolean;
  /** Cut the output into parts of a split bundle (split.ts). */
  split?: SplitOptions;
  signal?: AbortSignal;
}

/**
 * An OCI layout tar (oci-archive, docker-archive, a bundle) streamed in layout order to a file or
 * stdout. A file is renamed into place at close. A failure ends stdout without the end-of-archive
 * marker, so importers see a truncated archive.
 */
export class ArchiveSink implements LayoutSink {
  readonly label: string;
  private readonly tar: TarWriter;
  private readonly done: Promise<OutputResult>;
  private readonly spool: boolean;
  private spoolDir?: string;
  /** Bytes written to the output (after outer compression), once closed. */
  bytesWritten = 0;
  /** What was written (size, sha256, the parts of a split output), once closed. */
  result: OutputResult | undefined;
  /** The writer of a split output, to see where it stopped if it failed. */
  splitWriter: SplitWriter | undefined;

  constructor(
    private readonly out: string,
    private readonly opts: ArchiveSinkOptions,
  ) {
    this.label = out === "-" ? "<stdout>" : out;
    this.tar = new TarWriter(opts.mtime ?? new Date(0));
    this.spool = out === "-" && opts.checkBeforeStdout !== false;
    this.done = writeOutput(this.tar.output, out, {
      format: opts.format ?? "none",
      ...(opts.level !== undefined ? { level: opts.level } : {}),
      ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.split ? { split: opts.split, onSplitWriter: (w: SplitWriter) => (this.splitWriter = w) } : {}),
    });
    this.done.catch(() => undefined);
  }

  async begin(files: LayoutFiles): Promise<void> {
    await checkOutputParent(this.out);
    const wanted: LayoutFiles = {
      indexJson: files.indexJson,
      dockerManifest: this.opts.dockerManifest ? files.dockerManifest : undefined,
      ...(this.opts.metadata && files.metadata ? { metadata: files.metadata } : {}),
    };
    for (const { path, bytes } of topLevelEntries(wanted)) await this.tar.addBytes(path, bytes);
  }

  async hasBlob(): Promise<boolean> {
    return false;
  }

  async putSmall(desc: Descriptor, bytes: Uint8Array): Promise<void> {
    await this.tar.addBytes(blobPath(desc), bytes);
  }

  async putBlob(desc: Descriptor, data: Readable, _label?: string, signal?: AbortSignal): Promise<void> {
    if (!this.spool) {
      await this.tar.addStream(blobPath(desc), desc.size, data, signal);
      return;
    }
    this.spoolDir ??= await makeTempDir("airpack-spool-");
    const file = join(this.spoolDir, desc.digest.slice(7));
    try {
      await streamToFile(data, file);
      await this.tar.addStream(blobPath(desc), desc.size, createReadStream(file), signal);
    } finally {
      await rm(file, { force: true });
    }
  }

  async tag(): Promise<void> {}

  async close(): Promise<void> {
    this.tar.finalize();
    try {
      this.result = await this.done;
      this.bytesWritten = this.result.bytes;
    } finally {
      await this.cleanup();
    }
  }

  async abort(): Promise<void> {
    this.tar.abort(new Error("write aborted"));
    await this.done.catch(() => undefined);
    await this.cleanup();
  }

  private async cleanup(): Promise<void> {
    if (this.spoolDir) await rm(this.spoolDir, { recursive: true, force: true });
  }
}
