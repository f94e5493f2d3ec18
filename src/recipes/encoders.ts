import { GoDeflater } from "../compression/goflate";
import { createPgzipDeflate } from "../compression/pgzip";
import { createGnuGzipDeflate } from "../compression/gnugzip";
import { createPigzDeflate } from "../compression/pigz";
import { createZlibDeflate } from "../compression/zlib";
import type { RawDeflateEncoder } from "../compression/raw-deflate";

/**
 * One (implementation, version range, level) that may have made a registry's gzip layer.
 * Adding an encoder: add a family here with a reference test against the real tool.
 */
export interface Candidate {
  /** Stable id stored in recipes, e.g. "go-flate-6". Never reuse an id for different output. */
  id: string;
  family: string;
  level: number;
  /** The tool versions whose output this reproduces. */
  versions: string;
  /** `peek`, when the encoder supports it, sees output that is final but not emitted yet. */
  create(onData: (out: Uint8Array) => void, peek?: (partial: Uint8Array) => void): RawDeflateEncoder;
}

/** zlib 1.2.x deflate (our port in src/compression/zlib, byte-identical to vanilla zlib): Python, Java, jib. */
function zlibCandidate(level: number): Candidate {
  return {
    id: `zlib-${level}`,
    family: "zlib",
    level,
    versions: "zlib 1.2.x, memLevel 8, windowBits 15",
    create(onData, peek) {
      return createZlibDeflate(level, onData, peek);
    },
  };
}

/** Go compress/flate (Go 1.8–1.26; BuildKit pins the 1.26 writer): BuildKit, docker push, containerd, old pgzip. */
function goFlateCandidate(level: number): Candidate {
  return {
    id: `go-flate-${level}`,
    family: "go-flate",
    level,
    versions: "Go 1.8 – 1.26 compress/flate (BuildKit pins the 1.26 writer)",
    create(onData) {
      const d = new GoDeflater(level);
      return {
        write(chunk) {
          for (const out of d.write(chunk)) onData(out);
        },
        end() {
          for (const out of d.closeChunks()) onData(out);
        },
      };
    },
  };
}

/**
 * klauspost/pgzip on klauspost/compress flate: containers/image (podman, buildah, skopeo; default level 5)
 * and go-containerregistry (crane, ko, kaniko; level 1). 1 MiB blocks whatever the write sizes.
 */
function pgzipCandidate(level: number): Candidate {
  return {
    id: `pgzip-1MiB-l${level}`,
    family: "pgzip",
    level,
    versions: "klauspost/pgzip 1.2.5 + klauspost/compress 1.15.12 (1 MiB blocks, 16 KiB dictionary)",
    create(onData, peek) {
      return createPgzipDeflate(level, peek ? { peek } : undefined, onData);
    },
  };
}

/** GNU gzip 1.x's own deflate (not zlib): `gzip -N`, `docker save | gzip`, hand-made layers. */
function gnuGzipCandidate(level: number): Candidate {
  return {
    id: `gnu-gzip-${level}`,
    family: "gnu-gzip",
    level,
    versions: "GNU gzip 1.6 – 1.12 deflate (regular-file input)",
    create(onData) {
      return createGnuGzipDeflate(level, onData);
    },
  };
}

/** pigz 2.x: 128 KiB blocks with the previous 32 KiB as dictionary (several threads), or one stream (-p 1). */
function pigzCandidate(level: number, threads: 1 | 2): Candidate {
  return {
    id: threads === 1 ? `pigz-p1-l${level}` : `pigz-128k-l${level}`,
    family: "pigz",
    level,
    versions: `pigz 2.x on zlib 1.2.x (pako 2), ${threads === 1 ? "-p 1 / one CPU" : "-b 128, two or more threads"}`,
    create(onData) {
      return createPigzDeflate(level, onData, { threads });
    },
  };
}

type Factory = () => Candidate[];

/**
 * pigz -p 1 writes the same bytes as its threaded mode at levels 4-9 (reference test in
 * test/unit/pigz.test.ts), so only levels 1-3 need their own -p 1 candidate when identifying.
 */
const PIGZ_SINGLE_DIFFERS = (level: number): boolean => level <= 3;

/** Families in order of real-world weight (which encoders registries' layers come from: docs/recipe-format.md); levels in order of how often tools use them. */
const families: Factory[] = [
  () => [6, 9, 1, 5, 4, 3, 2, 7, 8, -2, 0].map(goFlateCandidate),
  () => [5, 1, 6, 9, 4, 3, 2, 7, 8].map(pgzipCandidate),
  () => [6, 1, 9, 5, 4, 3, 2, 7, 8].map(zlibCandidate),
  () => [6, 9, 1, 5, 4, 3, 2, 7, 8].map(gnuGzipCandidate),
  () =>
    [6, 9, 1, 5, 4, 3, 2, 7, 8].flatMap((l) =>
      PIGZ_SINGLE_DIFFERS(l) ? [pigzCandidate(l, 2), pigzCandidate(l, 1)] : [pigzCandidate(l, 2)],
    ),
];

/** The candidates identification tries, in order. */
export function allCandidates(): Candidate[] {
  return families.flatMap((f) => f());
}

/** Any candidate a recipe may name, including ids identification no longer tries (older bundles). */
export function candidateById(id: string): Candidate | undefined {
  const retired = [4, 5, 6, 7, 8, 9].map((l) => pigzCandidate(l, 1));
  return [...allCandidates(), ...retired].find((c) => c.id === id);
}
