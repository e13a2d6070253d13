import assert from "node:assert/strict";
import fc from "fast-check";
import { type Frame, LineSplitter } from "./lines.ts";

const LF = 0x0a;
const CR = 0x0d;

/** Bytes rich in `\n` and `\r`, so that lines, empty lines and CRLF all turn up. */
const streamBytes = fc.array(
  fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 0, max: 255 }) },
    { weight: 1, arbitrary: fc.constantFrom(LF, CR) },
  ),
  { maxLength: 300 },
).map((values) => Uint8Array.from(values));

/** `bytes` cut at arbitrary points (empty chunks included). */
function chunked(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const point of points) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  chunks.push(bytes.subarray(start));
  return chunks;
}

/** What the splitter must report for `bytes` read in one go: the specification, written plainly. */
function expected(bytes: Uint8Array, maxLine: number): Frame[] {
  const frames: Frame[] = [];
  let start = 0;
  for (let end = bytes.indexOf(LF); end !== -1; end = bytes.indexOf(LF, start)) {
    let line = bytes.slice(start, end);
    if (line.length > 0 && line[line.length - 1] === CR) line = line.slice(0, -1);
    frames.push(
      line.length > maxLine
        ? { kind: "overlong", length: line.length }
        : { kind: "line", bytes: line },
    );
    start = end + 1;
  }
  return frames;
}

function normalize(frames: Frame[]): (string | number)[] {
  return frames.map((frame) =>
    frame.kind === "line" ? Array.from(frame.bytes).join(",") : -frame.length
  );
}

Deno.test("LineSplitter gives the same frames however the stream is cut", () => {
  fc.assert(
    fc.property(
      streamBytes,
      fc.array(fc.nat(), { maxLength: 20 }),
      fc.integer({ min: 0, max: 40 }),
      (bytes, cuts, maxLine) => {
        const splitter = new LineSplitter(maxLine);
        const frames: Frame[] = [];
        for (const chunk of chunked(bytes, cuts)) {
          frames.push(...splitter.push(chunk));
          // Memory stays bounded whatever the peer sends: a line and its `\r` at most.
          assert.ok(splitter.pendingBytes <= maxLine + 1);
        }
        assert.deepEqual(normalize(frames), normalize(expected(bytes, maxLine)));
      },
    ),
    { numRuns: 500 },
  );
});

Deno.test("LineSplitter keeps no reference to a chunk the caller reuses", () => {
  fc.assert(
    fc.property(streamBytes, fc.array(fc.nat(), { maxLength: 10 }), (bytes, cuts) => {
      const splitter = new LineSplitter(64);
      const frames: Frame[] = [];
      for (const chunk of chunked(bytes, cuts)) {
        const buffer = chunk.slice();
        frames.push(...splitter.push(buffer));
        buffer.fill(0x21);
      }
      assert.deepEqual(normalize(frames), normalize(expected(bytes, 64)));
    }),
    { numRuns: 200 },
  );
});
