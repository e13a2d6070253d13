import assert from "node:assert/strict";
import type { Addr, Conn, Net, NetError, RelayCounters, RelayOptions } from "../net/mod.ts";
import { BackendPool, reconcile } from "./backend.ts";
import { createBalancer } from "./balancers/mod.ts";
import { defaultConfig } from "./config.ts";
import { NatTable } from "./nat_table.ts";
import { Proxy, type ProxyContext, type RefusalReason } from "./proxy.ts";

const addr = (port: number, hostname = "127.0.0.1"): Addr => ({ hostname, port });

/** A socket that is only addresses; it records whether it was closed. */
class FakeConn implements Conn {
  closed = false;
  constructor(readonly remoteAddr: Addr, readonly localAddr: Addr = addr(20000)) {}
  read(): Promise<number | null> {
    return Promise.resolve(null);
  }
  writeAll(): Promise<void> {
    return Promise.resolve();
  }
  closeWrite(): Promise<void> {
    return Promise.resolve();
  }
  close(): void {
    this.closed = true;
  }
}

/** The relay a test drives: each call waits for the test to end it. */
interface HeldRelay {
  client: Conn;
  upstream: FakeConn;
  options: RelayOptions | undefined;
  /** Ends both directions cleanly, as the real relays do: `onEnd` for each, then both closed. */
  end(): void;
}

/** A Net whose connects succeed at once and whose relays wait for the test, no sockets. */
function fakeNet(): { net: Net; relays: HeldRelay[] } {
  const relays: HeldRelay[] = [];
  let nextPort = 40000;
  const net = {
    runtime: "fake",
    connect: () => Promise.resolve(new FakeConn(addr(10001), addr(nextPort++))),
    relay(
      client: Conn,
      upstream: Conn,
      _counters: RelayCounters,
      options?: RelayOptions,
    ): Promise<NetError | undefined> {
      return new Promise((resolve) => {
        relays.push({
          client,
          upstream: upstream as FakeConn,
          options,
          end() {
            options?.onEnd?.("up");
            options?.onEnd?.("down");
            client.close();
            upstream.close();
            resolve(undefined);
          },
        });
      });
    },
  } as unknown as Net;
  return { net, relays };
}

function setup(settings: { maxConnsPerIp?: number; maxConns?: number }) {
  const { net, relays } = fakeNet();
  const config = defaultConfig(addr(20000), [{ addr: addr(10001) }]);
  config.maxConnsPerIp = settings.maxConnsPerIp ?? 0;
  config.maxConns = settings.maxConns ?? 0;
  const pool = new BackendPool();
  reconcile(pool, [{ name: "127.0.0.1:10001", config: config.backends[0] }], 0);
  const refused: RefusalReason[] = [];
  const ctx: ProxyContext = {
    net,
    pool,
    balancer: createBalancer(config.balance),
    nat: new NatTable(),
    health: { connected() {}, connectFailed() {} },
    config,
    events: { refused: (_client, reason) => refused.push(reason) },
  };
  return { proxy: new Proxy(ctx), relays, refused, nat: ctx.nat };
}

/** Resolves once `relays` holds `count` relays (the proxy's connect has run). */
async function relaysReach(relays: HeldRelay[], count: number): Promise<void> {
  for (let turn = 0; relays.length < count; turn++) {
    assert.ok(turn < 100, `${relays.length} relays, not ${count}`);
    await Promise.resolve();
  }
}

Deno.test("Proxy gives a client's place back before the relay closes its sockets", async () => {
  const { proxy, relays, refused } = setup({ maxConnsPerIp: 1 });
  const first = new FakeConn(addr(50001));
  const handled = proxy.handle(first);
  await relaysReach(relays, 1);
  // The same IP is at its limit while the first client is proxied.
  proxy.handle(new FakeConn(addr(50002)));
  assert.deepEqual(refused, ["max-conns-per-ip"]);
  // At the end, the place is free by the time the client can see its connection close.
  const relay = relays[0];
  const onEnd = relay.options!.onEnd!;
  let admittedWhenClosed: boolean | undefined;
  relay.options!.onEnd = (direction) => {
    onEnd(direction);
    if (direction !== "down") return;
    const before = refused.length;
    proxy.handle(new FakeConn(addr(50003)));
    admittedWhenClosed = refused.length === before;
  };
  relay.end();
  assert.equal(admittedWhenClosed, true, "the next client from that IP was refused");
  await handled;
  assert.ok(first.closed);
  // The place is given back once only: the third client holds the only one.
  proxy.handle(new FakeConn(addr(50004)));
  assert.deepEqual(refused, ["max-conns-per-ip", "max-conns-per-ip"]);
});

Deno.test("Proxy counts --max-conns until each relay ends, and takes a NAT row's local address from its upstream socket", async () => {
  const { proxy, relays, refused, nat } = setup({ maxConns: 2 });
  const handled = [
    proxy.handle(new FakeConn(addr(50001))),
    proxy.handle(new FakeConn(addr(50002))),
  ];
  await relaysReach(relays, 2);
  proxy.handle(new FakeConn(addr(50003, "127.0.0.2")));
  assert.deepEqual(refused, ["max-conns"]);
  const [row] = [...nat.rows()];
  assert.deepEqual(row.local, relays[0].upstream.localAddr);
  for (const relay of relays) relay.end();
  await Promise.all(handled);
  assert.equal(nat.size, 0);
  assert.equal(proxy.active, 0);
  proxy.handle(new FakeConn(addr(50004)));
  await relaysReach(relays, 3);
  assert.deepEqual(refused, ["max-conns"]);
});
