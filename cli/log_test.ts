import assert from "node:assert/strict";
import process from "node:process";
import { getLogger, type LogRecord, resetSync } from "@logtape/logtape";
import { flushLogs, formatJson, formatText, infoLine, setupLogging } from "./log.ts";

/** A record as LogTape hands it to a sink; `message` as LogTape's own parser reads the template. */
function record(
  rawMessage: string,
  message: unknown[],
  properties: Record<string, unknown>,
  timestamp = Date.UTC(2026, 11, 4, 1, 2, 3, 45),
): LogRecord {
  return { category: ["l4chat"], level: "info", rawMessage, message, timestamp, properties };
}

Deno.test("formatText() fills a template's placeholders from the record's properties", () => {
  const client = "<127.0.0.1,40000>";
  // The record's parsed message says "b": the line must come from the template and properties.
  assert.equal(
    formatText(record("client {client} -> {backend}", ["client ", client, " -> ", "b", ""], {
      client,
      backend: "127.0.0.1:10010",
    })),
    "2026-12-04 01:02:03.045 INFO  client <127.0.0.1,40000> -> 127.0.0.1:10010\n",
  );
  // Values that are not strings, and a placeholder with no property.
  assert.equal(
    formatText(record("{n} {o} {missing}", [], { n: 3, o: { a: 1 } })),
    '2026-12-04 01:02:03.045 INFO  3 {"a":1} undefined\n',
  );
});

Deno.test("formatText() takes LogTape's reading of a template it does not split itself", () => {
  // Escaped braces and nested keys: the record's message, as LogTape parsed it, is used.
  assert.equal(
    formatText(record("{{literal}} {a.b}", ["{literal} ", 7, ""], { a: { b: 7 } })),
    "2026-12-04 01:02:03.045 INFO  {literal} 7\n",
  );
});

Deno.test("formatText() and formatJson() write each record's own time", () => {
  const at = (ms: number) => record("x", ["x"], {}, ms);
  const first = Date.UTC(2026, 0, 1, 0, 0, 0, 1);
  const second = first + 1;
  assert.match(formatText(at(first)), /^2026-01-01 00:00:00\.001 /);
  assert.match(formatText(at(second)), /^2026-01-01 00:00:00\.002 /);
  assert.match(formatText(at(first)), /^2026-01-01 00:00:00\.001 /);
  assert.equal(JSON.parse(formatJson(at(second))).time, "2026-01-01T00:00:00.002Z");
  assert.equal(JSON.parse(formatJson(at(first))).time, "2026-01-01T00:00:00.001Z");
});

/** Collects what is written to stderr from now on, until `restore()` (which resets logging). */
function captureStderr(): { writes: string[]; restore(): void } {
  const writes: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((text: string) => writes.push(text) > 0) as typeof write;
  return {
    writes,
    restore: () => {
      process.stderr.write = write;
      resetSync();
    },
  };
}

Deno.test("setupLogging() writes the info lines of a task together, and a warning at once", async () => {
  const { writes, restore } = captureStderr();
  try {
    setupLogging("info", "text");
    const log = getLogger(["l4chat", "test"]);
    log.info("one");
    log.info("two");
    assert.deepEqual(writes, []);
    await Promise.resolve();
    assert.equal(writes.length, 1);
    assert.match(writes[0], /INFO {2}one\n.* INFO {2}two\n$/);
    // A warning goes out at once, after what was logged before it.
    log.info("three");
    log.warn("four");
    assert.equal(writes.length, 2);
    assert.match(writes[1], /INFO {2}three\n.* WARN {2}four\n$/);
    log.info("five");
    flushLogs();
    assert.equal(writes.length, 3);
    await Promise.resolve();
    assert.equal(writes.length, 3);
  } finally {
    restore();
  }
});

/** What `setupLogging(level, format)` writes to stderr while `body` runs. */
async function stderrOf(
  format: "text" | "json",
  body: () => void,
  level: "info" | "warn" = "info",
): Promise<string> {
  const { writes, restore } = captureStderr();
  try {
    setupLogging(level, format);
    body();
    await Promise.resolve();
    flushLogs();
    return writes.join("");
  } finally {
    restore();
  }
}

Deno.test("infoLine() writes what logger.info writes, braces in the values included", async () => {
  const log = getLogger(["l4chat", "test"]);
  const properties = { client: "<127.0.0.1,{1}>", backend: "b}", id: 7 };
  const text = await stderrOf("text", () => {
    infoLine(log, "client {client} -> {backend}", properties);
    log.info("client {client} -> {backend}", properties);
  });
  const lines = text.trimEnd().split("\n").map((line) => line.slice(24));
  assert.deepEqual(lines, [
    "INFO  client <127.0.0.1,{1}> -> b}",
    "INFO  client <127.0.0.1,{1}> -> b}",
  ]);
});

Deno.test("infoLine() gives the JSON format the line's properties", async () => {
  const log = getLogger(["l4chat", "test"]);
  const text = await stderrOf("json", () => infoLine(log, "client {id} left", { id: 7, why: "q" }));
  const record = JSON.parse(text);
  assert.equal(record.message, "client 7 left");
  assert.equal(record.id, 7);
  assert.equal(record.why, "q");
});

Deno.test("infoLine() logs nothing below the level set up", async () => {
  const log = getLogger(["l4chat", "test"]);
  const text = await stderrOf("text", () => infoLine(log, "client {id} left", { id: 7 }), "warn");
  assert.equal(text, "");
});
