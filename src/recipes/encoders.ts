import { Deflate } from "pako";

/** A streaming raw-deflate encoder; output goes to the callback given at creation. */
export interface RawDeflateEncoder {
  write(chunk: Uint8Array): void;
  end(): void;
}

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
  create(onData: (out: Uint8Array) => void): RawDeflateEncoder;
}

/** zlib 1.2.x deflate (via pako, byte-identical to vanilla zlib): Python, Java, jib, many scripts. */
function zlibCandidate(level: number): Candidate {
  return {
    id: `zlib-${level}`,
    family: "zlib",
    level,
    versions: "zlib 1.2.x (pako 2.x), memLevel 8, windowBits 15",
    create(onData) {
      const d = new Deflate({ level: level as 1, raw: true, windowBits: 15, memLevel: 8, chunkSize: 1 << 16 });
      d.onData = (chunk) => onData(chunk as Uint8Array);
      return {
        write(chunk) {
          if (chunk.length > 0) d.push(chunk, false);
        },
        end() {
          d.push(new Uint8Array(0), true);
          if (d.err) throw new Error(`zlib encoder: ${d.msg}`);
        },
      };
    },
  };
}

type Factory = () => Candidate[];

/** Families in order of real-world weight (GUIDE §4). */
const families: Factory[] = [() => [6, 1, 9, 5, 4, 3, 2, 7, 8].map(zlibCandidate)];

/** Register an encoder family (used by encoders that live in their own module). */
export function registerFamily(factory: Factory, first = false): void {
  if (first) families.unshift(factory);
  else families.push(factory);
}

export function allCandidates(): Candidate[] {
  return families.flatMap((f) => f());
}

export function candidateById(id: string): Candidate | undefined {
  return allCandidates().find((c) => c.id === id);
}
