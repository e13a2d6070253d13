import assert from "node:assert/strict";
import { readFile, stat, writeFile } from "node:fs/promises";
import { parseConfigText } from "./config.ts";
import { ConfigFileError, updateConfigFile } from "./config_file.ts";

Deno.test("updateConfigFile() writes the changed config back, keeping the file's mode", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/lb.jsonc`;
    await writeFile(
      path,
      '// comment\n{ "listen": ":9000", "hc-fall": 5, "backends": ["127.0.0.1:1", "127.0.0.1:2"] }\n',
      { mode: 0o640 },
    );
    const written = await updateConfigFile(path, (config) => ({
      ...config,
      backends: [config.backends[0], { ...config.backends[1], weight: 3, state: "drain" }],
    }));
    assert.equal(written.hcFall, 5);
    const text = await readFile(path, "utf8");
    const parsed = parseConfigText(text);
    assert.ok(parsed.ok);
    assert.deepEqual(parsed.config, written);
    assert.deepEqual(parsed.config.backends[1], {
      addr: { hostname: "127.0.0.1", port: 2 },
      weight: 3,
      state: "drain",
    });
    assert.equal((await stat(path)).mode & 0o777, 0o640);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["lb.jsonc"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("updateConfigFile() refuses a file with problems and leaves it alone", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/lb.jsonc`;
    const bad = '{ "backends": ["127.0.0.1:1"], "hc-fall": 0 }';
    await writeFile(path, bad);
    await assert.rejects(
      updateConfigFile(path, (config) => config),
      (err: Error) => err instanceof ConfigFileError && /fix it first: .*hc-fall/.test(err.message),
    );
    assert.equal(await readFile(path, "utf8"), bad);
    await assert.rejects(
      updateConfigFile(`${dir}/missing.jsonc`, (config) => config),
      ConfigFileError,
    );
    await assert.rejects(
      updateConfigFile(path.replace("lb", "x"), (config) => config),
      /Cannot read/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
