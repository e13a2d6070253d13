import assert from "node:assert/strict";
import { isIPv4, isIPv6 } from "node:net";
import fc from "fast-check";
import type { Addr, Conn } from "./mod.ts";
import {
  encodeProxyHeader,
  formatIp,
  parseIp,
  parseProxyHeader,
  PROXY_HEADER_MAX,
  ProxyHeaderError,
  type ProxyParse,
} from "./proxy_protocol.ts";
import { readProxyHeader } from "./read_proxy_header.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Runs `parse`; returns its result, or the error it threw, which must be a ProxyHeaderError. */
function tryParse(bytes: Uint8Array): ProxyParse | ProxyHeaderError {
  try {
    return parseProxyHeader(bytes);
  } catch (err) {
    assert.ok(err instanceof ProxyHeaderError, `threw ${err}`);
    return err;
  }
}

const ipv4 = fc.ipV4();
const ipv6 = fc.ipV6();
const port = fc.integer({ min: 0, max: 65535 });
const endpoint = (ip: fc.Arbitrary<string>) =>
  fc.record({ hostname: ip, port }) as fc.Arbitrary<Addr>;
const endpoints = fc.oneof(
  fc.tuple(endpoint(ipv4), endpoint(ipv4)),
  fc.tuple(endpoint(ipv6), endpoint(ipv6)),
  fc.tuple(endpoint(ipv4), endpoint(ipv6)),
);

/** A valid header of either version, as bytes. */
const validHeader = fc.tuple(fc.constantFrom(1 as const, 2 as const), endpoints).map((
  [version, [source, destination]],
) => ({ version, source, destination, bytes: encodeProxyHeader(version, source, destination) }));

/** Bytes that look like the start of a header often enough to reach deep into the parser. */
const hostileBytes = fc.oneof(
  fc.uint8Array({ maxLength: 600 }),
  // A valid header with bytes changed, cut or added.
  fc.tuple(validHeader, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }))), fc.nat())
    .map(([header, changes, cut]) => {
      const bytes = header.bytes.slice();
      for (const [at, value] of changes) bytes[at % bytes.length] = value;
      return bytes.subarray(0, cut % (bytes.length + 1));
    }),
  // A v1 line built from plausible and implausible words.
  fc.array(
    fc.oneof(
      fc.constantFrom("PROXY", "TCP4", "TCP6", "UNKNOWN", "", "65535", "65536", "01", "-1"),
      ipv4,
      ipv6,
      fc.string({ maxLength: 8 }),
    ),
    { maxLength: 8 },
  ).map((words) => encoder.encode(`PROXY ${words.join(" ")}\r\n`)),
);

/** Does `text` name an address as the specification allows (no zone, no leading zeros)? */
function isAddress(text: string, family: "TCP4" | "TCP6"): boolean {
  return family === "TCP4" ? isIPv4(text) : isIPv6(text) && !text.includes("%");
}

Deno.test("parseProxyHeader() throws only ProxyHeaderError, whatever the bytes", () => {
  fc.assert(fc.property(hostileBytes, (bytes) => void tryParse(bytes)), { numRuns: 2000 });
});

Deno.test("parseProxyHeader() accepts only headers the specification allows", () => {
  fc.assert(
    fc.property(hostileBytes, (bytes) => {
      const result = tryParse(bytes);
      if (result instanceof ProxyHeaderError || result.kind !== "header") return;
      const { header, length } = result;
      assert.ok(length <= bytes.length && length <= PROXY_HEADER_MAX);
      if (header.version === 1) {
        const line = decoder.decode(bytes.subarray(0, length));
        assert.ok(line.endsWith("\r\n") && length <= 107, line);
        assert.equal(line.indexOf("\n"), length - 1);
        const words = line.slice(0, -2).split(" ");
        assert.equal(words[0], "PROXY");
        if (words[1] === "UNKNOWN") return;
        assert.equal(words.length, 6, line);
        const family = words[1];
        assert.ok(family === "TCP4" || family === "TCP6", line);
        assert.ok(isAddress(words[2], family) && isAddress(words[3], family), line);
        for (const text of words.slice(4)) {
          assert.match(text, /^(0|[1-9]\d{0,4})$/);
          assert.ok(Number(text) <= 65535);
        }
        assert.equal(header.source?.port, Number(words[4]));
        assert.equal(header.destination?.port, Number(words[5]));
      } else {
        assert.equal(bytes[12] >> 4, 2);
        assert.ok((bytes[12] & 0x0f) <= 1);
        assert.equal(length, 16 + ((bytes[14] << 8) | bytes[15]));
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("parseProxyHeader() reads back what encodeProxyHeader() wrote, then stops", () => {
  fc.assert(
    fc.property(validHeader, fc.uint8Array({ maxLength: 64 }), (header, after) => {
      const bytes = new Uint8Array([...header.bytes, ...after]);
      const result = parseProxyHeader(bytes);
      assert.equal(result.kind, "header");
      if (result.kind !== "header") return;
      assert.equal(result.length, header.bytes.length);
      assert.equal(result.header.version, header.version);
      // Same address, written canonically (an IPv4 client of an IPv6 listener comes back mapped).
      const same = (parsed: Addr | undefined, original: Addr, other: Addr) => {
        assert.equal(parsed?.port, original.port);
        const mixed = original.hostname.includes(":") !== other.hostname.includes(":");
        const want = parseIp(original.hostname)!;
        const got = parseIp(parsed!.hostname)!;
        assert.deepEqual(mixed && want.length === 4 ? got.subarray(12) : got, want);
        assert.equal(parsed!.hostname, formatIp(got));
      };
      same(result.header.source, header.source, header.destination);
      same(result.header.destination, header.destination, header.source);
      // Every shorter prefix of a valid header is incomplete, never an error.
      for (let n = 0; n < header.bytes.length; n++) {
        assert.deepEqual(parseProxyHeader(header.bytes.subarray(0, n)), { kind: "incomplete" });
      }
    }),
    { numRuns: 300 },
  );
});

Deno.test("parseIp() accepts exactly the addresses node:net does (without zones)", () => {
  const text = fc.oneof(
    ipv4,
    ipv6,
    fc.string({ unit: fc.constantFrom(..."0123456789abcdefABCDEF:.%"), maxLength: 50 }),
  );
  fc.assert(
    fc.property(text, (candidate) => {
      const parsed = parseIp(candidate);
      const valid = candidate.includes(":")
        ? isAddress(candidate, "TCP6")
        : isAddress(candidate, "TCP4");
      assert.equal(parsed !== undefined, valid, candidate);
      if (parsed !== undefined) assert.deepEqual(parseIp(formatIp(parsed)), parsed);
    }),
    { numRuns: 2000 },
  );
});

/** A Conn that hands out `chunks` in turn, then end of stream (or never, if `hang`). */
function chunkConn(chunks: Uint8Array[], hang = false): Conn & { left: () => Uint8Array } {
  const queue = chunks.map((chunk) => chunk.slice());
  const addr = { hostname: "127.0.0.1", port: 1 };
  return {
    localAddr: addr,
    remoteAddr: addr,
    read(buf: Uint8Array): Promise<number | null> {
      while (queue.length > 0 && queue[0].length === 0) queue.shift();
      const head = queue[0];
      if (head === undefined) return hang ? new Promise(() => {}) : Promise.resolve(null);
      const n = Math.min(buf.length, head.length);
      buf.set(head.subarray(0, n));
      queue[0] = head.subarray(n);
      return Promise.resolve(n);
    },
    writeAll: () => Promise.resolve(),
    closeWrite: () => Promise.resolve(),
    close: () => {},
    left: () => new Uint8Array(queue.flatMap((chunk) => [...chunk])),
  };
}

function cut(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const point of points) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  chunks.push(bytes.subarray(start));
  return chunks;
}

Deno.test("readProxyHeader() gives the same header and client bytes however they arrive", async () => {
  await fc.assert(
    fc.asyncProperty(
      validHeader,
      fc.uint8Array({ maxLength: 1200 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      async (header, after, cuts) => {
        const stream = new Uint8Array([...header.bytes, ...after]);
        const conn = chunkConn(cut(stream, cuts));
        const read = await readProxyHeader(conn, 10_000);
        assert.deepEqual(
          read.header,
          parseProxyHeader(header.bytes).kind === "header"
            ? (parseProxyHeader(header.bytes) as { header: unknown }).header
            : undefined,
        );
        // Nothing of the client's own stream is lost or duplicated.
        assert.deepEqual(new Uint8Array([...read.rest, ...conn.left()]), after);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("readProxyHeader() rejects only with ProxyHeaderError, whatever arrives", async () => {
  await fc.assert(
    fc.asyncProperty(hostileBytes, fc.array(fc.nat(), { maxLength: 8 }), async (bytes, cuts) => {
      const whole = tryParse(bytes);
      try {
        const read = await readProxyHeader(chunkConn(cut(bytes, cuts)), 10_000);
        // Accepted: then the header is what a one-piece parse finds.
        assert.ok(!(whole instanceof ProxyHeaderError) && whole.kind === "header");
        assert.deepEqual(read.header, whole.header);
      } catch (err) {
        assert.ok(err instanceof ProxyHeaderError, `rejected with ${err}`);
        assert.ok(whole instanceof ProxyHeaderError || whole.kind === "incomplete");
      }
    }),
    { numRuns: 1000 },
  );
});

Deno.test("readProxyHeader() gives up on a header that never completes", async () => {
  const conn = chunkConn([encoder.encode("PROXY TCP4 1.2.3.4")], true);
  await assert.rejects(readProxyHeader(conn, 20), ProxyHeaderError);
});
