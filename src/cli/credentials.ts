import type { Argv } from "yargs";
import type { RegistryOptions } from "../registry/setup";
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

/** The registry-access options of every command that talks to registries (pack, push, copy). */
export function registryAccessOptions<T>(y: Argv<T>) {
  return y
    .option("insecure-registry", {
      type: "string",
      array: true,
      describe: "HOST[:PORT] that may use plain HTTP or unverified TLS (localhost/127.0.0.1 may use HTTP anyway)",
    })
    .option("ca-file", { type: "string", describe: "PEM file of extra CA certificates to trust for registries" })
    .option("username", { type: "string", describe: "registry user name (with --password-stdin)" })
    .option("password-stdin", { type: "boolean", default: false, describe: "read the registry password from stdin" });
}

export interface RegistryAccessArgs {
  "insecure-registry"?: string[];
  "ca-file"?: string;
  username?: string;
  "password-stdin": boolean;
}

/** RegistryOptions from those options (reads the password from stdin when asked). */
export async function registryAccess(a: RegistryAccessArgs): Promise<RegistryOptions> {
  const credential = await readCredential(a.username, a["password-stdin"]);
  return {
    insecureRegistries: a["insecure-registry"] ?? [],
    ...(a["ca-file"] ? { caFile: a["ca-file"] } : {}),
    ...(credential ? { credential } : {}),
  };
}
