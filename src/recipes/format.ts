/** The recipe shapes stored in airpack.json (documented in docs/recipe-format.md). */
import { schemaCheck } from "../oci/schema";
import { quote } from "../quote";
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

const checkRecipeShape = schemaCheck<GzipRecipe>("recipe.json");

function checkMember(r: GzipMemberRecipe, label: string): void {
  if (!isKnownEncoderId(r.encoder)) {
    throw new Error(`${label}: encoder ${quote(r.encoder, 60)}, which this airpack does not have; upgrade airpack`);
  }
  const bytes = Buffer.from(r.header, "base64");
  if (parseGzipHeader(bytes)?.length !== bytes.length) throw new Error(`${label}: header is not one whole gzip header`);
}

/**
 * A recipe read from a bundle, checked before anything runs it: the format must be one this airpack
 * knows (docs/recipe-format.md: readers refuse others), its shape docs/schemas/recipe.json's, every
 * encoder one it has, every header a gzip header, and members' sizes add up to `size`, the
 * uncompressed layer's.
 */
export function checkRecipe(value: unknown, size: number, label: string): GzipRecipe {
  const format = (value as { format?: unknown } | null)?.format;
  if (typeof value === "object" && value !== null && !Array.isArray(value) && format !== "gzip") {
    const shown = typeof format === "string" ? quote(format, 40) : "missing";
    throw new Error(`${label}: recipe format ${shown} is not one this airpack knows (gzip); upgrade airpack`);
  }
  const r = checkRecipeShape(value, `${label}: recipe`);
  checkMember(r, `${label}: recipe`);
  if (r.members !== undefined) {
    let total = 0;
    r.members.forEach((m, i) => {
      checkMember(m, `${label}: recipe member ${i}`);
      total += m.size;
      if (total > size) throw new Error(`${label}: recipe members hold more than the layer's ${size} bytes`);
    });
    if (total !== size) {
      throw new Error(`${label}: recipe members hold ${total} bytes, the layer ${size}`);
    }
  }
  return r;
}
