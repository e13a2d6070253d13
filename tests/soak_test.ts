/**
 * Nothing lost: a bounded soak of several `serv` behind `lb`, clients joining and leaving at
 * random, every line carrying its sender and a sequence number. `L4CHAT_SOAK_SECONDS` sets
 * the duration (default 60).
 *
 * Each room also has an observer connected to its server directly for the whole soak: it sees
 * every line of the room in the one order the server relays them in. A client through `lb`
 * must then have received exactly a contiguous run of that order, from before its first own
 * line to its last, so nothing was lost, duplicated or reordered while it was connected.
 *
 * @module
 */
import assert from "node:assert/strict";
import { deadline, type L4chat, rssKiB, startLb, startServ } from "./_helpers.ts";

const SOAK_MS = Number(Deno.env.get("L4CHAT_SOAK_SECONDS") ?? "60") * 1000;
const ROOMS = 3;
const CLIENTS_AT_ONCE = 24;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A connection that records every line it reads and lets a caller wait for one. */
class Member {
  readonly conn: Deno.TcpConn;
  readonly lines: string[] = [];
  readonly reading: Promise<void>;
  #waiters = new Map<string, () => void>();

  constructor(conn: Deno.TcpConn) {
    this.conn = conn;
    this.reading = this.#read();
  }

  static async connect(port: number): Promise<Member> {
    return new Member(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  async #read(): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    let pending = "";
    try {
      while (true) {
        const n = await this.conn.read(buf);
        if (n === null) return;
        pending += decoder.decode(buf.subarray(0, n), { stream: true });
        let newline;
        while ((newline = pending.indexOf("\n")) !== -1) {
          const line = pending.slice(0, newline);
          pending = pending.slice(newline + 1);
          this.lines.push(line);
          this.#waiters.get(line)?.();
          this.#waiters.delete(line);
        }
      }
    } catch {
      // Closed by us.
    }
  }

  /** Sends `line` and waits until the room has relayed it back. */
  async say(line: string): Promise<void> {
    const echoed = new Promise<void>((resolve) => this.#waiters.set(line, resolve));
    const bytes = encoder.encode(`${line}\n`);
    let written = 0;
    while (written < bytes.length) written += await this.conn.write(bytes.subarray(written));
    await deadline(echoed, 10_000, `${line} never came back`);
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One visit: join through lb, say a few lines at random, leave; returns what it saw. */
async function visit(
  lb: L4chat,
  lbPort: number,
  name: string,
  until: number,
): Promise<{ name: string; room: number; lines: string[]; sent: string[] }> {
  // Ports are reused over a long soak: look only at lines logged after this connect began.
  const from = lb.stderr.mark;
  const member = await Member.connect(lbPort);
  const localPort = (member.conn.localAddr as Deno.NetAddr).port;
  const routed = await lb.stderr.waitFor(
    new RegExp(`client <127\\.0\\.0\\.1,${localPort}> -> 127\\.0\\.0\\.1:(\\d+)$`),
    { from },
  );
  const sent: string[] = [];
  const lifetimeMs = 200 + Math.random() * 3000;
  const leaveAt = Math.min(until, Date.now() + lifetimeMs);
  let seq = 0;
  do {
    const line = `[${name}] ${seq++}`;
    await member.say(line);
    sent.push(line);
    await sleep(20 + Math.random() * 150);
  } while (Date.now() < leaveAt);
  member.close();
  await member.reading;
  return { name, room: Number(routed[1]), lines: member.lines, sent };
}

Deno.test({
  name: `soak: clients come and go through lb for ${SOAK_MS / 1000} s and lose no line`,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const servs = await Promise.all(
      Array.from({ length: ROOMS }, () => startServ(["--presence", "off"])),
    );
    const ports = servs.map((serv) => serv.port);
    const { proc: lb, port: lbPort } = await startLb(ports, ["--hc-interval", "1s"]);
    const observers = new Map<number, Member>();
    try {
      for (const port of ports) observers.set(port, await Member.connect(port));
      for (const [port, observer] of observers) await observer.say(`[observer${port}] 0`);
      // Warm up, then take the memory baselines.
      const until = Date.now() + SOAK_MS;
      await Promise.all(
        Array.from({ length: 6 }, (_, i) => visit(lb, lbPort, `warm${i}`, Date.now() + 300)),
      );
      const pids = [lb.pid, ...servs.map((serv) => serv.proc.pid)];
      const baseKiB = await Promise.all(pids.map(rssKiB));

      const visits: Awaited<ReturnType<typeof visit>>[] = [];
      let nextName = 0;
      await Promise.all(
        Array.from({ length: CLIENTS_AT_ONCE }, async () => {
          while (Date.now() < until) {
            visits.push(await visit(lb, lbPort, `u${nextName++}`, until));
            await sleep(Math.random() * 100);
          }
        }),
      );
      // Let every relayed line reach the observers: each says one last line and sees it back.
      for (const [port, observer] of observers) await observer.say(`[observer${port}] 1`);

      let checkedLines = 0;
      for (const v of visits) {
        const order = observers.get(v.room)!.lines;
        assert.ok(v.sent.length > 0);
        // Its own lines, each once, in order.
        const own = v.lines.filter((line) => line.startsWith(`[${v.name}] `));
        assert.deepEqual(own, v.sent, `${v.name}: own lines`);
        // Everything it received: one contiguous run of the room's order.
        const start = order.indexOf(v.lines[0]);
        assert.ok(start !== -1, `${v.name}: ${v.lines[0]} not in room ${v.room}`);
        assert.deepEqual(v.lines, order.slice(start, start + v.lines.length), `${v.name}: run`);
        // Which covers its whole stay, from its first line to its last.
        assert.ok(v.lines.indexOf(v.sent[0]) !== -1);
        checkedLines += v.lines.length;
      }
      // Per sender, in every room: sequence numbers in order, each once.
      for (const [port, observer] of observers) {
        const last = new Map<string, number>();
        for (const line of observer.lines) {
          const [, name, seq] = /^\[(\S+)\] (\d+)$/.exec(line) ?? [];
          assert.ok(name !== undefined, `room ${port}: ${line}`);
          assert.equal(Number(seq), (last.get(name) ?? -1) + 1, `room ${port}: ${line}`);
          last.set(name, Number(seq));
        }
      }

      // Every NAT row is gone once every client has left.
      const lastNat = () => lb.stderr.lines.findLast((line) => line.includes("NAT table length"));
      while (!/ : 0$/.test(lastNat() ?? "")) {
        await lb.stderr.waitFor(/Current NAT table length : \d+$/, { from: lb.stderr.mark });
      }

      const endKiB = await Promise.all(pids.map(rssKiB));
      const roomLines = [...observers.values()].map((o) => o.lines.length);
      console.log(
        `soak: ${visits.length} visits, ${checkedLines} lines checked, rooms saw ` +
          `${roomLines.join("/")} lines; RSS lb ${baseKiB[0] >> 10} -> ${endKiB[0] >> 10} MiB, ` +
          `serv ${
            baseKiB.slice(1).map((kib, i) => `${kib >> 10} -> ${endKiB[i + 1] >> 10}`).join(", ")
          } MiB`,
      );
      // Bound: no process ends above twice its warmed-up memory plus 32 MiB of heap slack.
      for (const [i, kib] of endKiB.entries()) {
        assert.ok(kib <= 2 * baseKiB[i] + 32 * 1024, `process ${i}: ${baseKiB[i]} -> ${kib} KiB`);
      }
    } finally {
      for (const observer of observers.values()) observer.close();
      await Promise.all([...observers.values()].map((observer) => observer.reading));
      await lb[Symbol.asyncDispose]();
      for (const serv of servs) await serv.proc[Symbol.asyncDispose]();
    }
  },
});
