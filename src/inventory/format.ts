import { open } from "node:fs/promises";
import { encodeJson, parseJson } from "../oci/descriptor";
import { isDigest, type Digest } from "../oci/digest";
import { fileErrorReason } from "../util/errors";

/**
 * A site inventory: what an offline site holds, carried back to the online side so pack --have can
 * leave those blobs out. Documented in docs/inventory-format.md. The shape check below is one
 * function over the parsed JSON (checkInventory), so a JSON schema can replace it in one place.
 */
export const INVENTORY_VERSION = 1;
/** Bigger is refused before it is read: 64 MiB holds millions of digests. */
export const MAX_INVENTORY_BYTES = 64 * 1024 * 1024;

export type InventorySourceKind = "registry" | "bundle" | "oci" | "store";

export interface InventorySource {
  kind: InventorySourceKind;
  /** What was read: REGISTRY[/PREFIX], a bundle file, a layout directory, the store directory. */
  location: string;
}

export interface InventoryBlob {
  digest: Digest;
  size: number;
}

export interface InventoryManifest {
  digest: Digest;
  size: number;
  mediaType: string;
  /** The names (REGISTRY/REPO:TAG) whose image reaches this manifest or index. */
  names: string[];
  /** What it references: an index its children, a manifest its config and layers. */
  refs: Digest[];
}

export interface Inventory {
  airpackInventory: number;
  created: string;
  sources: InventorySource[];
  blobs: InventoryBlob[];
  manifests: InventoryManifest[];
}

const KINDS: readonly string[] = ["registry", "bundle", "oci", "store"];

type Obj = Record<string, unknown>;

/** Field checks that name the file and the field, e.g. "site.json: blobs[3].size: not a byte count". */
class Checker {
  constructor(private readonly file: string) {}
  fail(field: string, what: string): never {
    throw new Error(`${this.file}: ${field}: ${what}; not an airpack inventory, or a damaged one (make it again)`);
  }
  obj(v: unknown, field: string): Obj {
    if (typeof v !== "object" || v === null || Array.isArray(v)) this.fail(field, "not an object");
    return v as Obj;
  }
  list(v: unknown, field: string): unknown[] {
    if (!Array.isArray(v)) this.fail(field, "not a list");
    return v;
  }
  str(v: unknown, field: string): string {
    if (typeof v !== "string" || v.length === 0) this.fail(field, "not a non-empty string");
    return v;
  }
  size(v: unknown, field: string): number {
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
      this.fail(field, `${JSON.stringify(v) ?? String(v)} is not a byte count (a whole number, 0 or more)`);
    }
    return v;
  }
  digest(v: unknown, field: string): Digest {
    if (!isDigest(v)) {
      const shown = typeof v === "string" ? JSON.stringify(v.slice(0, 80)) : typeof v;
      this.fail(field, `${shown} is not a sha256:<64 hex> digest`);
    }
    return v;
  }
}

/**
 * Check a parsed inventory's every field; the checked copy holds only the known fields. The same
 * digest listed with two sizes is refused (one of them is a lie).
 */
export function checkInventory(doc: unknown, file: string): Inventory {
  const c = new Checker(file);
  const top = c.obj(doc, "the document");
  if (top.airpackInventory !== INVENTORY_VERSION) {
    c.fail(
      "airpackInventory",
      `version ${JSON.stringify(top.airpackInventory) ?? "missing"} is not one this airpack reads (${INVENTORY_VERSION}); make it with the same airpack version`,
    );
  }
  const created = c.str(top.created, "created");
  if (Number.isNaN(Date.parse(created))) c.fail("created", `${JSON.stringify(created.slice(0, 40))} is not a time`);
  const sources = c.list(top.sources, "sources").map((s, i) => {
    const o = c.obj(s, `sources[${i}]`);
    const kind = c.str(o.kind, `sources[${i}].kind`);
    if (!KINDS.includes(kind))
      c.fail(`sources[${i}].kind`, `${JSON.stringify(kind)} is not one of ${KINDS.join(", ")}`);
    return { kind: kind as InventorySourceKind, location: c.str(o.location, `sources[${i}].location`) };
  });
  const sizes = new Map<Digest, number>();
  const blobs = c.list(top.blobs, "blobs").map((b, i) => {
    const o = c.obj(b, `blobs[${i}]`);
    const digest = c.digest(o.digest, `blobs[${i}].digest`);
    const size = c.size(o.size, `blobs[${i}].size`);
    const prior = sizes.get(digest);
    if (prior !== undefined && prior !== size)
      c.fail(`blobs[${i}]`, `${digest} is listed with sizes ${prior} and ${size}`);
    sizes.set(digest, size);
    return { digest, size };
  });
  const manifests = c.list(top.manifests, "manifests").map((m, i) => {
    const o = c.obj(m, `manifests[${i}]`);
    return {
      digest: c.digest(o.digest, `manifests[${i}].digest`),
      size: c.size(o.size, `manifests[${i}].size`),
      mediaType: c.str(o.mediaType, `manifests[${i}].mediaType`),
      names: c.list(o.names, `manifests[${i}].names`).map((n, j) => c.str(n, `manifests[${i}].names[${j}]`)),
      refs: c.list(o.refs, `manifests[${i}].refs`).map((d, j) => c.digest(d, `manifests[${i}].refs[${j}]`)),
    };
  });
  return { airpackInventory: INVENTORY_VERSION, created, sources, blobs, manifests };
}

/** Bytes of an inventory file → a checked inventory (one-line errors naming the file). */
export function parseInventory(bytes: Uint8Array, file: string): Inventory {
  if (bytes.length > MAX_INVENTORY_BYTES) {
    throw new Error(`${file}: ${bytes.length} bytes, over the ${MAX_INVENTORY_BYTES}-byte limit for inventories`);
  }
  let doc: unknown;
  try {
    doc = parseJson(bytes, file, MAX_INVENTORY_BYTES);
  } catch (err) {
    throw new Error(`${(err as Error).message.split("\n")[0]!}; not an airpack inventory`, { cause: err });
  }
  return checkInventory(doc, file);
}

/** Read and check an inventory file; one too big is refused by its size before it is read. */
export async function readInventoryFile(file: string): Promise<{ inventory: Inventory; bytes: Buffer }> {
  let fh;
  try {
    fh = await open(file, "r");
  } catch (err) {
    throw new Error(`${file}: cannot read the inventory (${fileErrorReason(err)})`, { cause: err });
  }
  try {
    const { size } = await fh.stat();
    if (size > MAX_INVENTORY_BYTES) {
      throw new Error(`${file}: ${size} bytes, over the ${MAX_INVENTORY_BYTES}-byte limit for inventories`);
    }
    const bytes = await fh.readFile();
    return { inventory: parseInventory(bytes, file), bytes };
  } finally {
    await fh.close();
  }
}

export function encodeInventory(inv: Inventory): Buffer {
  return Buffer.concat([encodeJson(inv), Buffer.from("\n")]);
}
