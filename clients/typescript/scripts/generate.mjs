// The protocol's frame types, generated from the Rust definitions: the core crate describes
// every frame as JSON Schema (`switchboard::protocol_schema`, feature `schema`), and
// json-schema-to-typescript turns it into src/generated/protocol.ts. Both files are committed;
// src/protocol.ts re-exports the types under the SDK's names.
//
//   node scripts/generate.mjs          regenerate both files (runs cargo; `npm run generate`)
//   node scripts/generate.mjs --check  fail if protocol.ts is not what the committed schema
//                                      generates (the Rust test `protocol_schema` checks that
//                                      the schema is what the Rust types generate)
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { compile } from "json-schema-to-typescript";

const root = fileURLToPath(new URL("..", import.meta.url));
const repository = fileURLToPath(new URL("../../..", import.meta.url));
const schemaFile = `${root}src/generated/protocol.schema.json`;
const typesFile = `${root}src/generated/protocol.ts`;
const check = process.argv.includes("--check");

const BANNER = `/**
 * The frames of the Switchboard protocol, generated from the Rust definitions (the core crate's
 * \`protocol_schema\`) by \`npm run generate\` in clients/typescript: do not edit.
 * docs/PROTOCOL.md is the prose version; src/protocol.ts names these types for the SDK.
 */`;

if (!check) {
  const schema = execFileSync(
    "cargo",
    ["run", "--quiet", "-p", "switchboard", "--features", "schema", "--example", "protocol_schema"],
    { cwd: repository, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
  );
  writeFileSync(schemaFile, schema);
}

const schema = JSON.parse(readFileSync(schemaFile, "utf8"));
const types = await compile(schema, "Frame", {
  bannerComment: BANNER,
  additionalProperties: false,
  unreachableDefinitions: true,
  style: { printWidth: 100, singleQuote: false, trailingComma: "all" },
});

if (check) {
  let committed = "";
  try {
    committed = readFileSync(typesFile, "utf8");
  } catch {
    // Missing: reported below.
  }
  if (committed !== types) {
    console.error(
      "src/generated/protocol.ts is not what src/generated/protocol.schema.json generates: " +
        "run `npm run generate` in clients/typescript and commit both files",
    );
    process.exit(1);
  }
  console.log("src/generated/protocol.ts is up to date with the protocol schema");
} else {
  writeFileSync(typesFile, types);
  console.log(`wrote ${schemaFile} and ${typesFile}`);
}
