import assert from "node:assert/strict";
import { L4chat } from "./_helpers.ts";

const README = await Deno.readTextFile(new URL("../README.md", import.meta.url));

for (const sub of ["lb", "serv", "clnt", "demo"]) {
  Deno.test(`README documents every flag of l4chat ${sub} --help`, async () => {
    await using help = new L4chat([sub, "--help"]);
    assert.equal(await help.exited(), 0);
    const flags = new Set(help.stdout.lines.join("\n").match(/--[a-z][a-z-]+/g) ?? []);
    flags.delete("--help");
    assert.ok(flags.size > 0);
    for (const flag of flags) assert.ok(README.includes(`\`${flag}`), `README lacks ${flag}`);
  });
}
