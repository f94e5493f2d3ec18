import type { Credential } from "../registry/credentials";
import { UsageError } from "../util/errors";

/** --username with --password-stdin: the registry credential, or none when neither is given. */
export async function readCredential(
  username: string | undefined,
  passwordStdin: boolean,
): Promise<Credential | undefined> {
  if (!username && !passwordStdin) return undefined;
  if (!username || !passwordStdin) throw new UsageError("--username and --password-stdin go together");
  if (process.stdin.isTTY)
    throw new UsageError('--password-stdin: pipe the password in, e.g. printf %s "$PASS" | airpack …');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const password = Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
  if (!password) throw new UsageError("--password-stdin: stdin was empty");
  return { username, password };
}
