import assert from "node:assert/strict";
import { graphemes, type Key, LineEditor } from "./line_editor.ts";

/** Types `text` one character (code point) at a time, as a terminal delivers it. */
function typeText(editor: LineEditor, text: string): void {
  for (const ch of text) editor.key(ch, { name: ch.toLowerCase(), sequence: ch });
}

const key = (name: string, extra: Partial<Key> = {}): Key => ({ name, ...extra });

Deno.test("LineEditor types, submits and clears the line", () => {
  const editor = new LineEditor();
  typeText(editor, "hello");
  assert.equal(editor.text, "hello");
  assert.deepEqual(editor.key("\r", key("return")), { kind: "submit", text: "hello" });
  assert.equal(editor.text, "");
  assert.equal(editor.cursor, 0);
});

Deno.test("LineEditor moves and deletes by grapheme cluster (Korean, emoji)", () => {
  const editor = new LineEditor();
  typeText(editor, "가👍🏽é");
  assert.equal(editor.text, "가👍🏽é");
  editor.key(undefined, key("left"));
  editor.key(undefined, key("backspace"));
  assert.equal(editor.text, "가é");
  editor.key(undefined, key("home"));
  editor.key(undefined, key("delete"));
  assert.equal(editor.text, "é");
  editor.key(undefined, key("end"));
  editor.key(undefined, key("backspace"));
  assert.equal(editor.text, "");
  editor.key(undefined, key("backspace"));
  assert.equal(editor.text, "");
});

Deno.test("LineEditor inserts in the middle and drops control characters", () => {
  const editor = new LineEditor();
  typeText(editor, "ac");
  editor.key(undefined, key("left"));
  typeText(editor, "b");
  editor.insert("\x1b[31mX\x07");
  assert.equal(editor.text, "ab[31mXc");
  assert.equal(editor.cursor, 7);
  editor.key("\x1b[15~", key("f5", { sequence: "\x1b[15~" }));
  assert.equal(editor.text, "ab[31mXc");
});

Deno.test("LineEditor recalls history with up and down, keeping the draft", () => {
  const editor = new LineEditor(2);
  for (const line of ["one", "two", "three"]) {
    typeText(editor, line);
    editor.key("\r", key("return"));
  }
  assert.deepEqual(editor.history, ["two", "three"]);
  typeText(editor, "dra");
  editor.key(undefined, key("up"));
  assert.equal(editor.text, "three");
  editor.key(undefined, key("up"));
  assert.equal(editor.text, "two");
  editor.key(undefined, key("up"));
  assert.equal(editor.text, "two");
  editor.key(undefined, key("down"));
  editor.key(undefined, key("down"));
  assert.equal(editor.text, "dra");
  editor.key(undefined, key("down"));
  assert.equal(editor.text, "dra");
});

Deno.test("LineEditor keeps blank lines and repeats out of the history", () => {
  const editor = new LineEditor();
  for (const line of ["same", "same", "  "]) {
    typeText(editor, line);
    assert.equal(editor.key("\r", key("return")).kind, "submit");
  }
  assert.deepEqual(editor.history, ["same"]);
});

Deno.test("LineEditor control keys: quit, kill, word delete, redraw", () => {
  const editor = new LineEditor();
  assert.deepEqual(editor.key(undefined, key("d", { ctrl: true })), { kind: "quit" });
  assert.deepEqual(editor.key(undefined, key("c", { ctrl: true })), { kind: "quit" });
  assert.deepEqual(editor.key(undefined, key("l", { ctrl: true })), { kind: "redraw" });
  typeText(editor, "hello big world");
  editor.key(undefined, key("w", { ctrl: true }));
  assert.equal(editor.text, "hello big ");
  editor.key(undefined, key("a", { ctrl: true }));
  editor.key(undefined, key("f", { ctrl: true }));
  editor.key(undefined, key("k", { ctrl: true }));
  assert.equal(editor.text, "h");
  typeText(editor, "i there");
  editor.key(undefined, key("b", { ctrl: true }));
  editor.key(undefined, key("u", { ctrl: true }));
  assert.equal(editor.text, "e");
  // Ctrl-D on a line with text deletes the character under the cursor.
  assert.deepEqual(editor.key(undefined, key("d", { ctrl: true })), { kind: "edit" });
  assert.equal(editor.text, "");
});

Deno.test("graphemes() splits into user-perceived characters", () => {
  assert.deepEqual(graphemes("한글👨‍👩‍👧e\u0301"), ["한", "글", "👨‍👩‍👧", "e\u0301"]);
});
