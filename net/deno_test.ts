import { BLACK_HOLE_OK, denoBlackHole } from "./_black_hole.ts";
import { netContract } from "./_contract.ts";
import { denoLibc } from "./_libc_deno.ts";
import { denoNet } from "./deno.ts";
import { openRelayRing } from "./epoll.ts";
import { denoRingSys } from "./_uring_deno.ts";

// Every kind of sockets Deno can run on: its own, the epoll engine, and that engine with its
// relays on io_uring, where each can run.
const libc = denoLibc();
const noLibc = "unavailable" in libc ? libc.unavailable : undefined;
const ring = noLibc === undefined ? openRelayRing(denoRingSys()) : { unavailable: noLibc };
const variants = [
  { io: "runtime" as const, unavailable: undefined },
  { io: "epoll" as const, unavailable: noLibc },
  { io: "uring" as const, unavailable: "unavailable" in ring ? ring.unavailable : undefined },
];

for (const { io, unavailable } of variants) {
  const net = unavailable === undefined ? denoNet({ io }) : undefined;
  const options = BLACK_HOLE_OK ? { blackHole: denoBlackHole } : {};
  for (const c of netContract(net ?? denoNet({ io: "runtime" }), options)) {
    Deno.test({
      name: `denoNet (--io ${io}): ${c.name}`,
      // Ignored only where the case or the engine says why (see ContractCase.ignore).
      ignore: c.ignore !== undefined || unavailable !== undefined,
      // A connect abandoned at its timeout ends later, when the kernel gives up on it.
      sanitizeOps: c.sanitizeOps,
      fn: c.fn,
    });
  }
}
