/**
 * The JSON Schemas of every document airpack reads (docs/schemas/*.json, listed in its README.md),
 * checked with ajv at the boundary: a document that passes has the shape its TypeScript type says,
 * and one that fails is refused with the document and the field named ("…: /layers/0/size must be
 * an integer (got "12")"), never with a JavaScript error from code that trusted the shape. The
 * schemas are read and compiled on first use; semantic checks (digests resolve, limits, sums) stay
 * with the code that knows them.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import Ajv, { type ErrorObject, type ValidateFunction } from "ajv";
import { quote, quoteValue } from "../quote";

/** docs/schemas, from dist/src/oci/ (the compiled file) and from src/oci/ alike. */
const SCHEMA_DIR = [
  join(__dirname, "..", "..", "..", "docs", "schemas"),
  join(__dirname, "..", "..", "docs", "schemas"),
];

let ajv: Ajv | undefined;

function schemas(): Ajv {
  if (ajv) return ajv;
  const dir = SCHEMA_DIR.find((d) => {
    try {
      return readdirSync(d).includes("defs.json");
    } catch {
      return false;
    }
  });
  if (!dir) throw new Error(`airpack is damaged: its JSON schemas (docs/schemas) are missing; reinstall airpack`);
  const created = new Ajv({ allErrors: false, verbose: true, strict: true, allowUnionTypes: true });
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".json"))) {
    created.addSchema(JSON.parse(readFileSync(join(dir, file), "utf8")) as object, file);
  }
  ajv = created;
  return created;
}

/** "/layers/0/size" with each key quoted when it is not a plain word or index (keys are input too). */
function fieldPath(pointer: string): string {
  if (pointer === "") return "the document";
  return pointer
    .split("/")
    .slice(1)
    .map((k) => k.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((k) => (/^[A-Za-z0-9_.-]{1,64}$/.test(k) ? k : quote(k, 40)))
    .map((k) => `/${k}`)
    .join("");
}

const ARTICLE: Record<string, string> = { integer: "an integer", object: "an object", array: "an array" };

/** One ajv error as "FIELD must …", in words, with the value found where it is one. */
export function describeSchemaError(e: ErrorObject): string {
  const at = fieldPath(e.instancePath);
  const parent = e.parentSchema as { description?: string } | undefined;
  let rule: string;
  switch (e.keyword) {
    case "required": {
      const key = String((e.params as { missingProperty: string }).missingProperty);
      return `${fieldPath(`${e.instancePath}/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`)} is missing`;
    }
    case "type": {
      const t = String((e.params as { type: string | string[] }).type);
      rule = parent?.description
        ? `must be ${parent.description}`
        : `must be ${ARTICLE[t] ?? `a ${t.replace(",", " or ")}`}`;
      break;
    }
    case "const":
      rule = `must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}`;
      break;
    case "pattern":
    case "maxLength":
    case "minimum":
    case "maximum":
      rule = parent?.description ? `must be ${parent.description}` : (e.message ?? e.keyword);
      break;
    default:
      rule = e.message ?? e.keyword;
  }
  const got = typeof e.data === "object" && e.data !== null ? "" : ` (got ${quoteValue(e.data, 40)})`;
  return `${at} ${rule}${got}`;
}

/** A check of one document against a schema: the value typed when it passes, else "LABEL: FIELD must …". */
export type SchemaCheck<T> = (value: unknown, label: string) => T;

/**
 * The check for docs/schemas/FILE. Adding a document is a schema file there and one line:
 * `export const checkThing = schemaCheck<Thing>("thing.json");`. T is the TypeScript view of what
 * the schema guarantees; test/unit/schemas.test.ts holds each schema to real documents.
 */
export function schemaCheck<T>(file: string): SchemaCheck<T> {
  let validate: ValidateFunction | undefined;
  return (value: unknown, label: string): T => {
    validate ??= schemas().getSchema(file);
    if (!validate) throw new Error(`airpack is damaged: schema ${file} is missing; reinstall airpack`);
    if (!validate(value)) throw new Error(`${label}: ${describeSchemaError(validate.errors![0]!)}`);
    return value as T;
  };
}
