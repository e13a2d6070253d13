/**
 * A small JSONC parser (JSON with `//` and `/* *\/` comments and trailing commas) that keeps
 * where each value starts, so that config problems can be reported by line and column.
 */

/** A parsed value and where it starts in the text (1-based line and column). */
export type JsoncNode =
  | { kind: "object"; line: number; column: number; entries: Map<string, JsoncNode> }
  | { kind: "array"; line: number; column: number; items: JsoncNode[] }
  | { kind: "string"; line: number; column: number; value: string }
  | { kind: "number"; line: number; column: number; value: number }
  | { kind: "boolean"; line: number; column: number; value: boolean }
  | { kind: "null"; line: number; column: number };

/** Text that is not valid JSONC, with where it went wrong. */
export class JsoncSyntaxError extends SyntaxError {
  readonly line: number;
  readonly column: number;

  constructor(message: string, line: number, column: number) {
    super(message);
    this.name = "JsoncSyntaxError";
    this.line = line;
    this.column = column;
  }
}

/** Deepest nesting accepted, so hostile input cannot exhaust the stack. */
const MAX_DEPTH = 64;

/** Parses `text`; throws {@linkcode JsoncSyntaxError} at the first error. */
export function parseJsonc(text: string): JsoncNode {
  let pos = 0;
  let line = 1;
  let lineStart = 0;

  const fail = (message: string): never => {
    throw new JsoncSyntaxError(message, line, pos - lineStart + 1);
  };

  const skip = () => {
    while (pos < text.length) {
      const c = text[pos];
      if (c === "\n") {
        pos++;
        line++;
        lineStart = pos;
      } else if (c === " " || c === "\t" || c === "\r" || c === "\uFEFF") {
        pos++;
      } else if (c === "/" && text[pos + 1] === "/") {
        while (pos < text.length && text[pos] !== "\n") pos++;
      } else if (c === "/" && text[pos + 1] === "*") {
        const end = text.indexOf("*/", pos + 2);
        if (end === -1) fail("unterminated comment");
        for (let i = pos; i < end; i++) {
          if (text[i] === "\n") {
            line++;
            lineStart = i + 1;
          }
        }
        pos = end + 2;
      } else {
        return;
      }
    }
  };

  const value = (depth: number): JsoncNode => {
    // The root is depth 0, so MAX_DEPTH levels are depths 0 to MAX_DEPTH - 1.
    if (depth >= MAX_DEPTH) fail("nested too deeply");
    skip();
    const at = { line, column: pos - lineStart + 1 };
    const c = text[pos];
    if (c === "{") return object(depth, at);
    if (c === "[") return array(depth, at);
    if (c === '"') return { kind: "string", ...at, value: string() };
    if (c === "-" || (c >= "0" && c <= "9")) return number(at);
    for (const [word, node] of KEYWORDS) {
      if (text.startsWith(word, pos)) {
        pos += word.length;
        return { ...node, ...at } as JsoncNode;
      }
    }
    return fail(c === undefined ? "unexpected end of text" : `unexpected "${c}"`);
  };

  const object = (depth: number, at: { line: number; column: number }): JsoncNode => {
    pos++;
    const entries = new Map<string, JsoncNode>();
    skip();
    while (text[pos] !== "}") {
      if (text[pos] !== '"') fail(`expected a quoted key or "}"`);
      const keyAt = { line, column: pos - lineStart + 1 };
      const key = string();
      skip();
      if (text[pos] !== ":") fail(`expected ":" after "${key}"`);
      if (entries.has(key)) {
        // Point at the second key, not at its value.
        throw new JsoncSyntaxError(`duplicate key "${key}"`, keyAt.line, keyAt.column);
      }
      pos++;
      entries.set(key, value(depth + 1));
      skip();
      if (text[pos] === ",") {
        pos++;
        skip();
      } else if (text[pos] !== "}") {
        fail(`expected "," or "}"`);
      }
    }
    pos++;
    return { kind: "object", ...at, entries };
  };

  const array = (depth: number, at: { line: number; column: number }): JsoncNode => {
    pos++;
    const items: JsoncNode[] = [];
    skip();
    while (text[pos] !== "]") {
      items.push(value(depth + 1));
      skip();
      if (text[pos] === ",") {
        pos++;
        skip();
      } else if (text[pos] !== "]") {
        fail(`expected "," or "]"`);
      }
    }
    pos++;
    return { kind: "array", ...at, items };
  };

  const string = (): string => {
    let end = pos + 1;
    while (end < text.length && text[end] !== '"' && text[end] !== "\n") {
      end += text[end] === "\\" ? 2 : 1;
    }
    if (text[end] !== '"') return fail("unterminated string");
    let value: string;
    try {
      // JSON.parse checks the escapes and refuses raw control characters.
      value = JSON.parse(text.slice(pos, end + 1));
    } catch {
      return fail("bad string");
    }
    pos = end + 1;
    return value;
  };

  const number = (at: { line: number; column: number }): JsoncNode => {
    const match = NUMBER.exec(text.slice(pos, pos + 64));
    if (match === null) return fail("bad number");
    pos += match[0].length;
    return { kind: "number", ...at, value: Number(match[0]) };
  };

  const root = value(0);
  skip();
  if (pos < text.length) fail("unexpected text after the value");
  return root;
}

const NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/;
const KEYWORDS: [string, Partial<JsoncNode>][] = [
  ["true", { kind: "boolean", value: true }],
  ["false", { kind: "boolean", value: false }],
  ["null", { kind: "null" }],
];

/** Turns a node back into a plain value. */
export function toPlain(node: JsoncNode): unknown {
  switch (node.kind) {
    case "object":
      return Object.fromEntries([...node.entries].map(([key, child]) => [key, toPlain(child)]));
    case "array":
      return node.items.map(toPlain);
    case "null":
      return null;
    default:
      return node.value;
  }
}
