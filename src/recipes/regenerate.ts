import { Transform, type TransformCallback } from "node:stream";
import { candidateById, type RawDeflateEncoder } from "./encoders";
import { crc32Update } from "./crc32";
import { gzipTrailer } from "./gzip-header";
import type { GzipRecipe } from "./identify";

/** Uncompressed tar in, the original gzip blob out (the caller verifies its digest). */
export function regenerateGzip(recipe: GzipRecipe): Transform {
  const candidate = candidateById(recipe.encoder);
  if (!candidate) {
    throw new Error(`recipe needs encoder "${recipe.encoder}", which this airpack does not have; upgrade airpack`);
  }
  let crc = 0;
  let size = 0;
  let encoder: RawDeflateEncoder;
  const stream = new Transform({
    readableHighWaterMark: 1 << 20,
    writableHighWaterMark: 1 << 20,
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      crc = crc32Update(crc, chunk);
      size += chunk.length;
      try {
        encoder.write(chunk);
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
    flush(cb: TransformCallback) {
      try {
        encoder.end();
        stream.push(gzipTrailer(crc, size));
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
  });
  encoder = candidate.create((out) => stream.push(Buffer.from(out)));
  stream.push(Buffer.from(recipe.header, "base64"));
  return stream;
}
