import assert from "node:assert/strict";
import { backendKey, clientKey, hash32 } from "./_hash.ts";

Deno.test("hash32() keeps its values: load balancers of any version must agree", () => {
  // Changing these changes every source-hash and maglev pick: a breaking change.
  assert.equal(hash32(""), 2872998923);
  assert.equal(hash32("127.0.0.1"), 2377737407);
  assert.equal(hash32("127.0.0.1", 7), 3196258418);
  assert.equal(hash32("한국"), 2828478059);
});

Deno.test("clientKey() keeps the IP only and unmaps IPv4-mapped IPv6", () => {
  const cases: [string, string][] = [
    ["192.0.2.7", "192.0.2.7"],
    ["::ffff:192.0.2.7", "192.0.2.7"],
    ["::FFFF:192.0.2.7", "192.0.2.7"],
    ["2001:DB8::1", "2001:db8::1"],
  ];
  for (const [hostname, key] of cases) {
    assert.equal(clientKey({ hostname, port: 1234 }), key);
    assert.equal(clientKey({ hostname, port: 4321 }), key);
  }
  assert.equal(backendKey({ hostname: "::1", port: 10010 }), "[::1]:10010");
});
