/**
 * The folders of src/ are layers: a file may import from its own folder or a lower one, never a
 * higher one. Reads every .ts file under src/ as text and parses it, so every import form counts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, statSync } from "node:fs";
import * as path from "node:path";
import ts from "typescript";

/**
 * Lowest first. Lower layers don't know about higher ones, so each can be read, tested and changed
 * without the ones above it (README.md, "Project layout", says what each folder holds). Files
 * directly in src/ (version.ts) and src/types/ sit below all of them: anyone may import them.
 */
export const LAYERS = [
  "oci",
  "util",
  "compression",
  "recipes",
  "registry",
  "transports",
  "store",
  "copy",
  "bundle",
  "inventory",
  "serve",
  "cli",
] as const;

/** Below every layer; src/ itself stands for the files directly in it. */
const BASE = ["src", "types"];

/** Compiled to dist/test/unit/, so the repository is three levels up. */
const ROOT = path.resolve(__dirname, "..", "..", "..");
const SRC = path.join(ROOT, "src");

interface Import {
  /** Repository-relative, with / separators: src/transports/foo.ts */
  file: string;
  line: number;
  specifier: string;
  from: string;
  to: string;
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return tsFiles(full);
    return e.name.endsWith(".ts") ? [full] : [];
  });
}

/** The layer of a path relative to src/: its top folder, or "src" for the files directly in it. */
function layerOf(relToSrc: string): string {
  const parts = relToSrc.split("/");
  if (parts.length === 1) {
    // "../oci" names the folder (its index), "../version" a file.
    const isDir = statSync(path.join(SRC, parts[0]!), { throwIfNoEntry: false })?.isDirectory() === true;
    return isDir ? parts[0]! : "src";
  }
  return parts[0]!;
}

/**
 * Every module specifier in the file: import/export … from, import type, import x = require(…),
 * bare import "…", import(…) (also in types: typeof import(…)) and require(…).
 */
function specifiers(source: ts.SourceFile): { specifier: string; pos: number }[] {
  const out: { specifier: string; pos: number }[] = [];
  const add = (node: ts.Node | undefined): void => {
    if (node && ts.isStringLiteralLike(node)) out.push({ specifier: node.text, pos: node.getStart(source) });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) add(node.moduleSpecifier);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference))
      add(node.moduleReference.expression);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node.argument.literal);
    else if (
      ts.isCallExpression(node) &&
      (node.expression.kind === ts.SyntaxKind.ImportKeyword ||
        (ts.isIdentifier(node.expression) && node.expression.text === "require"))
    )
      add(node.arguments[0]);
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

/** The relative imports of src/ that land in another layer (outside src/ does not count). */
function crossLayerImports(): Import[] {
  const out: Import[] = [];
  for (const full of tsFiles(SRC)) {
    const text = readFileSync(full, "utf8");
    const source = ts.createSourceFile(full, text, ts.ScriptTarget.Latest, true);
    const rel = path.relative(SRC, full).split(path.sep).join("/");
    const from = layerOf(rel);
    for (const { specifier, pos } of specifiers(source)) {
      if (!specifier.startsWith(".")) continue;
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(rel), specifier));
      if (target === ".." || target.startsWith("../")) continue;
      const to = layerOf(target);
      if (to === from) continue;
      const line = source.getLineAndCharacterOfPosition(pos).line + 1;
      out.push({ file: `src/${rel}`, line, specifier, from, to });
    }
  }
  return out;
}

/** -1 for the base, the index in LAYERS, or undefined for a folder LAYERS does not name. */
function rank(layer: string): number | undefined {
  if (BASE.includes(layer)) return -1;
  const i = (LAYERS as readonly string[]).indexOf(layer);
  return i < 0 ? undefined : i;
}

function describeImport(i: Import): string {
  return `${i.file}:${i.line} imports ${i.specifier}`;
}

describe("layering of src/", () => {
  const imports = crossLayerImports();

  it("finds the cross-folder imports it checks", () => {
    // Guards the checks below against passing because nothing was read.
    assert.ok(imports.length > 50, `only ${imports.length} cross-folder imports found under ${SRC}`);
  });

  it("puts every folder of src/ in a layer", () => {
    const folders = readdirSync(SRC, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
    const unknown = folders.filter((f) => rank(f) === undefined);
    assert.deepEqual(unknown, [], `src/ folders missing from LAYERS in ${path.basename(__filename)}`);
  });

  it("imports only from the same or a lower layer", () => {
    const upward = imports.flatMap((i) => {
      const from = rank(i.from);
      const to = rank(i.to);
      if (to === undefined) return [`${describeImport(i)} (${i.to} is not in LAYERS)`];
      // A file in a folder LAYERS does not name is reported by the test above.
      if (from === undefined || to <= from) return [];
      return [`${describeImport(i)} (${i.from === "src" ? "src/*.ts" : i.from} may not import ${i.to})`];
    });
    assert.deepEqual(upward, [], `upward imports:\n  ${upward.join("\n  ")}`);
  });

  it("has no import cycles between top folders", () => {
    // Implied by the order, but checked on its own so that a cycle is named as one.
    const edges = new Map<string, Map<string, Import>>();
    for (const i of imports) {
      const out = edges.get(i.from) ?? new Map<string, Import>();
      if (!out.has(i.to)) out.set(i.to, i);
      edges.set(i.from, out);
    }
    /** The shortest chain of folders from start back to start, by breadth-first search. */
    const shortestCycle = (start: string): string[] | undefined => {
      const prev = new Map<string, string>();
      const queue = [start];
      for (let n = queue.shift(); n !== undefined; n = queue.shift()) {
        for (const m of edges.get(n)?.keys() ?? []) {
          if (m === start) {
            const chain = [n];
            while (chain[0] !== start) chain.unshift(prev.get(chain[0]!)!);
            return [...chain, start];
          }
          if (!prev.has(m)) {
            prev.set(m, n);
            queue.push(m);
          }
        }
      }
      return undefined;
    };
    const cycles = new Map<string, string>();
    for (const start of edges.keys()) {
      const cycle = shortestCycle(start);
      if (!cycle) continue;
      // The same cycle is found from each of its folders: key it by its rotation that sorts first.
      const ring = cycle.slice(1);
      const key = ring.map((_, k) => [...ring.slice(k), ...ring.slice(0, k)].join(" → ")).sort()[0]!;
      const why = cycle.slice(1).map((to, k) => describeImport(edges.get(cycle[k]!)!.get(to)!));
      cycles.set(key, `${cycle.join(" → ")}: ${why.join("; ")}`);
    }
    const found = [...cycles.values()];
    assert.deepEqual(found, [], `import cycles between top folders:\n  ${found.join("\n  ")}`);
  });
});
