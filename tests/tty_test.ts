import assert from "node:assert/strict";
import stringWidth from "string-width";
import { l4chatCommand, RawClient, startServ } from "./_helpers.ts";
import { TmuxSession } from "./_tmux.ts";

/** tmux does not exist on Windows. */
const NO_TMUX = { ignore: Deno.build.os === "windows" };

/** Starts `clnt` for `name` at a tmux terminal, connected to `port`. */
async function startTtyClnt(port: number, name: string, columns = 60, rows = 12) {
  const { cmd, args } = l4chatCommand(["clnt", "127.0.0.1", String(port), name]);
  const term = await TmuxSession.start(cmd, args, { columns, rows });
  const prompt = `${name}> `;
  await term.waitForScreen(
    (screen) => screen[screen.length - 1] === prompt.trimEnd(),
    "the prompt",
  );
  return term;
}

/** The terminal column where `text` starts on `row`. */
function columnOf(row: string, text: string): number {
  const index = row.indexOf(text);
  assert.notEqual(index, -1, `"${text}" is not on "${row}"`);
  return stringWidth(row.slice(0, index));
}

Deno.test(
  "clnt at a terminal: a message arriving mid-typing leaves the typed line intact, Korean names line up",
  NO_TMUX,
  async () => {
    const { proc: serv, port } = await startServ(["--presence", "off"]);
    await using _serv = serv;
    await using term = await startTtyClnt(port, "진수");
    await term.type("안녕 반가");
    await term.waitForScreen((s) => s[s.length - 1] === "진수> 안녕 반가", "the half-typed line");

    using raw = await RawClient.connect(port);
    await raw.send("[jin] hello from jin\n[수진이] 한국어 이름입니다\n[sujungwef] hi 😀 all\n");
    const screen = await term.waitForScreen(
      (s) => s.some((row) => row.includes("hi 😀 all")),
      "the three messages",
    );
    // The line being typed is where it was, whole, with the cursor at its end.
    assert.equal(screen[screen.length - 1], "진수> 안녕 반가");
    assert.deepEqual(await term.cursor(), {
      x: stringWidth("진수> 안녕 반가"),
      y: screen.length - 1,
    });
    // Names of every width start their messages in one column.
    const rows = ["hello from jin", "한국어 이름입니다", "hi 😀 all"].map((text) =>
      screen.find((row) => row.includes(text))!
    );
    const columns = rows.map((row, i) => columnOf(row, ["hello", "한국어", "hi"][i]));
    assert.deepEqual(columns, [columns[0], columns[0], columns[0]], rows.join("\n"));
    assert.equal(columnOf(rows[1], "수진이"), columnOf(rows[0], "jin"));

    // Enter sends it; the user's own line comes back marked.
    await term.press("Enter");
    const sent = await term.waitForScreen(
      (s) => s.some((row) => row.startsWith("> 진수") && row.endsWith("안녕 반가")),
      "the user's own line, marked",
    );
    assert.equal(sent[sent.length - 1], "진수>");
    assert.equal(await raw.readLine(), "[jin] hello from jin");
    assert.equal(await raw.readLine(), "[수진이] 한국어 이름입니다");
    assert.equal(await raw.readLine(), "[sujungwef] hi 😀 all");
    assert.equal(await raw.readLine(), "[진수] 안녕 반가");

    // The up arrow recalls it.
    await term.press("Up");
    await term.waitForScreen((s) => s[s.length - 1] === "진수> 안녕 반가", "the recalled line");
    await term.press("C-u");
    await term.type("/quit");
    await term.press("Enter");
    await term.waitForScreen((s) => s.includes("exit=0"), "clnt exiting with 0");
  },
);

Deno.test(
  "clnt at a terminal: a resize redraws the messages and keeps the typed line",
  NO_TMUX,
  async () => {
    const { proc: serv, port } = await startServ(["--presence", "off"]);
    await using _serv = serv;
    await using term = await startTtyClnt(port, "jin", 60, 12);
    using raw = await RawClient.connect(port);
    for (let i = 1; i <= 20; i++) await raw.send(`[susu] message number ${i}\n`);
    await term.waitForScreen((s) => s.some((row) => row.includes("message number 20")), "line 20");
    await term.type("half typed");
    await term.resize(40, 6);
    const screen = await term.waitForScreen(
      (s) => s.length === 6 && s[5] === "jin> half typed" && s[4].includes("message number 20"),
      "the redrawn screen at 40x6",
    );
    // The rows above the input are the latest messages, in order, nothing garbled.
    assert.deepEqual(
      screen.slice(0, 5).map((row) => row.replace(/^ +susu +/, "")),
      [16, 17, 18, 19, 20].map((i) => `message number ${i}`),
    );
    await term.resize(60, 12);
    await term.waitForScreen(
      (s) =>
        s.length === 12 && s[11] === "jin> half typed" && s[10].includes("number 20") &&
        s[0].includes("number 10"),
      "the redrawn screen at 60x12",
    );
    await term.press("C-u");
    await term.type("q");
    await term.press("Enter");
    await term.waitForScreen((s) => s.includes("exit=0"), "clnt exiting with 0");
  },
);

Deno.test(
  "clnt at a terminal: Server disconnected ... on the normal screen after the chat's last lines, exit 1",
  NO_TMUX,
  async () => {
    const { proc: serv, port } = await startServ(["--presence", "off"]);
    await using _serv = serv;
    await using term = await startTtyClnt(port, "jin");
    await term.type("hello");
    await term.press("Enter");
    await term.waitForScreen((s) => s.some((line) => line.includes("hello")), "the line echoed");
    // A server that stops says so first; the view that showed it is gone once clnt exits.
    serv.kill("SIGTERM");
    const screen = await term.waitForScreen((s) => s.includes("exit=1"), "clnt exiting with 1");
    const at = screen.indexOf("exit=1");
    assert.equal(screen[at - 1], "Server disconnected ...");
    assert.equal(screen[at - 2], "* server shutting down");
    assert.match(screen[at - 3], /jin\s+hello$/);
  },
);
