import assert from "node:assert/strict";
import {
  cutToWidth,
  displayWidth,
  formatShownLine,
  growNameWidth,
  inputView,
  linesThatFit,
  MAX_NAME_WIDTH,
  NAME_COLORS,
  nameColor,
  parseShownLine,
  sanitize,
} from "./tty_format.ts";

// deno-lint-ignore no-control-regex
const plain = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, "");

Deno.test("displayWidth() counts Korean, CJK and emoji as two columns", () => {
  const cases: [string, number][] = [["jin", 3], ["진수", 4], ["漢字", 4], ["😀", 2], [
    "e\u0301",
    1,
  ]];
  for (const [text, width] of cases) assert.equal(displayWidth(text), width, text);
});

Deno.test("sanitize() removes escape sequences' control bytes and expands tabs", () => {
  assert.equal(sanitize("a\x1b[2Jb\x07c\td\r\u009b"), "a[2Jbc    d");
});

Deno.test("nameColor() is stable per name and one of the palette", () => {
  for (const name of ["jin", "진수", "sujungwef"]) {
    assert.equal(nameColor(name), nameColor(name));
    assert.ok((NAME_COLORS as readonly number[]).includes(nameColor(name)));
  }
  const colors = new Set(["a", "b", "c", "d", "e", "f", "g", "h"].map(nameColor));
  assert.ok(colors.size > 1, "names get different colours");
});

Deno.test("parseShownLine() tells chat lines, notices and anything else apart", () => {
  assert.deepEqual(parseShownLine("[진수] 안녕"), { name: "진수", text: "안녕", notice: false });
  assert.deepEqual(parseShownLine("[a b] [x] y"), { name: "a b", text: "[x] y", notice: false });
  assert.deepEqual(parseShownLine("* server shutting down"), {
    text: "* server shutting down",
    notice: true,
  });
  assert.deepEqual(parseShownLine("raw"), { text: "raw", notice: false });
  assert.deepEqual(parseShownLine("[] x"), { text: "[] x", notice: false });
});

Deno.test("formatShownLine() aligns names of any width and marks the user's own lines", () => {
  const options = { self: "진수", nameWidth: 8 };
  const rows = ["[jin] hello", "[진수] 안녕", "[수진이] 네"].map((line) =>
    plain(formatShownLine(parseShownLine(line), options))
  );
  assert.deepEqual(rows, ["  jin      hello", "> 진수     안녕", "  수진이   네"]);
  const starts = rows.map((row, i) =>
    displayWidth(row.slice(0, row.lastIndexOf(["hello", "안녕", "네"][i])))
  );
  assert.deepEqual(starts, [11, 11, 11]);
  const colored = formatShownLine(parseShownLine("[jin] hello"), options);
  assert.ok(colored.includes(`\x1b[${nameColor("jin")}mjin`));
  assert.ok(
    formatShownLine(parseShownLine("[진수] 안녕"), options).includes(
      `\x1b[1;${nameColor("진수")}m`,
    ),
  );
});

Deno.test("formatShownLine() cuts names wider than the column and dims notices", () => {
  const row = plain(
    formatShownLine(parseShownLine("[가나다라마바] x"), { self: "a", nameWidth: 8 }),
  );
  assert.equal(row, "  가나다~  x");
  assert.equal(
    formatShownLine(parseShownLine("* bye"), { self: "a", nameWidth: 8 }),
    "\x1b[2m* bye\x1b[0m",
  );
});

Deno.test("growNameWidth() grows to the widest name, within bounds", () => {
  assert.equal(growNameWidth(8, "jin"), 8);
  assert.equal(growNameWidth(8, "한국어이름입니다"), 16);
  assert.equal(growNameWidth(16, "jin"), 16);
  assert.equal(growNameWidth(8, "x".repeat(50)), MAX_NAME_WIDTH);
});

Deno.test("cutToWidth() never splits a wide character", () => {
  assert.equal(cutToWidth("가나다", 5), "가나");
  assert.equal(cutToWidth("abc", 5), "abc");
});

Deno.test("inputView() fits the prompt and text, keeping the cursor in view", () => {
  assert.deepEqual(inputView("jin> ", "hello", 5, 80), { line: "jin> hello", cursorColumn: 10 });
  assert.deepEqual(inputView("진수> ", "안녕 반가", 5, 80), {
    line: "진수> 안녕 반가",
    cursorColumn: 15,
  });
  // Too long: scrolled so that the cursor (at the end) is visible, one column left free.
  const long = inputView("jin> ", "abcdefghijklmnopqrstuvwxyz", 26, 20);
  assert.equal(long.line, "jin> nopqrstuvwxyz");
  assert.equal(long.cursorColumn, 18);
  assert.ok(displayWidth(long.line) <= 19);
  // Cursor at the start of a long line: the start is shown, the rest cut.
  assert.deepEqual(inputView("jin> ", "abcdefghijklmnopqrstuvwxyz", 0, 20), {
    line: "jin> abcdefghijklmn",
    cursorColumn: 5,
  });
  // Wide characters are never split at the edge.
  assert.deepEqual(inputView("> ", "가나다라마바사", 7, 12), {
    line: "> 라마바사",
    cursorColumn: 10,
  });
  assert.deepEqual(inputView("> ", "가나다라마바사", 0, 11), {
    line: "> 가나다라",
    cursorColumn: 2,
  });
});

Deno.test("linesThatFit() counts the rows long lines wrap onto", () => {
  assert.equal(linesThatFit(["a", "b", "c"], 5, 10), 3);
  assert.equal(linesThatFit(["a", "b", "c"], 2, 10), 2);
  assert.equal(linesThatFit(["a", "x".repeat(25), "c"], 4, 10), 2);
  assert.equal(linesThatFit(["가".repeat(10), "c"], 3, 10), 2);
  assert.equal(linesThatFit(["\x1b[31mred\x1b[0m"], 1, 3), 1);
});
