import assert from "node:assert/strict";
import { decodeSockaddr, encodeSockaddr, errnoError, type Libc } from "./_libc.ts";
import { denoLibc } from "./_libc_deno.ts";

Deno.test("encodeSockaddr() and decodeSockaddr() round-trip IPv4 and IPv6 literals", () => {
  const cases: [string, number, string][] = [
    ["127.0.0.1", 20000, "127.0.0.1"],
    ["0.0.0.0", 1, "0.0.0.0"],
    ["::1", 65535, "::1"],
    ["::", 80, "::"],
    ["2001:db8:0:0:1:0:0:1", 443, "2001:db8::1:0:0:1"],
    ["::ffff:127.0.0.2", 10010, "::ffff:127.0.0.2"],
  ];
  for (const [hostname, port, canonical] of cases) {
    const bytes = encodeSockaddr({ hostname, port });
    assert.ok(bytes !== undefined, hostname);
    assert.equal(bytes.length, hostname.includes(":") ? 28 : 16);
    assert.deepEqual(decodeSockaddr(bytes), { hostname: canonical, port }, hostname);
  }
});

Deno.test("decodeSockaddr() tells every IPv4 address apart, seen before or not", () => {
  // More addresses than the decoder keeps written out, each decoded twice, with ports.
  const hostnames = ["255.255.255.255", "128.0.0.1", "1.2.3.4", "1.2.3.5", "4.3.2.1"];
  for (let i = 0; i < 5000; i++) hostnames.push(`10.${i >> 8}.${i & 255}.${(i * 7) & 255}`);
  for (const round of [1, 2]) {
    for (const [i, hostname] of hostnames.entries()) {
      const port = (i * round) & 0xffff;
      assert.deepEqual(decodeSockaddr(encodeSockaddr({ hostname, port })!), { hostname, port });
    }
  }
});

Deno.test("encodeSockaddr() leaves host names to the resolver", () => {
  assert.equal(encodeSockaddr({ hostname: "localhost", port: 1 }), undefined);
  assert.equal(encodeSockaddr({ hostname: "127.0.0.256", port: 1 }), undefined);
});

Deno.test("errnoError() speaks the one vocabulary, in Deno's words", () => {
  assert.equal(errnoError(111).code, "ConnectionRefused");
  assert.equal(errnoError(111).message, "connection refused");
  assert.equal(errnoError(104).code, "ConnectionReset");
  assert.equal(errnoError(32).code, "BrokenPipe");
  assert.equal(errnoError(98, "bind").message, "bind: address already in use");
  assert.equal(errnoError(9999).code, "Other");
  // A network event carries no stack: where l4chat noticed it says nothing.
  assert.equal(errnoError(111).stack?.includes("    at "), false);
});

const libc = denoLibc();

Deno.test({
  name: "discard() gives back the whole pages inside a buffer and leaves the edges alone",
  ignore: "unavailable" in libc,
  fn() {
    const buf = new Uint8Array(1024 * 1024 + 100).fill(0xff);
    const start = Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
    const first = Math.ceil(start / 4096) * 4096 - start;
    const end = Math.floor((start + buf.length) / 4096) * 4096 - start;
    (libc as Libc).discard(buf);
    // The pages given back read as zeros; the bytes of a page shared with other memory (the
    // allocator's own, at either end) are as they were.
    for (const at of [0, first - 1, end, buf.length - 1]) {
      if (at >= 0 && at < first || at >= end && at < buf.length) {
        assert.equal(buf[at], 0xff, `${at}`);
      }
    }
    assert.ok(buf.subarray(first, end).every((byte) => byte === 0));
    assert.ok(end - first >= 1024 * 1024 - 4096);
  },
});
