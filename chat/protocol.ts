/**
 * The chat wire format, as the original programs spoke it: plain text lines, `[name] message`
 * from clients, and server notices that start with `* ` so any client can show them.
 */

const encoder = new TextEncoder();

/** The line a client sends for `text` typed by `name`, with its `\n`. */
export function formatChatLine(name: string, text: string): Uint8Array {
  return encoder.encode(`[${name}] ${text}\n`);
}

/** A server notice, `* text`, without its `\n` (as a server says lines, `LineBatch.addLines`). */
export function noticeLine(text: string): Uint8Array {
  return encoder.encode(`* ${text}`);
}

/** A server notice line, `* text\n`. */
export function formatNotice(text: string): Uint8Array {
  return withNewline(noticeLine(text));
}

/** `bytes` with a `\n` appended, as one new buffer. */
export function withNewline(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  out[bytes.length] = 0x0a;
  return out;
}

/** True for a typed line that means "quit": `q`, `Q` (as the original) or `/quit`. */
export function isQuit(typed: string): boolean {
  const text = typed.trim();
  return text === "q" || text === "Q" || text === "/quit";
}
