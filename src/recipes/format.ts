/** The recipe shapes stored in airpack.json (documented in docs/recipe-format.md). */
import { MAX_RECIPE_MEMBERS } from "../oci/limits";
import { parseGzipHeader } from "./gzip-header";

/** One gzip member: which encoder made it and its exact header. */
export interface GzipMemberRecipe {
  /** Candidate id, e.g. "go-flate-6". */
  encoder: string;
  family: string;
  level: number;
  versions: string;
  /** The exact gzip header bytes (base64). */
  header: string;
}

/**
 * How a gzip blob can be rebuilt from its uncompressed tar: stored in airpack.json per layer. The top
 * level describes the (first) member; a blob of several concatenated members lists them all in
 * `members`, each with the number of uncompressed bytes it holds.
 */
export interface GzipRecipe extends GzipMemberRecipe {
  format: "gzip";
  members?: (GzipMemberRecipe & { size: number })[];
}

/**
 * Every encoder id a recipe may name (the candidates of src/recipes/encoders.ts, retired ones
 * included), without loading the encoder models; test/unit/recipe-check.test.ts keeps the two in step.
 */
const ENCODER_ID =
  /^(go-flate-(-2|[0-9])|pgzip-1MiB-l[1-9]|zlib-[1-9]|gnu-gzip-[1-9]|pigz-128k-l[1-9]|pigz-p1-l[1-9])$/;

export function isKnownEncoderId(id: unknown): id is string {
  return typeof id === "string" && ENCODER_ID.test(id);
}

/** Longest gzip member header a recipe may carry (FEXTRA is at most 64 KiB; names and comments are short). */
const MAX_HEADER_BYTES = 128 * 1024;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function checkMember(m: unknown, label: string): GzipMemberRecipe {
  if (typeof m !== "object" || m === null || Array.isArray(m)) throw new Error(`${label}: not an object`);
  const r = m as Record<string, unknown>;
  if (!isKnownEncoderId(r.encoder)) {
    const shown = typeof r.encoder === "string" ? `"${r.encoder.slice(0, 60)}"` : `of type ${typeof r.encoder}`;
    throw new Error(`${label}: encoder ${shown}, which this airpack does not have; upgrade airpack`);
  }
  if (typeof r.level !== "number" || !Number.isInteger(r.level) || r.level < -2 || r.level > 9) {
    throw new Error(`${label}: level ${String(r.level).slice(0, 40)} is not a deflate level (-2 … 9)`);
  }
  for (const k of ["family", "versions"] as const) {
    if (r[k] !== undefined && typeof r[k] !== "string") throw new Error(`${label}: ${k} is not a string`);
  }
  if (typeof r.header !== "string" || r.header.length > (MAX_HEADER_BYTES * 4) / 3 + 4 || !BASE64.test(r.header)) {
    throw new Error(`${label}: header is not base64 of at most ${MAX_HEADER_BYTES} bytes`);
  }
  const bytes = Buffer.from(r.header, "base64");
  if (parseGzipHeader(bytes)?.length !== bytes.length) throw new Error(`${label}: header is not one whole gzip header`);
  return r as unknown as GzipMemberRecipe;
}

/**
 * A recipe read from a bundle, checked before anything runs it: the format must be one this airpack
 * knows (docs/recipe-format.md: readers refuse others), every encoder one it has, every header a
 * gzip header, and members' sizes whole numbers that add up to `size`, the uncompressed layer's.
 */
export function checkRecipe(value: unknown, size: number, label: string): GzipRecipe {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`${label}: recipe is not an object`);
  }
  const r = value as Record<string, unknown>;
  if (r.format !== "gzip") {
    const shown = typeof r.format === "string" ? `"${r.format.slice(0, 40)}"` : "missing";
    throw new Error(`${label}: recipe format ${shown} is not one this airpack knows (gzip); upgrade airpack`);
  }
  checkMember(r, `${label}: recipe`);
  if (r.members !== undefined) {
    if (!Array.isArray(r.members) || r.members.length === 0 || r.members.length > MAX_RECIPE_MEMBERS) {
      throw new Error(`${label}: recipe members must be a list of 1 to ${MAX_RECIPE_MEMBERS}`);
    }
    let total = 0;
    r.members.forEach((m: unknown, i) => {
      const what = `${label}: recipe member ${i}`;
      checkMember(m, what);
      const n = (m as { size?: unknown }).size;
      if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) {
        throw new Error(`${what}: size ${String(n).slice(0, 40)} is not a byte count`);
      }
      total += n;
      if (total > size) throw new Error(`${label}: recipe members hold more than the layer's ${size} bytes`);
    });
    if (total !== size) {
      throw new Error(`${label}: recipe members hold ${total} bytes, the layer ${size}`);
    }
  }
  return r as unknown as GzipRecipe;
}
