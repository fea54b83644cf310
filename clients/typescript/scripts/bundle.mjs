// The browser bundle of the client: one minified script exposing the global `Switchboard`,
// committed as demo/switchboard.min.js because the server embeds it for its demo page (so the
// server builds and runs without Node).
//
//   node scripts/bundle.mjs          write demo/switchboard.min.js and report its size
//   node scripts/bundle.mjs --check  fail if the committed bundle is not what the sources build
import { build } from "esbuild";
import { readFileSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const target = `${root}demo/switchboard.min.js`;
const check = process.argv.includes("--check");

const result = await build({
  entryPoints: [`${root}src/index.ts`],
  bundle: true,
  format: "iife",
  globalName: "Switchboard",
  minify: true,
  target: "es2020",
  platform: "browser",
  legalComments: "none",
  banner: { js: "/* @switchboard/client: built by `npm run bundle` in clients/typescript; do not edit. */" },
  write: false,
});
const code = result.outputFiles[0].text;
const gzipped = gzipSync(code, { level: 9 }).length;
console.log(`switchboard.min.js: ${code.length} bytes minified, ${gzipped} bytes gzipped`);
if (check) {
  let committed = "";
  try {
    committed = readFileSync(target, "utf8");
  } catch {
    // Missing: reported below.
  }
  if (committed !== code) {
    console.error("demo/switchboard.min.js is not what the sources build: run `npm run bundle` and commit it");
    process.exit(1);
  }
} else {
  writeFileSync(target, code);
}
