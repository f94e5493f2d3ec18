export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  "os.version"?: string;
  "os.features"?: string[];
}

/** "linux/arm64/v8" → Platform. Throws a usage-style error on bad input. */
export function parsePlatformString(text: string): Platform {
  const parts = text.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p.length === 0)) {
    throw new Error(`invalid platform "${text}": expected os/arch[/variant], e.g. linux/amd64`);
  }
  const [os, arch, variant] = parts as [string, string, string?];
  return normalizePlatform({ os, architecture: arch, ...(variant ? { variant } : {}) });
}

/** Normalise architecture aliases the way containerd does. */
export function normalizePlatform(p: Platform): Platform {
  let arch = p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase();
  switch (arch) {
    case "x86_64":
    case "x86-64":
      arch = "amd64";
      variant = undefined;
      break;
    case "aarch64":
      arch = "arm64";
      if (variant === "8") variant = "v8";
      break;
    case "armhf":
      arch = "arm";
      variant = "v7";
      break;
    case "armel":
      arch = "arm";
      variant = "v6";
      break;
    case "i386":
      arch = "386";
      break;
  }
  if (arch === "arm64" && variant === "v8") variant = undefined;
  if (arch === "arm" && variant === undefined) variant = "v7";
  const out: Platform = { os: p.os.toLowerCase(), architecture: arch };
  if (variant) out.variant = variant;
  return out;
}

export function formatPlatform(p: Platform | undefined): string {
  if (!p) return "unknown";
  return [p.os, p.architecture, p.variant].filter(Boolean).join("/");
}

export function platformMatches(want: Platform, have: Platform | undefined): boolean {
  if (!have) return false;
  const a = normalizePlatform(want);
  const b = normalizePlatform(have);
  if (a.os !== b.os || a.architecture !== b.architecture) return false;
  return a.variant === undefined || a.variant === b.variant;
}

export function hostPlatform(): Platform {
  const archMap: Record<string, string> = {
    x64: "amd64",
    arm64: "arm64",
    arm: "arm",
    ia32: "386",
    ppc64: "ppc64le",
    s390x: "s390x",
    riscv64: "riscv64",
  };
  const os = process.platform === "win32" ? "windows" : process.platform;
  return normalizePlatform({ os, architecture: archMap[process.arch] ?? process.arch });
}

/** Attestation manifests (BuildKit provenance/SBOM) are listed as unknown/unknown. */
export function isAttestationPlatform(p: Platform | undefined): boolean {
  return p?.os === "unknown" && p.architecture === "unknown";
}
