/**
 * A tiny real OCI image, built with the system tar + gzip (no airpack code):
 * buildTinyOciLayout, tarLayout, and sha256 digests of bytes.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs/promises";
import * as path from "node:path";

import { runOk } from "./process";
import { makeTempDir, removeDir } from "./temp";

export function sha256Hex(data: Buffer | string): string {
  return createHash("sha256").update(data).digest("hex");
}

export interface TinyImageOptions {
  /** io.containerd.image.name annotation (omitted when undefined). */
  containerdName?: string;
  /** org.opencontainers.image.ref.name annotation (omitted when undefined). */
  refName?: string;
  /** Files of the single layer, relative path -> content. */
  files?: Record<string, string>;
  /** gzip (default) or an uncompressed layer. */
  compression?: "gzip" | "none";
  architecture?: string;
}

export interface TinyImage {
  /** OCI image layout directory. */
  layoutDir: string;
  manifestDigest: string;
  manifestSize: number;
  configDigest: string;
  layerDigest: string;
  diffId: string;
}

async function writeBlob(layoutDir: string, data: Buffer): Promise<{ digest: string; size: number }> {
  const hex = sha256Hex(data);
  await fs.writeFile(path.join(layoutDir, "blobs", "sha256", hex), data);
  return { digest: `sha256:${hex}`, size: data.length };
}

/** Writes an OCI image layout with one image (one layer made by `tar` + `gzip -n`) into layoutDir. */
export async function buildTinyOciLayout(layoutDir: string, opts: TinyImageOptions = {}): Promise<TinyImage> {
  const work = await makeTempDir("airpack-tiny-image");
  try {
    const rootfs = path.join(work, "rootfs");
    const files = opts.files ?? {
      "etc/airpack-smoke.txt": "hello from the airpack peers smoke test\n",
    };
    for (const [rel, content] of Object.entries(files)) {
      const p = path.join(rootfs, rel);
      await fs.mkdir(path.dirname(p), { recursive: true });
      await fs.writeFile(p, content);
    }
    const layerTar = path.join(work, "layer.tar");
    await runOk("tar", [
      "--sort=name",
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      "--mtime=@0",
      "--format=posix",
      "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
      "-C",
      rootfs,
      "-cf",
      layerTar,
      ...(await fs.readdir(rootfs)).sort(),
    ]);
    const rawLayer = await fs.readFile(layerTar);
    const layerBytes = opts.compression === "none" ? rawLayer : (await runOk("gzip", ["-n", "-c", layerTar])).stdout;
    await fs.mkdir(path.join(layoutDir, "blobs", "sha256"), {
      recursive: true,
    });
    const layer = await writeBlob(layoutDir, layerBytes);
    const diffId = `sha256:${sha256Hex(rawLayer)}`;
    const config = await writeBlob(
      layoutDir,
      Buffer.from(
        JSON.stringify({
          architecture: opts.architecture ?? "amd64",
          os: "linux",
          config: { Cmd: ["/bin/sh"] },
          rootfs: { type: "layers", diff_ids: [diffId] },
          history: [{ created_by: "airpack peers smoke test" }],
        }),
      ),
    );
    const manifest = await writeBlob(
      layoutDir,
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          config: {
            mediaType: "application/vnd.oci.image.config.v1+json",
            ...config,
          },
          layers: [
            {
              mediaType:
                opts.compression === "none"
                  ? "application/vnd.oci.image.layer.v1.tar"
                  : "application/vnd.oci.image.layer.v1.tar+gzip",
              ...layer,
            },
          ],
        }),
      ),
    );
    const annotations: Record<string, string> = {};
    if (opts.containerdName !== undefined) annotations["io.containerd.image.name"] = opts.containerdName;
    if (opts.refName !== undefined) annotations["org.opencontainers.image.ref.name"] = opts.refName;
    const index = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...manifest,
          platform: { architecture: opts.architecture ?? "amd64", os: "linux" },
          ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
        },
      ],
    };
    await fs.writeFile(path.join(layoutDir, "index.json"), JSON.stringify(index));
    await fs.writeFile(path.join(layoutDir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    return {
      layoutDir,
      manifestDigest: manifest.digest,
      manifestSize: manifest.size,
      configDigest: config.digest,
      layerDigest: layer.digest,
      diffId,
    };
  } finally {
    await removeDir(work);
  }
}

/** Plain (uncompressed) tar of an OCI layout dir: oci-layout, index.json, blobs/ (+ any extra root files). */
export async function tarLayout(
  layoutDir: string,
  tarPath: string,
  extraRootFiles: readonly string[] = [],
): Promise<void> {
  await runOk("tar", [
    "--sort=name",
    "--owner=0",
    "--group=0",
    "--numeric-owner",
    "-C",
    layoutDir,
    "-cf",
    tarPath,
    "oci-layout",
    "index.json",
    ...extraRootFiles,
    "blobs",
  ]);
}

/** sha256 digest ("sha256:<hex>") of bytes. */
export function digestOf(data: Buffer | string): string {
  return `sha256:${sha256Hex(data)}`;
}
