import { Transform, type TransformCallback } from "node:stream";
import { candidateById, type RawDeflateEncoder } from "./encoders";
import { crc32 } from "../compression/goflate";
import { gzipTrailer } from "./gzip-header";
import type { GzipRecipe } from "./identify";

/** Uncompressed tar in, the original gzip blob out (the caller verifies its digest). */
class GzipRegenerator extends Transform {
  private crc = 0;
  private size = 0;
  private readonly encoder: RawDeflateEncoder;

  constructor(recipe: GzipRecipe) {
    super({ readableHighWaterMark: 1 << 20, writableHighWaterMark: 1 << 20 });
    const candidate = candidateById(recipe.encoder);
    if (!candidate) {
      throw new Error(`recipe needs encoder "${recipe.encoder}", which this airpack does not have; upgrade airpack`);
    }
    // Copied: encoders may reuse their output buffers once the callback returns.
    this.encoder = candidate.create((out) => this.push(Buffer.from(out)));
    this.push(Buffer.from(recipe.header, "base64"));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.crc = crc32(chunk, this.crc);
    this.size += chunk.length;
    try {
      this.encoder.write(chunk);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.encoder.end();
      this.push(gzipTrailer(this.crc, this.size));
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }
}

export function regenerateGzip(recipe: GzipRecipe): Transform {
  return new GzipRegenerator(recipe);
}
