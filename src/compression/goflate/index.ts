/**
 * Byte-exact TypeScript port of the Go compress/flate and compress/gzip writers (Go 1.7-1.26),
 * used to regenerate gzip layers produced by Go tools (BuildKit, containerd, docker, crane).
 */
export { BEST_COMPRESSION, BEST_SPEED, DEFAULT_COMPRESSION, GoDeflater, HUFFMAN_ONLY, NO_COMPRESSION } from "./deflate";
export { GoGzipWriter, createGoDeflate, createGoGzip, gzipHeader, type GoGzipHeader } from "./gzip";
