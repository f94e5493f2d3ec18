import { Transform, type TransformCallback } from "node:stream";
import { candidateById, type Candidate } from "./encoders";
import type { RawDeflateEncoder } from "../compression/raw-deflate";
import { crc32 } from "../compression/crc32";
import { gzipTrailer } from "./gzip-header";
import type { GzipMemberRecipe, GzipRecipe } from "./format";

/** A member to rebuild; `size` (uncompressed bytes) is unbounded for a single-member recipe. */
interface Member {
  recipe: GzipMemberRecipe;
  candidate: Candidate;
  size: number;
}

function membersOf(recipe: GzipRecipe): Member[] {
  if (recipe.format !== "gzip")
    throw new Error(`recipe format "${String(recipe.format)}" is not gzip; upgrade airpack`);
  if (recipe.members !== undefined && (!Array.isArray(recipe.members) || recipe.members.length === 0)) {
    throw new Error("recipe: members is not a list of members");
  }
  const list = recipe.members ?? [{ ...recipe, size: Number.POSITIVE_INFINITY }];
  return list.map((m) => {
    if (m.size !== Number.POSITIVE_INFINITY && !(Number.isSafeInteger(m.size) && m.size >= 0)) {
      throw new Error(`recipe: member size ${String(m.size)} is not a byte count`);
    }
    const candidate = candidateById(m.encoder);
    if (!candidate) {
      throw new Error(`recipe needs encoder "${m.encoder}", which this airpack does not have; upgrade airpack`);
    }
    return { recipe: m, candidate, size: m.size };
  });
}

/**
 * Uncompressed tar in, the original gzip blob out (the caller verifies its digest). Members are
 * rebuilt one after another, each from its share of the input, with its own header and trailer.
 */
class GzipRegenerator extends Transform {
  private readonly members: Member[];
  private index = -1;
  private crc = 0;
  private size = 0;
  private left = 0;
  private encoder?: RawDeflateEncoder;

  constructor(recipe: GzipRecipe) {
    super({ readableHighWaterMark: 1 << 20, writableHighWaterMark: 1 << 20 });
    this.members = membersOf(recipe);
    this.startMember();
  }

  private startMember(): void {
    const member = this.members[++this.index];
    if (!member) throw new Error("recipe: the layer holds more data than its gzip members account for");
    // Copied: encoders may reuse their output buffers once the callback returns.
    this.encoder = member.candidate.create((out) => this.push(Buffer.from(out)));
    this.push(Buffer.from(member.recipe.header, "base64"));
    this.crc = 0;
    this.size = 0;
    this.left = member.size;
  }

  private finishMember(): void {
    this.encoder?.end();
    this.push(gzipTrailer(this.crc, this.size));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      let off = 0;
      while (off < chunk.length) {
        if (this.left === 0) {
          this.finishMember();
          this.startMember();
          continue;
        }
        const n = Math.min(chunk.length - off, this.left);
        const part = off === 0 && n === chunk.length ? chunk : chunk.subarray(off, off + n);
        this.crc = crc32(part, this.crc);
        this.size += n;
        this.left -= n;
        this.encoder?.write(part);
        off += n;
      }
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      for (;;) {
        if (this.left !== 0 && this.left !== Number.POSITIVE_INFINITY) {
          throw new Error("recipe: the layer ended before its last gzip member was complete");
        }
        this.finishMember();
        if (this.index + 1 >= this.members.length) break;
        this.startMember();
      }
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }
}

export function regenerateGzip(recipe: GzipRecipe): Transform {
  return new GzipRegenerator(recipe);
}
