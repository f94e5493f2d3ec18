import { createReadStream } from "node:fs";
import { lstat, readFile, realpath } from "node:fs/promises";
import { join, sep } from "node:path";
import { Readable } from "node:stream";
import { ReadAheadStream } from "./read-ahead";
import { indexTarFile, safeTarPath, type TarEntry } from "./tar-index";

/** Read-only access to a tree of files: a directory or a tar archive. */
export interface FileTree {
  readonly label: string;
  exists(path: string): Promise<boolean>;
  size(path: string): Promise<number>;
  /** Whole small file, refusing anything over `limit` bytes. */
  readSmall(path: string, limit: number): Promise<Buffer>;
  open(path: string): Readable;
}

export class DirTree implements FileTree {
  constructor(readonly root: string) {}

  get label(): string {
    return this.root;
  }

  private async resolve(path: string): Promise<string> {
    const rel = safeTarPath(path, this.root);
    const full = join(this.root, rel);
    const real = await realpath(full);
    const rootReal = await realpath(this.root);
    if (real !== rootReal && !real.startsWith(rootReal + sep)) {
      throw new Error(`${this.root}: ${path} is a link that points outside the layout`);
    }
    if (!(await lstat(real)).isFile()) throw new Error(`${this.root}: ${path} is not a regular file`);
    return real;
  }

  async exists(path: string): Promise<boolean> {
    try {
      await this.resolve(path);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw err;
    }
  }

  async size(path: string): Promise<number> {
    return (await lstat(await this.resolve(path))).size;
  }

  async readSmall(path: string, limit: number): Promise<Buffer> {
    const full = await this.resolve(path);
    const { size } = await lstat(full);
    if (size > limit) throw new Error(`${this.root}/${path}: ${size} bytes, over the ${limit}-byte limit`);
    return readFile(full);
  }

  open(path: string): Readable {
    // Path safety is checked by callers through exists()/size(); re-check synchronously here.
    return new ReadAheadStream(join(this.root, safeTarPath(path, this.root)));
  }
}

export class TarTree implements FileTree {
  private constructor(
    readonly file: string,
    private readonly entries: Map<string, TarEntry>,
  ) {}

  static async open(file: string): Promise<TarTree> {
    return new TarTree(file, await indexTarFile(file));
  }

  get label(): string {
    return this.file;
  }

  /**
   * An entry, following hardlinks and symlinks that stay inside the archive: docker save writes
   * `<id>/layer.tar -> ../<other id>/layer.tar` for layers two images share.
   */
  private entry(path: string, depth = 0): TarEntry {
    const rel = safeTarPath(path, this.file);
    const e = this.entries.get(rel);
    if (!e) throw Object.assign(new Error(`${this.file}: no entry ${path}`), { code: "ENOENT" });
    if ((e.type === "link" || e.type === "symlink") && e.linkname !== undefined) {
      if (depth >= 16) throw new Error(`${this.file}: ${path}: too many levels of links`);
      if (e.linkname.startsWith("/")) throw new Error(`${this.file}: ${path} links to an absolute path`);
      // A hardlink names a path from the archive root; a symlink is relative to its own directory.
      const base = e.type === "symlink" ? rel.split("/").slice(0, -1) : [];
      return this.entry(this.inside(base, e.linkname, path), depth + 1);
    }
    if (e.type !== "file") throw new Error(`${this.file}: ${path} is not a regular file`);
    return e;
  }

  /** Resolve `target` from directory `base`; refused if it climbs above the archive root. */
  private inside(base: string[], target: string, from: string): string {
    const parts = [...base];
    for (const part of target.split("/")) {
      if (part === "" || part === ".") continue;
      if (part !== "..") parts.push(part);
      else if (parts.pop() === undefined)
        throw new Error(`${this.file}: ${from} links to "${target}", outside the archive`);
    }
    return parts.join("/");
  }

  async exists(path: string): Promise<boolean> {
    try {
      this.entry(path);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw err;
    }
  }

  async size(path: string): Promise<number> {
    return this.entry(path).size;
  }

  async readSmall(path: string, limit: number): Promise<Buffer> {
    const e = this.entry(path);
    if (e.size > limit) throw new Error(`${this.file}: ${path} is ${e.size} bytes, over the ${limit}-byte limit`);
    if (e.size === 0) return Buffer.alloc(0);
    const chunks: Buffer[] = [];
    for await (const chunk of createReadStream(this.file, { start: e.offset, end: e.offset + e.size - 1 })) {
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks);
  }

  open(path: string): Readable {
    const e = this.entry(path);
    if (e.size === 0) return Readable.from([]);
    return new ReadAheadStream(this.file, e.offset, e.offset + e.size);
  }

  /** Where a file's bytes are in the archive (links followed), to read them in place. */
  locate(path: string): { offset: number; size: number } {
    const e = this.entry(path);
    return { offset: e.offset, size: e.size };
  }

  paths(): string[] {
    return [...this.entries.keys()];
  }
}
