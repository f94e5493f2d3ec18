import * as net from "node:net";
import * as tls from "node:tls";
import { Readable } from "node:stream";
import type { IncomingHttpHeaders } from "node:http";
import {
  abortError,
  checkScheme,
  combinedSignal,
  describeNetworkError,
  isInsecureHost,
  NetworkError,
  proxyFor,
  shortPath,
  timeoutError,
  watchSpeed,
  where,
  type HttpResponse,
  type HttpOptions,
} from "./http";
import { fillSink, type BlockSink } from "../util/file-writer";

/*
 * A GET client for blob bodies that reads the socket straight into a writer's blocks (net's
 * `onread`), so a layer's bytes are neither copied out of 64 KiB socket chunks nor passed through
 * the HTTP parser and stream machinery. On the bench VM that took a 207 MB loopback download from
 * ~220 ms of main-thread CPU (node:http) to ~50 ms. It speaks just enough HTTP/1.1: one request per
 * connection, bodies framed by Content-Length or by the connection's end. Anything else (chunked
 * bodies, 1xx) is refused with RawUnsupported before a byte of body is used; the registry client
 * then asks again through node:http, and keeps doing so for that host. Proxies (CONNECT tunnels)
 * go through node:http too.
 */

/** Response heads over this are refused (registries and object stores send well under 4 KiB). */
const MAX_HEAD = 64 * 1024;
/** Read size while a body streams as a plain Readable or waits for room in a sink. */
const SCRATCH_READ = 64 * 1024;

/** A response framing this client does not read: the caller asks again through node:http. */
export class RawUnsupported extends Error {}

/** Whether rawGet can fetch `url` (no proxy in the way). */
export function rawCapable(url: URL, opts: HttpOptions): boolean {
  return (url.protocol === "http:" || url.protocol === "https:") && proxyFor(url, opts) === undefined;
}

/** One GET on a fresh connection; resolves with the status and headers, the body still to read. */
export async function rawGet(
  url: URL,
  headers: Record<string, string>,
  opts: HttpOptions,
  signal?: AbortSignal,
): Promise<HttpResponse & { body: RawBody }> {
  checkScheme(url, opts);
  const body = new RawBody(url);
  const head = await body.start(headers, opts, signal);
  return { ...head, body, url };
}

type Mode = "head" | "hold" | "stream" | "pour";

interface ResponseHead {
  status: number;
  headers: IncomingHttpHeaders;
}

/**
 * The body of a rawGet response. Read it as a Readable, or give it a BlockSink with pourInto():
 * then reads land in the sink's blocks. `delivered` counts the body bytes handed on either way.
 */
export class RawBody extends Readable {
  private socket: net.Socket | undefined;
  private mode: Mode = "head";
  private head: Buffer | undefined = Buffer.allocUnsafe(MAX_HEAD);
  private headUsed = 0;
  private headWaiter: { resolve: (head: ResponseHead) => void; reject: (e: Error) => void } | undefined;
  /** Body bytes received but not handed on yet (read before a mode was chosen, or while a sink was full). */
  private readonly pending: Buffer[] = [];
  /** Body bytes still to come; Infinity: until the server closes the connection. */
  private left = Infinity;
  private total: number | undefined;
  private ended = false;
  private failure: Error | undefined;
  private sink: BlockSink | undefined;
  /** The sink space the current read goes into (undefined: a scratch buffer). */
  private lent: Buffer | undefined;
  /** The scratch buffer the current read goes into, when it is not lent space. */
  private scratch: Buffer | undefined;
  private pouring: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private draining = false;
  private idleTimeoutMs = 0;
  /** The socket was stopped (onread returned false) and not resumed since. */
  private stopped = false;
  private stopSpeed: (() => void) | undefined;
  delivered = 0;

  constructor(private readonly url: URL) {
    super({ highWaterMark: 1 << 20 });
    // Bodies thrown away (redirects, 401, a 503 before a retry) have no reader: their errors must not
    // go unhandled. Readers (pipeline, for await, finished) still get them through their own listener.
    this.on("error", () => undefined);
  }

  /** Connect, send the request, and wait for the response head. */
  start(headers: Record<string, string>, opts: HttpOptions, ownSignal?: AbortSignal): Promise<ResponseHead> {
    const url = this.url;
    const signal = combinedSignal(opts, ownSignal);
    const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`, "User-Agent: airpack"];
    for (const [name, value] of Object.entries(headers)) {
      if (/[\r\n]/.test(name + value)) throw new Error(`${url.host}: refusing a header with a line break (${name})`);
      lines.push(`${name}: ${value}`);
    }
    lines.push("Connection: close", "", "");
    const waiting = new Promise<ResponseHead>((resolve, reject) => {
      this.headWaiter = { resolve, reject };
    });
    const secure = url.protocol === "https:";
    const host = url.hostname.replace(/^\[|\]$/g, "");
    const port = Number(url.port || (secure ? 443 : 80));
    const onread = {
      buffer: (): Buffer => this.readBuffer(),
      callback: (n: number): boolean => this.onRead(n),
    };
    // tls.connect takes net's `onread` too (Node documents "any socket.connect() option"); the
    // type definitions leave it out.
    const tlsOptions: tls.ConnectionOptions & { onread: net.OnReadOpts } = {
      host,
      port,
      ...(net.isIP(host) ? {} : { servername: host }),
      rejectUnauthorized: !isInsecureHost(url.host, opts),
      ...(opts.ca ? { ca: [...tls.rootCertificates, opts.ca] } : {}),
      onread,
    };
    const socket = secure ? tls.connect(tlsOptions) : net.connect({ host, port, onread });
    this.socket = socket;
    // Until the response head is in, the connect time-out applies (as with node:http); then the idle one.
    this.idleTimeoutMs = opts.idleTimeoutMs;
    socket.setTimeout(opts.connectTimeoutMs);
    socket.on("timeout", () => this.fail(timeoutError(url, opts, this.mode === "head" ? "connect" : "idle")));
    socket.on("error", (err: NodeJS.ErrnoException) => this.fail(describeNetworkError(err, url)));
    socket.on("end", () => this.onEnd());
    socket.on("close", () => this.onEnd());
    // The throughput rule, head included; time the sink or the reader keeps us waiting does not count.
    this.stopSpeed = watchSpeed(
      socket,
      url,
      opts,
      () => this.held(),
      (err) => this.fail(err),
    );
    socket.once("close", () => this.stopSpeed?.());
    if (signal) {
      const onAbort = (): void => this.fail(abortError());
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener("abort", onAbort, { once: true });
        socket.once("close", () => signal.removeEventListener("abort", onAbort));
      }
    }
    socket.write(lines.join("\r\n"));
    return waiting;
  }

  /** Read the rest of the body into `sink` (instead of reading this stream). */
  pourInto(sink: BlockSink): Promise<void> {
    if (this.mode !== "hold") throw new Error("RawBody: pourInto() after the body was read");
    this.mode = "pour";
    this.sink = sink;
    const done = new Promise<void>((resolve, reject) => {
      this.pouring = { resolve, reject };
    });
    void this.drain();
    return done;
  }

  override _read(): void {
    if (this.mode === "hold") this.mode = "stream";
    if (this.mode !== "stream") return;
    while (this.pending.length > 0) {
      const chunk = this.pending.shift()!;
      this.delivered += chunk.length;
      if (!this.push(chunk)) return;
    }
    if (this.ended) this.push(null);
    else if (this.failure) this.destroy(this.failure);
    else this.resumeSocket();
  }

  private resumeSocket(): void {
    this.stopped = false;
    this.socket?.resume();
  }

  /** Whether airpack, not the server, is what the body waits for (see watchSpeed). */
  private held(): boolean {
    return (
      this.mode === "hold" ||
      this.stopped ||
      this.draining ||
      this.pending.length > 0 ||
      (this.mode === "stream" && this.readableLength > 0)
    );
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.fail(err ?? new Error(`${this.url.host}: download stopped`));
    callback(err);
  }

  /** The buffer the next read goes into; never empty (TLS would loop on a zero-length one). */
  private readBuffer(): Buffer {
    if (this.mode === "head" && this.head && this.headUsed < MAX_HEAD && !this.failure)
      return this.head.subarray(this.headUsed);
    // Lend the sink's space only when nothing is queued before it and no drain() is copying into it.
    if (this.mode === "pour" && this.pending.length === 0 && !this.draining && !this.ended && !this.failure) {
      const space = this.sink!.space();
      if (space) {
        this.lent = space.length > this.left ? space.subarray(0, this.left) : space;
        return this.lent;
      }
    }
    this.lent = undefined;
    this.scratch = Buffer.allocUnsafe(SCRATCH_READ);
    return this.scratch;
  }

  /** onread callback: false pauses the socket. */
  private onRead(n: number): boolean {
    try {
      const more = this.mode === "head" ? this.onHeadBytes(n) : this.onBodyBytes(n);
      if (!more) this.stopped = true;
      return more;
    } catch (err) {
      this.fail(err as Error);
      return false;
    }
  }

  private onHeadBytes(n: number): boolean {
    const head = this.head!;
    const searchFrom = Math.max(0, this.headUsed - 3);
    this.headUsed += n;
    const end = head.subarray(0, this.headUsed).indexOf("\r\n\r\n", searchFrom, "latin1");
    if (end < 0) {
      if (this.headUsed >= MAX_HEAD)
        throw new NetworkError(`${where(this.url)}: response head over ${MAX_HEAD} bytes`, false);
      return true;
    }
    const parsed = parseHead(head.toString("latin1", 0, end), this.url);
    this.total = parsed.contentLength;
    this.left = parsed.contentLength ?? Infinity;
    const early = head.subarray(end + 4, this.headUsed);
    this.head = undefined;
    this.mode = "hold";
    this.socket?.setTimeout(this.idleTimeoutMs);
    if (early.length > 0) this.keepBody(Buffer.from(early.subarray(0, Math.min(early.length, this.left))));
    if (this.left === 0) this.finishReceiving();
    this.headWaiter?.resolve({ status: parsed.status, headers: parsed.headers });
    this.headWaiter = undefined;
    return false;
  }

  private onBodyBytes(n: number): boolean {
    const lent = this.lent;
    const scratch = this.scratch;
    this.lent = undefined;
    this.scratch = undefined;
    if (this.ended || this.failure) return false; // bytes past the body's end are not ours
    const used = Math.min(n, this.left);
    let more = true;
    if (lent) {
      this.left -= used;
      this.delivered += used;
      this.sink!.filled(used);
    } else if (scratch) {
      // A short read keeps only its bytes, not the whole scratch buffer (TLS reads are 16 KiB records).
      const bytes = used < scratch.length / 2 ? Buffer.from(scratch.subarray(0, used)) : scratch.subarray(0, used);
      more = this.keepBody(bytes);
    }
    if (this.left === 0) this.finishReceiving();
    if (this.mode === "pour") {
      if (this.ended || this.pending.length > 0 || !this.sink!.space()) {
        void this.drain();
        return false;
      }
      return true;
    }
    return this.mode === "stream" && more;
  }

  /** Body bytes that arrived in a scratch buffer (or with the head); false: stop reading for now. */
  private keepBody(chunk: Buffer): boolean {
    this.left -= chunk.length;
    if (this.mode === "stream" && this.pending.length === 0) {
      this.delivered += chunk.length;
      return this.push(chunk);
    }
    // In order, and copied now if there is room: the next read then goes into lent space again.
    const rest = this.mode === "pour" && this.pending.length === 0 && !this.draining ? this.pourNow(chunk) : chunk;
    if (rest.length > 0) this.pending.push(rest);
    return false;
  }

  /** Copy what fits into the sink without waiting; returns the rest. */
  private pourNow(chunk: Buffer): Buffer {
    const n = fillSink(this.sink!, chunk);
    this.delivered += n;
    return chunk.subarray(n);
  }

  /**
   * Pour mode: hand queued bytes to the sink, wait for room, then read on. It stops copying as soon
   * as the body failed, and the pour settles only once it stopped, so `delivered` is final then (a
   * Range resume starts from it).
   */
  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    const sink = this.sink!;
    try {
      for (;;) {
        while (this.pending.length > 0 && !this.failure) {
          const rest = this.pourNow(this.pending[0]!);
          if (rest.length === 0) this.pending.shift();
          else {
            this.pending[0] = rest;
            await sink.whenSpace();
          }
        }
        if (this.failure || this.ended) break;
        if (sink.space()) {
          this.resumeSocket();
          break;
        }
        await sink.whenSpace();
      }
    } catch (err) {
      this.fail(err as Error);
    } finally {
      this.draining = false;
    }
    this.settlePour();
  }

  /** Resolve or reject pourInto(), once nothing is copying into the sink any more. */
  private settlePour(): void {
    if (!this.pouring || this.draining) return;
    if (this.failure) this.pouring.reject(this.failure);
    else if (this.ended && this.pending.length === 0) this.pouring.resolve();
    else return;
    this.pouring = undefined;
  }

  /** Every body byte is in: the connection has nothing more for us. */
  private finishReceiving(): void {
    this.ended = true;
    this.stopSpeed?.();
    this.socket?.destroy();
    if (this.mode === "stream" && this.pending.length === 0) this.push(null);
  }

  private onEnd(): void {
    if (this.ended || this.failure) return;
    if (this.mode !== "head" && this.total === undefined) {
      this.finishReceiving(); // no Content-Length: the body ends with the connection
      if (this.mode === "pour") void this.drain();
      return;
    }
    const got = this.total !== undefined ? this.total - this.left : 0;
    this.fail(
      new NetworkError(
        this.mode === "head"
          ? `${where(this.url)}: connection closed before a response`
          : `${where(this.url)}: connection closed after ${got} of ${this.total} bytes`,
        true,
      ),
    );
  }

  private fail(err: Error): void {
    if (this.failure || (this.ended && this.mode === "stream")) return; // a stream's bytes are all in
    this.failure = err;
    this.stopSpeed?.();
    this.pending.length = 0; // not delivered: a resume asks for them again
    this.socket?.destroy();
    this.headWaiter?.reject(err);
    this.headWaiter = undefined;
    this.settlePour();
    if (this.mode === "stream") this.destroy(err);
  }
}

interface ParsedHead {
  status: number;
  headers: IncomingHttpHeaders;
  contentLength: number | undefined;
}

function parseHead(text: string, url: URL): ParsedHead {
  const malformed = (why: string): NetworkError =>
    new NetworkError(`${where(url)}: malformed HTTP response to ${shortPath(url)} (${why})`, false);
  const lines = text.split("\r\n");
  const statusLine = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0] ?? "");
  if (!statusLine) throw new NetworkError(`${where(url)}: not an HTTP/1.1 response`, false);
  const status = Number(statusLine[1]);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    // As node's parser: a CR or LF that does not end a line, or another control character, is refused.
    // eslint-disable-next-line no-control-regex
    if (/[\x00-\x08\x0a-\x1f\x7f]/.test(line)) throw malformed("a bare CR, LF or control character in a header");
    const colon = line.indexOf(":");
    if (colon <= 0) throw malformed("a header line without a name");
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] !== undefined ? `${headers[name]}, ${value}` : value;
  }
  if (status < 200) throw new RawUnsupported(`${where(url)}: informational response ${status}`);
  const encoding = headers["transfer-encoding"];
  if (encoding !== undefined && headers["content-length"] !== undefined)
    throw malformed("Transfer-Encoding together with Content-Length");
  if (encoding !== undefined && encoding.toLowerCase() !== "identity")
    throw new RawUnsupported(`${where(url)}: transfer-encoding ${encoding}`);
  let contentLength: number | undefined;
  if (status === 204 || status === 304) contentLength = 0;
  else if (headers["content-length"] !== undefined) {
    const value = headers["content-length"];
    if (!/^\d{1,15}$/.test(value)) throw malformed(`bad Content-Length "${value}"`);
    contentLength = Number(value);
  }
  return { status, headers, contentLength };
}
