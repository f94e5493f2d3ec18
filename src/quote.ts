/**
 * Input-derived text for error messages: a name from a tar header, a field of a JSON document, a
 * header from a registry. Such text can hold NUL, control characters, carriage returns, newlines
 * or terminal escapes that would cut the one-line error or rewrite the user's terminal, so every
 * error that quotes input goes through quote(). It sits directly in src/ because every layer,
 * src/oci included, quotes input.
 */

/** Longest quoted text, in characters, before the rest is elided. */
export const MAX_QUOTED = 80;

/**
 * C0 and C1 controls, DEL, U+FFFD (what an undecodable byte became), line and paragraph
 * separators, bidi overrides and isolates: none of them may reach a terminal as they are.
 */
// eslint-disable-next-line no-control-regex -- control characters are what it finds
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffd"\\]/g;

function escapeChar(c: string): string {
  switch (c) {
    case "\n":
      return "\\n";
    case "\r":
      return "\\r";
    case "\t":
      return "\\t";
    case '"':
      return '\\"';
    case "\\":
      return "\\\\";
  }
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
}

/** `"text"`, escaped, cut at `max` characters with "…" after the closing quote. */
export function quote(text: string, max = MAX_QUOTED): string {
  const chars = Array.from(text);
  const shown = chars.length > max ? chars.slice(0, max).join("") : text;
  return `"${shown.replace(UNSAFE, escapeChar)}"${chars.length > max ? "…" : ""}`;
}

/** Bytes (a tar header field, a gzip name) quoted as latin1, so every byte shows as itself or an escape. */
export function quoteBytes(bytes: Uint8Array, max = MAX_QUOTED): string {
  return quote(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1"), max);
}

/** Any value read from input, for "got …": strings quoted, numbers and booleans as they are, else its type. */
export function quoteValue(value: unknown, max = MAX_QUOTED): string {
  if (typeof value === "string") return quote(value, max);
  if (typeof value === "number" || typeof value === "boolean") return String(value).slice(0, max);
  if (value === null) return "null";
  return Array.isArray(value) ? "an array" : typeof value === "object" ? "an object" : typeof value;
}
