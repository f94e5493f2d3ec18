import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import type { Descriptor } from "../oci/descriptor";
import { blobPath } from "../transports/layout";
import { streamToFile, tempSibling } from "../util/atomic";
import { METADATA_FILE } from "./format";
import type { UnpackSink } from "./reader";
import { TarWriter } from "./tar-writer";
import { writeOutput } from "./output";
import { drain } from "../util/streams";
import type { Store } from "../store/store";

/** verify: consume and discard. */
export class NullSink implements UnpackSink {
  async file(): Promise<void> {}
  async smallBlob(): Promise<void> {}
  async blob(_desc: Descriptor, data: Readable): Promise<void> {
    await drain(data);
  }
  async commit(): Promise<void> {}
  async abort(): Promise<void> {}
}

/**
 * unpack --format oci: build the layout in a temp sibling directory and rename it into place
 * only when every blob checked out.
 */
export class LayoutDirSink implements UnpackSink {
  private readonly tmp: string;
  private started = false;

  constructor(
    private readonly out: string,
    private readonly force: boolean,
  ) {
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
    const what = existing ? "a different OCI layout" : "other files";
    throw new Error(
      `${this.out}: the directory already holds ${what}; choose an empty directory or pass --force to replace it`,
    );
  }

  async file(name: string, bytes: Uint8Array): Promise<void> {
    if (name === "index.json") await this.checkTarget(bytes);
    if (name === METADATA_FILE || name === "repositories") return;
    await this.start();
    await writeFile(join(this.tmp, name), bytes);
  }

  async smallBlob(desc: Descriptor, bytes: Uint8Array): Promise<void> {
    await this.start();
    await writeFile(join(this.tmp, blobPath(desc)), bytes);
  }

  async blob(desc: Descriptor, data: Readable): Promise<void> {
    await this.start();
    await streamToFile(data, join(this.tmp, blobPath(desc)));
  }

  async commit(): Promise<void> {
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

/**
 * unpack to an archive (file or stdout): entries are re-tarred in bundle order. A file is
 * renamed into place at commit. On stdout nothing can be taken back, so each layer is first
 * spooled to a temp file and only sent once its digest checked out; a later failure ends the
 * stream without the tar end-of-archive marker, so importers see a truncated archive.
 */
export class TarSink implements UnpackSink {
  private readonly tar = new TarWriter(new Date(0));
  private readonly done: Promise<{ bytes: number }>;
  private readonly spool: boolean;
  private spoolDir?: string;

  constructor(
    out: string,
    private readonly dockerManifest: boolean,
    signal?: AbortSignal,
  ) {
    this.spool = out === "-";
    this.done = writeOutput(this.tar.output, out, { format: "none", ...(signal ? { signal } : {}) });
    this.done.catch(() => undefined);
  }

  async file(name: string, bytes: Uint8Array): Promise<void> {
    if (name === METADATA_FILE || name === "repositories") return;
    if (name === "manifest.json" && !this.dockerManifest) return;
    await this.tar.addBytes(name, bytes);
  }

  async smallBlob(desc: Descriptor, bytes: Uint8Array): Promise<void> {
    await this.tar.addBytes(blobPath(desc), bytes);
  }

  async blob(desc: Descriptor, data: Readable): Promise<void> {
    if (!this.spool) {
      await this.tar.addStream(blobPath(desc), desc.size, data);
      return;
    }
    this.spoolDir ??= await mkdtemp(join(tmpdir(), "airpack-spool-"));
    const file = join(this.spoolDir, desc.digest.slice(7));
    try {
      await streamToFile(data, file);
      await this.tar.addStream(blobPath(desc), desc.size, createReadStream(file));
    } finally {
      await rm(file, { force: true });
    }
  }

  async commit(): Promise<void> {
    this.tar.finalize();
    try {
      await this.done;
    } finally {
      await this.cleanup();
    }
  }

  async abort(): Promise<void> {
    this.tar.abort(new Error("unpack aborted"));
    await this.done.catch(() => undefined);
    await this.cleanup();
  }

  private async cleanup(): Promise<void> {
    if (this.spoolDir) await rm(this.spoolDir, { recursive: true, force: true });
  }
}

/** unpack --layers: everything goes into the store first (verified), to be converted there. */
export class StoreSink implements UnpackSink {
  constructor(private readonly store: Store) {}
  async file(): Promise<void> {}
  async smallBlob(desc: Descriptor, bytes: Uint8Array): Promise<void> {
    await this.store.putSmall(desc, bytes, `blob ${desc.digest}`);
  }
  async blob(desc: Descriptor, data: Readable): Promise<void> {
    // The stream is a tar entry: it must be read through even when the store already has the blob.
    if (await this.store.hasBlob(desc)) await drain(data);
    else await this.store.putBlob(desc, data, `blob ${desc.digest}`);
  }
  async commit(): Promise<void> {}
  async abort(): Promise<void> {}
}
