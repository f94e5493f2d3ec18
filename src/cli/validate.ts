import type { StreamFormat } from "../compression/sniff";
import { formatFromName } from "../bundle/extensions";
import { TARGETS, type UnpackTarget } from "../bundle/targets";
import type { UnpackFormat } from "../bundle/unpack";
import type { LayerMode } from "../copy/layer-modes";
import { parsePlatformString, type Platform } from "../oci/platform";
import { UsageError } from "../util/errors";

/** The levels each outer compression takes (what xz, zstd and gzip themselves accept). */
const LEVELS: Record<StreamFormat, [number, number] | undefined> = {
  xz: [0, 9],
  zstd: [1, 19],
  gzip: [1, 9],
  none: undefined,
};

function wholeNumber(value: number, option: string, min: number, max?: number): number {
  const range = max === undefined ? `${min} or more` : `${min}-${max}`;
  if (!Number.isInteger(value) || value < min || (max !== undefined && value > max)) {
    throw new UsageError(`${option} ${String(value)}: expected a whole number, ${range}`);
  }
  return value;
}

/** --level for the chosen outer compression; checked before anything is read or written. */
export function checkLevel(level: number | undefined, format: StreamFormat): number | undefined {
  if (level === undefined) return undefined;
  const range = LEVELS[format];
  if (!range) throw new UsageError(`--level ${String(level)}: an uncompressed tar has no level`);
  return wholeNumber(level, `--level (${format})`, range[0], range[1]);
}

/** --threads / -T and --jobs / -j. */
export function checkCount(value: number | undefined, option: string): number | undefined {
  return value === undefined ? undefined : wholeNumber(value, option, 1);
}

export function parsePlatforms(texts: readonly string[]): Platform[] {
  return texts.map((t) => {
    try {
      return parsePlatformString(t);
    } catch (err) {
      throw new UsageError(`--platform: ${(err as Error).message}`);
    }
  });
}

/** A warning when an output's name promises a compression it will not have; undefined when they agree. */
export function nameMismatch(out: string, writes: StreamFormat): string | undefined {
  if (out === "-") return undefined;
  const named = formatFromName(out);
  if (named === undefined || named === writes) return undefined;
  const what = writes === "none" ? "a plain tar" : `a ${writes}-compressed tar`;
  return `${out}: the name says ${named === "none" ? "a plain tar" : named}, but this writes ${what}`;
}

/**
 * unpack --for: the format and layer form that importer takes. An explicit --format or --layers
 * is used instead when the importer takes it too, and refused (exit 2) when it does not.
 */
export function checkTarget(
  target: UnpackTarget,
  format: UnpackFormat | undefined,
  layers: LayerMode | undefined,
): { format: UnpackFormat; layers: LayerMode | undefined } {
  const t = TARGETS[target];
  if (format !== undefined && !t.formats.includes(format)) {
    const what = format === "oci" ? "a directory" : format;
    throw new UsageError(`--for ${target} --format ${format}: ${t.importer} does not take ${what}; ${t.formatReason}`);
  }
  if (layers !== undefined && !t.layerModes.includes(layers)) {
    throw new UsageError(`--for ${target} --layers ${layers}: ${t.importer} ${t.layersReason ?? "does not take it"}`);
  }
  return { format: format ?? t.format, layers: layers ?? t.layers };
}
