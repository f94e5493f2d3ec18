import { parseJson } from "../oci/descriptor";
import { headerValue, statusError, type RegistryClient } from "./client";
import { readBody } from "./http";

/** Pages of a list answer are capped: a registry that sends more is not read further. */
const PAGE_BYTES = 4 * 1024 * 1024;
const MAX_PAGES = 10_000;

/** The next page of a paged list (Link: <…>; rel="next"), relative to the registry's /v2/. */
function nextPage(link: string | undefined): string | undefined {
  const m = link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link) : null;
  if (!m) return undefined;
  const path = new URL(m[1]!, "http://registry.invalid").pathname + new URL(m[1]!, "http://registry.invalid").search;
  return path.startsWith("/v2/") ? path.slice("/v2/".length) : undefined;
}

async function pagedList(
  client: RegistryClient,
  registry: string,
  repository: string,
  first: string,
  field: "repositories" | "tags",
  scope: string | undefined,
  errorLabel: string,
): Promise<string[]> {
  const out: string[] = [];
  let path: string | undefined = first;
  for (let page = 0; path !== undefined; page++) {
    if (page >= MAX_PAGES) throw new Error(`${errorLabel}: more than ${MAX_PAGES} pages`);
    const res = await client.send(registry, repository, path, scope ? { scope } : {});
    if (res.status !== 200) throw await statusError(res, errorLabel);
    const doc = parseJson(await readBody(res, PAGE_BYTES), errorLabel, PAGE_BYTES);
    const items = doc[field] ?? [];
    if (!Array.isArray(items) || items.some((t) => typeof t !== "string")) {
      throw new Error(`${errorLabel}: "${field}" is not a list of names`);
    }
    out.push(...(items as string[]));
    path = nextPage(headerValue(res, "link"));
  }
  return out;
}

/** The repositories of a registry (GET /v2/_catalog, every page). */
export function listRepositories(client: RegistryClient, registry: string): Promise<string[]> {
  return pagedList(
    client,
    registry,
    "",
    "_catalog?n=1000",
    "repositories",
    "registry:catalog:*",
    `${registry} catalog`,
  );
}

/** The tags of one repository (GET /v2/<repo>/tags/list, every page). */
export function listTags(client: RegistryClient, registry: string, repository: string): Promise<string[]> {
  return pagedList(
    client,
    registry,
    repository,
    `${repository}/tags/list?n=1000`,
    "tags",
    undefined,
    `${registry}/${repository} tags`,
  );
}
