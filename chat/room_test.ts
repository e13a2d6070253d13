import assert from "node:assert/strict";
import { Outbox } from "./outbox.ts";
import { type Member, Room } from "./room.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

class FakeMember implements Member {
  readonly id: number;
  readonly outbox: Outbox;
  constructor(id: number, maxOutput = 1024) {
    this.id = id;
    this.outbox = new Outbox(maxOutput);
  }
  deliver(line: Uint8Array): boolean {
    return this.outbox.push(line);
  }
  received(): string {
    return decoder.decode(this.outbox.take() ?? new Uint8Array());
  }
}

Deno.test("Room.say() delivers to every member, the sender included, in order", () => {
  const room = new Room<FakeMember>();
  const [a, b] = [new FakeMember(1), new FakeMember(2)];
  room.join(a);
  room.join(b);
  room.say(encoder.encode("[a] one\n"));
  room.say(encoder.encode("[b] two\n"));
  assert.equal(a.received(), "[a] one\n[b] two\n");
  assert.equal(b.received(), "[a] one\n[b] two\n");
});

Deno.test("Room.leave() stops delivery to that member only", () => {
  const room = new Room<FakeMember>();
  const [a, b] = [new FakeMember(1), new FakeMember(2)];
  room.join(a);
  room.join(b);
  assert.equal(room.leave(a), true);
  assert.equal(room.leave(a), false);
  room.say(encoder.encode("x\n"));
  assert.equal(a.received(), "");
  assert.equal(b.received(), "x\n");
  assert.equal(room.size, 1);
});

Deno.test("Room.say() evicts a member whose output passes its limit; others keep order", () => {
  const room = new Room<FakeMember>();
  const slow = new FakeMember(1, 10);
  const fast = new FakeMember(2);
  room.join(slow);
  room.join(fast);
  assert.deepEqual(room.say(encoder.encode("12345\n")), []);
  assert.deepEqual(room.say(encoder.encode("67890\n")), [slow]);
  assert.equal(room.size, 1);
  assert.deepEqual(room.say(encoder.encode("after\n")), []);
  assert.equal(slow.received(), "12345\n");
  assert.equal(fast.received(), "12345\n67890\nafter\n");
});

Deno.test("Outbox.take() coalesces pending lines into one buffer and empties", () => {
  const outbox = new Outbox(100);
  assert.equal(outbox.take(), undefined);
  outbox.push(encoder.encode("a\n"));
  outbox.push(encoder.encode("b\n"));
  assert.equal(outbox.pendingBytes, 4);
  assert.equal(decoder.decode(outbox.take()), "a\nb\n");
  assert.equal(outbox.pendingBytes, 0);
  assert.equal(outbox.take(), undefined);
});

Deno.test("Outbox.push() refuses what would pass maxBytes and queues nothing of it", () => {
  const outbox = new Outbox(5);
  assert.equal(outbox.push(encoder.encode("abc")), true);
  assert.equal(outbox.push(encoder.encode("def")), false);
  assert.equal(outbox.pendingBytes, 3);
});
