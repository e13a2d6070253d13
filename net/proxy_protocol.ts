/**
 * The PROXY protocol, versions 1 (text) and 2 (binary), as HAProxy's proxy-protocol document
 * specifies them: the header a proxy sends before any byte of the client so that the server
 * learns the client's real address. Pure: bytes in, values out; no sockets.
 *
 * @example
 * ```ts
 * import { encodeProxyHeader, parseProxyHeader } from "./proxy_protocol.ts";
 * const bytes = encodeProxyHeader(1, { hostname: "192.0.2.1", port: 5000 }, {
 *   hostname: "192.0.2.9",
 *   port: 20000,
 * });
 * const parsed = parseProxyHeader(bytes);
 * if (parsed.kind === "header") console.log(parsed.header.source?.hostname); // 192.0.2.1
 * ```
 *
 * @module
 */
import type { Addr } from "./mod.ts";

/** A parsed PROXY header. */
export interface ProxyHeader {
  /** 1 (text) or 2 (binary). */
  version: 1 | 2;
  /** `PROXY`: a relayed connection; `LOCAL`: the proxy's own (health check), no addresses. */
  command: "PROXY" | "LOCAL";
  /** The client's address, when the header carries one (not for LOCAL or UNKNOWN). */
  source?: Addr;
  /** The address the client connected to, when the header carries one. */
  destination?: Addr;
}

/** What {@linkcode parseProxyHeader} found at the start of a stream. */
export type ProxyParse =
  /** A complete header of `length` bytes; client bytes follow it. */
  | { kind: "header"; header: ProxyHeader; length: number }
  /** Not enough bytes yet to decide; read more (up to {@linkcode PROXY_HEADER_MAX}). */
  | { kind: "incomplete" };

/** A header that is malformed, unsupported or too long. */
export class ProxyHeaderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProxyHeaderError";
  }
}

/** Longest header accepted, in bytes: a v1 line is at most 107; v2 TLVs past this are refused. */
export const PROXY_HEADER_MAX = 536;

const V1_MAX = 107;
const V2_SIGNATURE = new Uint8Array([
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
]);
const V1_PREFIX = new TextEncoder().encode("PROXY ");
const encoder = new TextEncoder();

/**
 * Encodes a PROXY header for a client at `source` that connected to `destination`. Mixed
 * families (an IPv4 client on an IPv6 listener) are sent as IPv6 with an IPv4-mapped address.
 */
export function encodeProxyHeader(version: 1 | 2, source: Addr, destination: Addr): Uint8Array {
  let src = parseIp(source.hostname);
  let dst = parseIp(destination.hostname);
  if (src === undefined || dst === undefined) {
    throw new ProxyHeaderError(
      `Cannot encode a PROXY header for ${source.hostname} -> ${destination.hostname}`,
    );
  }
  if (src.length !== dst.length) {
    src = toIpv6(src);
    dst = toIpv6(dst);
  }
  const v4 = src.length === 4;
  if (version === 1) {
    const family = v4 ? "TCP4" : "TCP6";
    return encoder.encode(
      `PROXY ${family} ${formatIp(src)} ${formatIp(dst)} ${source.port} ${destination.port}\r\n`,
    );
  }
  const addrLength = v4 ? 12 : 36;
  const out = new Uint8Array(16 + addrLength);
  out.set(V2_SIGNATURE, 0);
  out[12] = 0x21; // version 2, command PROXY
  out[13] = v4 ? 0x11 : 0x21; // AF_INET or AF_INET6, over STREAM
  out[14] = addrLength >> 8;
  out[15] = addrLength & 0xff;
  out.set(src, 16);
  out.set(dst, 16 + src.length);
  const ports = 16 + 2 * src.length;
  out[ports] = source.port >> 8;
  out[ports + 1] = source.port & 0xff;
  out[ports + 2] = destination.port >> 8;
  out[ports + 3] = destination.port & 0xff;
  return out;
}

/**
 * Parses the PROXY header at the start of `bytes` (v1 or v2, told apart by their first
 * bytes). Returns `incomplete` while more bytes could still make a valid header. Throws
 * {@linkcode ProxyHeaderError} as soon as the bytes cannot begin one, or when a header would
 * be longer than {@linkcode PROXY_HEADER_MAX}.
 */
export function parseProxyHeader(bytes: Uint8Array): ProxyParse {
  if (startsWithPrefix(bytes, V2_SIGNATURE)) return parseV2(bytes);
  if (startsWithPrefix(bytes, V1_PREFIX)) return parseV1(bytes);
  throw new ProxyHeaderError("not a PROXY protocol header");
}

/** True when `bytes` and `prefix` agree on their common length (so either may still match). */
function startsWithPrefix(bytes: Uint8Array, prefix: Uint8Array): boolean {
  const n = Math.min(bytes.length, prefix.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

function parseV1(bytes: Uint8Array): ProxyParse {
  if (bytes.length < V1_PREFIX.length) return { kind: "incomplete" };
  const end = bytes.indexOf(0x0a);
  if (end === -1) {
    if (bytes.length >= V1_MAX) throw new ProxyHeaderError("PROXY v1 header longer than 107 bytes");
    return { kind: "incomplete" };
  }
  if (end + 1 > V1_MAX) throw new ProxyHeaderError("PROXY v1 header longer than 107 bytes");
  if (end === 0 || bytes[end - 1] !== 0x0d) {
    throw new ProxyHeaderError("PROXY v1 header does not end in CRLF");
  }
  const line = new TextDecoder("ascii").decode(bytes.subarray(0, end - 1));
  const parts = line.split(" ");
  if (parts[1] === "UNKNOWN") {
    return { kind: "header", header: { version: 1, command: "PROXY" }, length: end + 1 };
  }
  if (parts.length !== 6 || (parts[1] !== "TCP4" && parts[1] !== "TCP6")) {
    throw new ProxyHeaderError(`malformed PROXY v1 header "${line.slice(0, 60)}"`);
  }
  const size = parts[1] === "TCP4" ? 4 : 16;
  const src = parseIp(parts[2]);
  const dst = parseIp(parts[3]);
  if (src?.length !== size || dst?.length !== size) {
    throw new ProxyHeaderError(`bad address in PROXY v1 header "${line.slice(0, 60)}"`);
  }
  const srcPort = parseV1Port(parts[4]);
  const dstPort = parseV1Port(parts[5]);
  return {
    kind: "header",
    header: {
      version: 1,
      command: "PROXY",
      source: { hostname: formatIp(src), port: srcPort },
      destination: { hostname: formatIp(dst), port: dstPort },
    },
    length: end + 1,
  };
}

function parseV1Port(text: string): number {
  if (!/^(0|[1-9]\d{0,4})$/.test(text) || Number(text) > 65535) {
    throw new ProxyHeaderError(`bad port "${text.slice(0, 10)}" in PROXY v1 header`);
  }
  return Number(text);
}

function parseV2(bytes: Uint8Array): ProxyParse {
  if (bytes.length < 16) return { kind: "incomplete" };
  const versionCommand = bytes[12];
  if (versionCommand >> 4 !== 2) throw new ProxyHeaderError("unsupported PROXY v2 version");
  const command = versionCommand & 0x0f;
  if (command > 1) throw new ProxyHeaderError("unsupported PROXY v2 command");
  const length = (bytes[14] << 8) | bytes[15];
  if (16 + length > PROXY_HEADER_MAX) {
    throw new ProxyHeaderError(`PROXY v2 header of ${16 + length} bytes is over the limit`);
  }
  if (bytes.length < 16 + length) return { kind: "incomplete" };
  const total = 16 + length;
  if (command === 0) {
    return { kind: "header", header: { version: 2, command: "LOCAL" }, length: total };
  }
  const family = bytes[13];
  const size = family === 0x11 ? 4 : family === 0x21 ? 16 : 0;
  if (size === 0) {
    // AF_UNSPEC, UNIX sockets or datagrams: the addresses are not for us to use.
    if ((family & 0x0f) === 0x02 || family === 0x00 || (family >> 4) === 3) {
      return { kind: "header", header: { version: 2, command: "PROXY" }, length: total };
    }
    throw new ProxyHeaderError("unsupported PROXY v2 address family");
  }
  if (length < 2 * size + 4) throw new ProxyHeaderError("PROXY v2 address block too short");
  const src = bytes.slice(16, 16 + size);
  const dst = bytes.slice(16 + size, 16 + 2 * size);
  const ports = 16 + 2 * size;
  return {
    kind: "header",
    header: {
      version: 2,
      command: "PROXY",
      source: { hostname: formatIp(src), port: (bytes[ports] << 8) | bytes[ports + 1] },
      destination: {
        hostname: formatIp(dst),
        port: (bytes[ports + 2] << 8) | bytes[ports + 3],
      },
    },
    length: total,
  };
}

/** Parses an IPv4 or IPv6 literal into 4 or 16 bytes; undefined if it is neither. */
export function parseIp(text: string): Uint8Array | undefined {
  if (text.includes(":")) return parseIpv6(text);
  return parseIpv4(text);
}

function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    if (!/^(0|[1-9]\d{0,2})$/.test(parts[i]) || Number(parts[i]) > 255) return undefined;
    out[i] = Number(parts[i]);
  }
  return out;
}

function parseIpv6(text: string): Uint8Array | undefined {
  if (text.length > 45) return undefined;
  let head = text;
  let v4tail: Uint8Array | undefined;
  const lastColon = text.lastIndexOf(":");
  if (text.slice(lastColon + 1).includes(".")) {
    v4tail = parseIpv4(text.slice(lastColon + 1));
    if (v4tail === undefined) return undefined;
    head = text.slice(0, lastColon + 1) + "0:0";
  }
  const halves = head.split("::");
  if (halves.length > 2) return undefined;
  const groups = (part: string) => part === "" ? [] : part.split(":");
  const left = groups(halves[0]);
  const right = halves.length === 2 ? groups(halves[1]) : [];
  const missing = 8 - left.length - right.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...left, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...right];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(all[i])) return undefined;
    const value = parseInt(all[i], 16);
    out[2 * i] = value >> 8;
    out[2 * i + 1] = value & 0xff;
  }
  if (v4tail !== undefined) out.set(v4tail, 12);
  return out;
}

/** Formats 4 or 16 address bytes as text (IPv6 in its short form, RFC 5952). */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  // The longest run of two or more zero groups becomes "::".
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart === -1) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}

function toIpv6(bytes: Uint8Array): Uint8Array {
  if (bytes.length === 16) return bytes;
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(bytes, 12);
  return out;
}
