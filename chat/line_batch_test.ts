import assert from "node:assert/strict";
import { LineBatch } from "./line_batch.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

Deno.test("LineBatch.take() gives the lines of every add in order, each with its newline", () => {
  const batch = new LineBatch();
  assert.equal(batch.empty, true);
  assert.equal(batch.take(), undefined);
  batch.addLines([encoder.encode("[a] one"), encoder.encode("[a] two")]);
  batch.addBytes(encoder.encode("[c] from another server\n"));
  batch.addLines([encoder.encode("[b] three")]);
  assert.equal(batch.empty, false);
  assert.equal(
    decoder.decode(batch.take()),
    "[a] one\n[a] two\n[c] from another server\n[b] three\n",
  );
  assert.equal(batch.empty, true);
  assert.equal(batch.take(), undefined);
});

Deno.test("LineBatch copies what it is given: the reader may reuse its buffer at once", () => {
  const batch = new LineBatch();
  const readBuffer = encoder.encode("[a] hi");
  batch.addLines([readBuffer]);
  readBuffer.fill(0x21);
  const taken = batch.take()!;
  batch.addLines([encoder.encode("[b] later")]);
  assert.equal(decoder.decode(taken), "[a] hi\n", "a take must not be overwritten by later adds");
});

Deno.test("LineBatch grows for a batch larger than its buffer, then starts small again", () => {
  const batch = new LineBatch(8);
  const lines = Array.from({ length: 100 }, (_, i) => encoder.encode(`line ${i}`));
  for (const line of lines) batch.addLines([line]);
  const expected = lines.map((line) => decoder.decode(line) + "\n").join("");
  assert.equal(decoder.decode(batch.take()), expected);
  batch.addLines([encoder.encode("x")]);
  assert.equal(decoder.decode(batch.take()), "x\n");
});
