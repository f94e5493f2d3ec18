declare module "lzma-native" {
  import type { Transform } from "node:stream";
  export function createCompressor(options?: { preset?: number; threads?: number }): Transform;
  export function createDecompressor(options?: { memlimit?: number }): Transform;
  export const versionString: () => string;
}
