import { BLACK_HOLE_OK, denoBlackHole } from "./_black_hole.ts";
import { netContract } from "./_contract.ts";
import { denoNet } from "./deno.ts";

for (const c of netContract(denoNet(), BLACK_HOLE_OK ? { blackHole: denoBlackHole } : {})) {
  Deno.test({
    name: `denoNet: ${c.name}`,
    // Ignored only where the case says why (see ContractCase.ignore).
    ignore: c.ignore !== undefined,
    // A connect abandoned at its timeout ends later, when the kernel gives up on it.
    sanitizeOps: c.sanitizeOps,
    fn: c.fn,
  });
}
