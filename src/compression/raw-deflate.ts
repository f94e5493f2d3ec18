/**
 * The shape every raw-deflate encoder model shares (Go, pgzip, zlib, GNU gzip, pigz): bytes go in
 * with write(), compressed output comes out through the callback the encoder was created with.
 */
export interface RawDeflateEncoder {
  write(chunk: Uint8Array): void;
  end(): void;
}
