import type { Conn } from "./mod.ts";
import {
  parseProxyHeader,
  PROXY_HEADER_MAX,
  type ProxyHeader,
  ProxyHeaderError,
} from "./proxy_protocol.ts";

/** A PROXY header read off a connection, and the client bytes that came after it. */
export interface ProxyHeaderRead {
  header: ProxyHeader;
  /** Bytes read past the header: the start of the client's own stream. */
  rest: Uint8Array;
}

/**
 * Reads a PROXY protocol header (v1 or v2) from the start of `conn`. Rejects with
 * {@linkcode ProxyHeaderError} when the bytes are not a valid header, the header is longer
 * than {@linkcode PROXY_HEADER_MAX}, the stream ends first, or it has not arrived within
 * `timeoutMs`. Does not close `conn`: the caller does.
 */
export async function readProxyHeader(conn: Conn, timeoutMs: number): Promise<ProxyHeaderRead> {
  const buf = new Uint8Array(PROXY_HEADER_MAX);
  let filled = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new ProxyHeaderError(`no PROXY header within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    while (true) {
      const parsed = parseProxyHeader(buf.subarray(0, filled));
      if (parsed.kind === "header") {
        return { header: parsed.header, rest: buf.slice(parsed.length, filled) };
      }
      if (filled === buf.length) throw new ProxyHeaderError("PROXY header too long");
      const n = await Promise.race([conn.read(buf.subarray(filled)), timeout]);
      if (n === null) throw new ProxyHeaderError("connection closed before a PROXY header");
      filled += n;
    }
  } finally {
    clearTimeout(timer);
  }
}
