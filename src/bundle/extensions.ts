import type { StreamFormat } from "../compression/sniff";

const extensions: [RegExp, StreamFormat][] = [
  [/\.(tar\.xz|txz)$/i, "xz"],
  [/\.(tar\.zst|tzst|tar\.zstd)$/i, "zstd"],
  [/\.(tar\.gz|tgz)$/i, "gzip"],
  [/\.tar$/i, "none"],
];

/** Outer compression from an output name; undefined when the name says nothing. */
export function formatFromName(path: string): StreamFormat | undefined {
  return extensions.find(([re]) => re.test(path))?.[1];
}
