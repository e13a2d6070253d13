import assert from "node:assert/strict";
import {
  encodeProxyHeader,
  formatIp,
  parseIp,
  parseProxyHeader,
  PROXY_HEADER_MAX,
  ProxyHeaderError,
} from "./proxy_protocol.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const v4 = { hostname: "192.0.2.1", port: 53422 };
const lb4 = { hostname: "192.0.2.9", port: 20000 };
const v6 = { hostname: "2001:db8::1", port: 40000 };
const lb6 = { hostname: "::1", port: 20000 };

Deno.test("encodeProxyHeader() writes the v1 line of the specification", () => {
  assert.equal(
    decoder.decode(encodeProxyHeader(1, v4, lb4)),
    "PROXY TCP4 192.0.2.1 192.0.2.9 53422 20000\r\n",
  );
  assert.equal(
    decoder.decode(encodeProxyHeader(1, v6, lb6)),
    "PROXY TCP6 2001:db8::1 ::1 40000 20000\r\n",
  );
});

Deno.test("encodeProxyHeader() maps an IPv4 client on an IPv6 listener to TCP6", () => {
  assert.equal(
    decoder.decode(encodeProxyHeader(1, v4, lb6)),
    "PROXY TCP6 ::ffff:c000:201 ::1 53422 20000\r\n",
  );
});

Deno.test("encodeProxyHeader() writes the v2 signature, command, family and addresses", () => {
  const bytes = encodeProxyHeader(2, v4, lb4);
  assert.deepEqual(
    [...bytes.subarray(0, 16)],
    [13, 10, 13, 10, 0, 13, 10, 81, 85, 73, 84, 10, 0x21, 0x11, 0, 12],
  );
  assert.deepEqual([...bytes.subarray(16)], [192, 0, 2, 1, 192, 0, 2, 9, 0xd0, 0xae, 0x4e, 0x20]);
  assert.equal(encodeProxyHeader(2, v6, lb6).length, 16 + 36);
});

Deno.test("parseProxyHeader() reads back what encodeProxyHeader() wrote, v1 and v2", () => {
  for (const version of [1, 2] as const) {
    for (const [src, dst] of [[v4, lb4], [v6, lb6]]) {
      const bytes = encodeProxyHeader(version, src, dst);
      const withData = new Uint8Array([...bytes, ...encoder.encode("[jin] hello\n")]);
      const parsed = parseProxyHeader(withData);
      assert.deepEqual(parsed, {
        kind: "header",
        header: { version, command: "PROXY", source: src, destination: dst },
        length: bytes.length,
      });
    }
  }
});

Deno.test("parseProxyHeader() says incomplete for every proper prefix of a valid header", () => {
  for (const bytes of [encodeProxyHeader(1, v6, lb6), encodeProxyHeader(2, v6, lb6)]) {
    for (let n = 0; n < bytes.length; n++) {
      assert.deepEqual(parseProxyHeader(bytes.subarray(0, n)), { kind: "incomplete" }, `n=${n}`);
    }
  }
});

Deno.test("parseProxyHeader() accepts v1 UNKNOWN and v2 LOCAL without addresses", () => {
  assert.deepEqual(parseProxyHeader(encoder.encode("PROXY UNKNOWN\r\n")), {
    kind: "header",
    header: { version: 1, command: "PROXY" },
    length: 15,
  });
  const local = encodeProxyHeader(2, v4, lb4);
  local[12] = 0x20;
  const parsed = parseProxyHeader(local);
  assert.equal(parsed.kind === "header" && parsed.header.command, "LOCAL");
});

const MALFORMED: [string, string | Uint8Array][] = [
  ["a chat line", "[jin] PROXY TCP4\r\n"],
  ["a lower-case keyword", "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"],
  ["a missing port", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"],
  ["a bad IPv4 address", "PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n"],
  ["an IPv6 address under TCP4", "PROXY TCP4 ::1 ::1 1 2\r\n"],
  ["a port over 65535", "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"],
  ["a port with a leading zero", "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"],
  ["a bare LF", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"],
  ["an overlong v1 line", `PROXY TCP4 ${"1".repeat(120)}`],
  ["an unknown family", "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"],
];

for (const [what, input] of MALFORMED) {
  Deno.test(`parseProxyHeader() refuses ${what}`, () => {
    const bytes = typeof input === "string" ? encoder.encode(input) : input;
    assert.throws(() => parseProxyHeader(bytes), ProxyHeaderError);
  });
}

Deno.test("parseProxyHeader() refuses a v2 header over the length limit and bad v2 fields", () => {
  const big = encodeProxyHeader(2, v4, lb4);
  big[14] = 0xff;
  assert.throws(() => parseProxyHeader(big), ProxyHeaderError);
  const version3 = encodeProxyHeader(2, v4, lb4);
  version3[12] = 0x31;
  assert.throws(() => parseProxyHeader(version3), ProxyHeaderError);
  const short = encodeProxyHeader(2, v4, lb4);
  short[15] = 4;
  assert.throws(() => parseProxyHeader(short), ProxyHeaderError);
  assert.ok(PROXY_HEADER_MAX >= 107);
});

Deno.test("parseIp() and formatIp() round-trip IPv4 and IPv6 in short form", () => {
  for (
    const text of ["127.0.0.1", "::1", "::", "2001:db8::1", "fe80::1:2:3:4", "1:2:3:4:5:6:7:8"]
  ) {
    assert.equal(formatIp(parseIp(text)!), text);
  }
  assert.equal(formatIp(parseIp("::ffff:1.2.3.4")!), "::ffff:102:304");
  for (const bad of ["1.2.3", "1:2:3", "1::2::3", "12345::", "a.b.c.d", "", "1.2.3.4.5"]) {
    assert.equal(parseIp(bad), undefined, bad);
  }
});
