import assert from "node:assert/strict";
import { JsoncSyntaxError, parseJsonc, toPlain } from "./_jsonc.ts";

Deno.test("parseJsonc() reads JSON with comments and trailing commas", () => {
  const cases: [string, unknown][] = [
    ["{}", {}],
    ["[]", []],
    ['"a\\n\\u00e9"', "a\né"],
    ["-1.5e3", -1500],
    ["0", 0],
    ["[true, false, null]", [true, false, null]],
    ['{"a": 1, "b": [1, 2,],}', { a: 1, b: [1, 2] }],
    ['// a comment\n{"a": /* inline */ 1 // after\n}', { a: 1 }],
    ['/* multi\nline */ {"a": "// not a comment"}', { a: "// not a comment" }],
    ['\uFEFF{"a": {"b": {"c": []}}}', { a: { b: { c: [] } } }],
    ['\r\n\t{ "x" :\t"y" }\r\n', { x: "y" }],
  ];
  for (const [text, expected] of cases) {
    assert.deepEqual(toPlain(parseJsonc(text)), expected, JSON.stringify(text));
  }
});

Deno.test("parseJsonc() gives each value its 1-based line and column", () => {
  const text = [
    "{",
    "  // listen first",
    '  "listen": ":20000",',
    "  /* two",
    '     lines */ "backends": [',
    '    "127.0.0.1:1",',
    '\t{ "address": "127.0.0.1:2" },',
    "  ],",
    "}",
  ].join("\n");
  const root = parseJsonc(text);
  assert.equal(root.kind, "object");
  if (root.kind !== "object") return;
  assert.deepEqual([root.line, root.column], [1, 1]);
  const listen = root.entries.get("listen")!;
  assert.deepEqual([listen.line, listen.column], [3, 13]);
  const backends = root.entries.get("backends")!;
  assert.deepEqual([backends.line, backends.column], [5, 27]);
  assert.equal(backends.kind, "array");
  if (backends.kind !== "array") return;
  assert.deepEqual(backends.items.map((item) => [item.line, item.column]), [[6, 5], [7, 2]]);
});

Deno.test("parseJsonc() reports the first error with its line and column", () => {
  const cases: [string, string, number, number][] = [
    ["", "unexpected end of text", 1, 1],
    ["{", 'expected a quoted key or "}"', 1, 2],
    ['{"a": 1', 'expected "," or "}"', 1, 8],
    ['{"a": 1 "b": 2}', 'expected "," or "}"', 1, 9],
    ["[1 2]", 'expected "," or "]"', 1, 4],
    ["[,1]", 'unexpected ","', 1, 2],
    ['{"a",}', 'expected ":" after "a"', 1, 5],
    ["{a: 1}", 'expected a quoted key or "}"', 1, 2],
    ['{"a": 1,,}', 'expected a quoted key or "}"', 1, 9],
    ['\n\n  "abc', "unterminated string", 3, 3],
    ['"a\nb"', "unterminated string", 1, 1],
    ['"\\x"', "bad string", 1, 1],
    ['"a\tb"', "bad string", 1, 1],
    ["-", "bad number", 1, 1],
    ["01", "unexpected text after the value", 1, 2],
    ["tru", 'unexpected "t"', 1, 1],
    ["{} {}", "unexpected text after the value", 1, 4],
    ["/* never closed", "unterminated comment", 1, 1],
    ['{\n  "x": 1,\n  "x": 2\n}', 'duplicate key "x"', 3, 3],
  ];
  for (const [text, message, line, column] of cases) {
    assert.throws(
      () => parseJsonc(text),
      (err: unknown) => {
        assert.ok(err instanceof JsoncSyntaxError, JSON.stringify(text));
        assert.ok(err instanceof SyntaxError);
        assert.deepEqual([err.message, err.line, err.column], [message, line, column], text);
        return true;
      },
    );
  }
});

Deno.test("parseJsonc() accepts 64 levels of nesting and refuses 65", () => {
  assert.ok(parseJsonc("[".repeat(64) + "]".repeat(64)));
  assert.throws(
    () => parseJsonc("[".repeat(65) + "]".repeat(65)),
    { name: "JsoncSyntaxError", message: "nested too deeply" },
  );
  // Far deeper input is refused the same way, not with a stack overflow.
  assert.throws(() => parseJsonc('{"a":'.repeat(100_000)), { message: "nested too deeply" });
});
