import type { Readable } from "node:stream";
import type { Descriptor } from "../oci/descriptor";
import type { Store } from "./store";
import type { ImageSource, NamedImage } from "../transports/types";

/**
 * Reads through the store first, so a warm cache makes no requests for blobs it holds. It asks
 * Store.hasBlobNow(), not hasBlob(): it is the source of the store's own background downloads, which
 * must not wait for themselves.
 */
export class StoreFirstSource implements ImageSource {
  readonly blobUnchecked?: ImageSource["blobUnchecked"];
  readonly recipeFor?: ImageSource["recipeFor"];

  constructor(
    private readonly inner: ImageSource,
    private readonly store: Store,
  ) {
    if (inner.recipeFor) this.recipeFor = inner.recipeFor.bind(inner);
    const unchecked = inner.blobUnchecked?.bind(inner);
    if (unchecked) {
      this.blobUnchecked = async (desc, errorLabel, signal) =>
        (await store.hasBlobNow(desc)) ? store.blobNow(desc, errorLabel, signal) : unchecked(desc, errorLabel, signal);
    }
  }

  get label(): string {
    return this.inner.label;
  }

  images(): Promise<NamedImage[]> {
    return this.inner.images();
  }

  async fetchSmall(desc: Descriptor, errorLabel: string): Promise<Uint8Array> {
    if (await this.store.hasBlobNow(desc)) return this.store.fetchSmall(desc, errorLabel);
    return this.inner.fetchSmall(desc, errorLabel);
  }

  async blob(desc: Descriptor, errorLabel: string, signal?: AbortSignal): Promise<Readable> {
    if (await this.store.hasBlobNow(desc)) return this.store.blobNow(desc, errorLabel, signal);
    return this.inner.blob(desc, errorLabel, signal);
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    return (await this.store.hasBlobNow(desc)) || this.inner.hasBlob(desc);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
