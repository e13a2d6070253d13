import assert from "node:assert/strict";
import { parseIperf, parseWrk } from "./_tools.ts";
import { median, quantile, spread } from "./_stats.ts";

const WRK_OUTPUT = `Running 1s test @ http://127.0.0.1:40000/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   702.41us  450.19us   9.14ms   91.62%
    Req/Sec    66.71k     3.15k   70.12k    80.00%
  Latency Distribution
     50%  612.00us
     75%  800.00us
     90%    1.10ms
     99%    2.50ms
  66371 requests in 1.00s, 10.51MB read
  Socket errors: connect 0, read 3, write 0, timeout 1
  Non-2xx or 3xx responses: 2
Requests/sec:  66372.15
Transfer/sec:     10.51MB
`;

Deno.test("parseWrk() reads requests/s, p50, p99 and errors", () => {
  assert.deepEqual(parseWrk(WRK_OUTPUT), {
    requestsPerSecond: 66372.15,
    p50Ms: 0.612,
    p99Ms: 2.5,
    errors: 6,
  });
});

Deno.test("parseWrk() rejects output without a latency distribution", () => {
  assert.throws(() => parseWrk("Requests/sec: 10\n"), /unexpected output/);
});

Deno.test("parseIperf() reads the receiver's totals and reports iperf3's error", () => {
  const json = JSON.stringify({
    end: { sum_received: { bits_per_second: 1.5e10, bytes: 1.875e9 } },
  });
  assert.deepEqual(parseIperf(json), { bitsPerSecond: 1.5e10, bytes: 1.875e9 });
  assert.throws(() => parseIperf(JSON.stringify({ error: "busy" })), /iperf3: busy/);
});

Deno.test("median(), spread() and quantile() of repeated measurements", () => {
  const cases: [number[], number, number][] = [
    [[3], 3, 0],
    [[1, 3], 2, 1],
    [[5, 1, 3], 3, 4 / 3],
    [[], NaN, 0],
  ];
  for (const [values, m, s] of cases) {
    assert.deepEqual(median(values), m);
    assert.equal(spread(values), s);
  }
  assert.equal(quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.99), 10);
  assert.equal(quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.5), 5);
});
