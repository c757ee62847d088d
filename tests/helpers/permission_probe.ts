/**
 * Tries each access named on the command line and prints one JSON line per
 * try: `{ "access": "read /etc/passwd", "outcome": "ok" | "<error name>" }`.
 * Run under a permission set, it tells the set's refusals (`NotCapable`)
 * apart from the operating system's (`PermissionDenied`, `NotFound`, …).
 *
 * Accesses: `read:<path>` (a file's text or a directory's entries),
 * `write:<dir>` (create and remove a file in it), `run:<program>`,
 * `ffi:<library>`.
 *
 * @module
 */

async function attempt(access: string): Promise<void> {
  const [kind, target] = [
    access.slice(0, access.indexOf(":")),
    access.slice(access.indexOf(":") + 1),
  ];
  switch (kind) {
    case "read": {
      const info = await Deno.stat(target);
      if (info.isDirectory) await Array.fromAsync(Deno.readDir(target));
      else await Deno.readTextFile(target);
      return;
    }
    case "write": {
      const file = `${target}/.probe-${crypto.randomUUID()}`;
      await Deno.writeTextFile(file, "probe");
      await Deno.remove(file);
      return;
    }
    case "run":
      await new Deno.Command(target, { stdout: "null", stderr: "null" }).output();
      return;
    case "ffi":
      Deno.dlopen(target, {}).close();
      return;
    default:
      throw new Error(`unknown access ${access}`);
  }
}

for (const access of Deno.args) {
  let outcome = "ok";
  try {
    await attempt(access);
  } catch (e) {
    outcome = e instanceof Error ? e.name : String(e);
  }
  console.log(JSON.stringify({ access, outcome }));
}
