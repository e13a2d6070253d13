import assert from "node:assert/strict";
import {
  decodeClusterMessage,
  encodeClusterMessage,
  isServerId,
  OriginFilter,
} from "./cluster_message.ts";

const encoder = new TextEncoder();
const bytes = (text: string) => encoder.encode(text);

Deno.test("encodeClusterMessage() and decodeClusterMessage() round-trip a line byte for byte", () => {
  const line = new Uint8Array([...bytes("[진수] 안녕 😀 "), 0xff, 0xfe, 0x0a]);
  const encoded = encodeClusterMessage({ serverId: "a1b2c3", seq: 42, line });
  assert.equal(new TextDecoder().decode(encoded.subarray(0, 18)), "l4chat/1 a1b2c3 42");
  const decoded = decodeClusterMessage(encoded);
  assert.deepEqual(decoded && { ...decoded, line: [...decoded.line] }, {
    serverId: "a1b2c3",
    seq: 42,
    line: [...line],
  });
});

Deno.test("encodeClusterMessage() refuses what it cannot carry", () => {
  const line = bytes("[a] hi\n");
  const cases: [string, () => unknown][] = [
    ["bad id", () => encodeClusterMessage({ serverId: "a b", seq: 1, line })],
    ["empty id", () => encodeClusterMessage({ serverId: "", seq: 1, line })],
    ["seq 0", () => encodeClusterMessage({ serverId: "a", seq: 0, line })],
    ["no newline", () => encodeClusterMessage({ serverId: "a", seq: 1, line: bytes("x") })],
    ["two lines", () => encodeClusterMessage({ serverId: "a", seq: 1, line: bytes("x\ny\n") })],
  ];
  for (const [what, encode] of cases) assert.throws(encode, RangeError, what);
});

Deno.test("decodeClusterMessage() returns undefined for anything malformed", () => {
  const cases: [string, string | Uint8Array][] = [
    ["empty", ""],
    ["no header end", "l4chat/1 a 1"],
    ["other magic", "l4chat/2 a 1\n[a] hi\n"],
    ["plain text", "hello\n"],
    ["missing seq", "l4chat/1 a\n[a] hi\n"],
    ["extra field", "l4chat/1 a 1 x\n[a] hi\n"],
    ["bad id", "l4chat/1 a.b 1\n[a] hi\n"],
    ["seq 0", "l4chat/1 a 0\n[a] hi\n"],
    ["negative seq", "l4chat/1 a -1\n[a] hi\n"],
    ["huge seq", "l4chat/1 a 99999999999999999\n[a] hi\n"],
    ["empty line", "l4chat/1 a 1\n"],
    ["line without newline", "l4chat/1 a 1\n[a] hi"],
    ["two lines", "l4chat/1 a 1\n[a] hi\n[a] ho\n"],
    ["header too long", `l4chat/1 ${"a".repeat(200)} 1\n[a] hi\n`],
  ];
  for (const [what, input] of cases) {
    const data = typeof input === "string" ? bytes(input) : input;
    assert.equal(decodeClusterMessage(data), undefined, what);
  }
});

Deno.test("isServerId() accepts letters, digits, - and _ up to 64 characters", () => {
  assert.equal(isServerId("0d774bf285f2"), true);
  assert.equal(isServerId("serv-10010_a"), true);
  assert.equal(isServerId("a".repeat(64)), true);
  assert.equal(isServerId("a".repeat(65)), false);
  assert.equal(isServerId("a:b"), false);
});

Deno.test("OriginFilter.accept() drops this server's own lines", () => {
  const filter = new OriginFilter("me");
  assert.deepEqual(filter.accept({ serverId: "me", seq: 1 }), { deliver: false, reason: "own" });
  assert.deepEqual(filter.accept({ serverId: "other", seq: 1 }), { deliver: true, missed: 0 });
});

Deno.test("OriginFilter.accept() delivers each line of another server once", () => {
  const filter = new OriginFilter("me");
  assert.deepEqual(filter.accept({ serverId: "b", seq: 5 }), { deliver: true, missed: 0 });
  assert.deepEqual(filter.accept({ serverId: "b", seq: 6 }), { deliver: true, missed: 0 });
  assert.deepEqual(filter.accept({ serverId: "b", seq: 6 }), {
    deliver: false,
    reason: "duplicate",
  });
  assert.deepEqual(filter.accept({ serverId: "b", seq: 3 }), {
    deliver: false,
    reason: "duplicate",
  });
  assert.deepEqual(filter.accept({ serverId: "c", seq: 6 }), { deliver: true, missed: 0 });
});

Deno.test("OriginFilter.accept() counts the lines a server published while unreachable", () => {
  const filter = new OriginFilter("me");
  filter.accept({ serverId: "b", seq: 1 });
  assert.deepEqual(filter.accept({ serverId: "b", seq: 5 }), { deliver: true, missed: 3 });
});

Deno.test("OriginFilter forgets the server heard from least recently past maxOrigins", () => {
  const filter = new OriginFilter("me", 2);
  filter.accept({ serverId: "a", seq: 1 });
  filter.accept({ serverId: "b", seq: 1 });
  filter.accept({ serverId: "a", seq: 2 });
  filter.accept({ serverId: "c", seq: 1 });
  assert.equal(filter.origins, 2);
  // "b" was forgotten: its next line counts as the first heard; "a" is still known.
  assert.deepEqual(filter.accept({ serverId: "b", seq: 1 }), { deliver: true, missed: 0 });
  assert.deepEqual(filter.accept({ serverId: "c", seq: 1 }), {
    deliver: false,
    reason: "duplicate",
  });
});
