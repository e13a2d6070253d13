import assert from "node:assert/strict";
import { type Frame, LineSplitter } from "./lines.ts";

const encoder = new TextEncoder();
const bytes = (text: string) => encoder.encode(text);

/** Feeds `chunks` and returns the frames as readable values. */
function split(maxLine: number, chunks: (string | Uint8Array)[]): (string | number)[] {
  const splitter = new LineSplitter(maxLine);
  const out: (string | number)[] = [];
  for (const chunk of chunks) {
    for (const frame of splitter.push(typeof chunk === "string" ? bytes(chunk) : chunk)) {
      out.push(show(frame));
    }
  }
  return out;
}

function show(frame: Frame): string | number {
  return frame.kind === "line" ? new TextDecoder().decode(frame.bytes) : -frame.length;
}

Deno.test("LineSplitter.push() joins a line split over several chunks", () => {
  assert.deepEqual(split(100, ["[jin] he", "l", "lo\n"]), ["[jin] hello"]);
});

Deno.test("LineSplitter.push() splits several lines in one chunk, in order", () => {
  assert.deepEqual(split(100, ["a\nb\nc\n"]), ["a", "b", "c"]);
});

Deno.test("LineSplitter.push() drops the \\r of a \\r\\n ending, even split from its \\n", () => {
  assert.deepEqual(split(100, ["a\r\n", "b\r", "\n"]), ["a", "b"]);
});

Deno.test("LineSplitter.push() keeps an empty line and holds an unfinished one", () => {
  const splitter = new LineSplitter(100);
  assert.deepEqual(splitter.push(bytes("\nabc")).map(show), [""]);
  assert.equal(splitter.pendingBytes, 3);
});

Deno.test("LineSplitter.push() accepts a line of exactly maxLine bytes", () => {
  assert.deepEqual(split(5, ["12345\n", "12345\r\n"]), ["12345", "12345"]);
});

Deno.test("LineSplitter.push() reports an overlong line once and resumes after it", () => {
  assert.deepEqual(split(5, ["123456\nok\n"]), [-6, "ok"]);
  assert.deepEqual(split(5, ["1234", "5678", "9\nok\n"]), [-9, "ok"]);
});

Deno.test("LineSplitter holds at most maxLine + 1 bytes of an overlong line", () => {
  const splitter = new LineSplitter(10);
  for (let i = 0; i < 1000; i++) splitter.push(bytes("xxxxxxx"));
  assert.ok(splitter.pendingBytes <= 11);
  assert.deepEqual(splitter.push(bytes("\nafter\n")).map(show), [-7000, "after"]);
});

Deno.test("LineSplitter passes invalid UTF-8 through unchanged", () => {
  const splitter = new LineSplitter(100);
  const frames = splitter.push(new Uint8Array([0xff, 0xfe, 0xc3, 0x0a]));
  assert.equal(frames.length, 1);
  assert.deepEqual(frames[0].kind === "line" && [...frames[0].bytes], [0xff, 0xfe, 0xc3]);
});

Deno.test("LineSplitter copies held bytes, so the caller may reuse its buffer", () => {
  const splitter = new LineSplitter(100);
  const buf = bytes("abc");
  splitter.push(buf);
  buf.set(bytes("xyz"));
  assert.deepEqual(splitter.push(bytes("d\n")).map(show), ["abcd"]);
});

Deno.test("LineSplitter gives the same lines however the stream is cut", () => {
  const stream = "[jin] hello\r\n[susu] 안녕\n\n[jang] x\n";
  const whole = split(100, [stream]);
  const all = bytes(stream);
  for (let cut = 1; cut < all.length; cut++) {
    assert.deepEqual(split(100, [all.subarray(0, cut), all.subarray(cut)]), whole);
  }
  assert.deepEqual(split(100, [...all].map((b) => new Uint8Array([b]))), whole);
});
