import assert from "node:assert/strict";
import { EventHub, formatSse } from "./event_hub.ts";

async function readAll(stream: ReadableStream<Uint8Array>): Promise<string> {
  let text = "";
  const decoder = new TextDecoder();
  for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
  return text;
}

Deno.test("formatSse() writes one message with id, event and JSON data", () => {
  assert.equal(
    formatSse({ type: "open", timeMs: 5, data: { id: 1 } }, 7),
    'id: 7\nevent: open\ndata: {"id":1,"type":"open","timeMs":5}\n\n',
  );
});

Deno.test("EventHub.publish() drops a subscriber that stops reading, keeping the others", async () => {
  const hub = new EventHub({ queueSize: 3, keepAliveMs: 0 });
  const slow = hub.subscribe();
  const fast = hub.subscribe().getReader();
  assert.equal(hub.subscribers, 2);
  await fast.read(); // the greeting
  for (let i = 1; i <= 5; i++) {
    hub.publish("tick", { i }, i);
    const { value } = await fast.read();
    assert.match(new TextDecoder().decode(value), new RegExp(`"i":${i}`));
  }
  assert.equal(hub.subscribers, 1);
  assert.equal(hub.dropped, 1);
  // What was queued before the drop is still delivered, then the stream ends.
  const text = await readAll(slow);
  assert.match(text, /^retry: 2000\n/);
  assert.match(text, /"i":2/);
  assert.doesNotMatch(text, /"i":5/);
  hub.close();
  assert.equal((await fast.read()).done, true);
  assert.equal(hub.subscribers, 0);
});

Deno.test("EventHub.recent() keeps the last events; cancel() unsubscribes", async () => {
  const hub = new EventHub({ historySize: 2, keepAliveMs: 0 });
  const stream = hub.subscribe();
  for (let i = 1; i <= 3; i++) hub.publish("tick", { i }, i);
  assert.deepEqual(hub.recent().map((e) => e.data.i), [2, 3]);
  // Oldest first, wherever the ring's next place is.
  hub.publish("tick", { i: 4 }, 4);
  assert.deepEqual(hub.recent().map((e) => e.data.i), [3, 4]);
  hub.publish("tick", { i: 5 }, 5);
  assert.deepEqual(hub.recent().map((e) => e.data.i), [4, 5]);
  await stream.cancel();
  assert.equal(hub.subscribers, 0);
  hub.close();
  assert.equal(await readAll(hub.subscribe()), "");
});

Deno.test("EventHub.recent() before the history fills, and with none kept", () => {
  const hub = new EventHub({ historySize: 3, keepAliveMs: 0 });
  assert.deepEqual(hub.recent(), []);
  hub.publish("tick", { i: 1 }, 1);
  hub.publish("tick", { i: 2 }, 2);
  assert.deepEqual(hub.recent().map((e) => e.data.i), [1, 2]);
  const none = new EventHub({ historySize: 0, keepAliveMs: 0 });
  none.publish("tick", { i: 1 }, 1);
  assert.deepEqual(none.recent(), []);
});

Deno.test("EventHub sends keep-alive comments while someone subscribes", async () => {
  const hub = new EventHub({ keepAliveMs: 5 });
  const reader = hub.subscribe().getReader();
  await reader.read(); // the greeting
  const { value } = await reader.read();
  assert.equal(new TextDecoder().decode(value), ": keep-alive\n\n");
  await reader.cancel();
  assert.equal(hub.subscribers, 0);
});

Deno.test("EventHub.publish() makes an event's data only when it is sent or read", async () => {
  const hub = new EventHub({ historySize: 2, keepAliveMs: 0 });
  let made = 0;
  const data = (i: number) => () => ({ i, made: ++made });
  hub.publish("tick", data(1), 1);
  hub.publish("tick", data(2), 2);
  hub.publish("tick", data(3), 3);
  // Nobody subscribed: the first was overwritten without being made.
  assert.equal(made, 0);
  assert.deepEqual(hub.recent().map((e) => e.data), [{ i: 2, made: 1 }, { i: 3, made: 2 }]);
  // Made once: read again, the history gives what was made.
  assert.deepEqual(hub.recent().map((e) => e.data.made), [1, 2]);
  const stream = hub.subscribe();
  hub.publish("tick", data(4), 4);
  // A subscriber is sent it at once.
  assert.equal(made, 3);
  hub.close();
  const text = await readAll(stream);
  assert.match(text, /data: \{"i":4,"made":3,"type":"tick","timeMs":4\}/);
});
