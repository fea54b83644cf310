//! The committed JSON Schema of the protocol (`clients/typescript/src/generated/`) is the one the
//! frame types generate now: a change to a frame that was not regenerated fails here.

use std::path::Path;

const COMMITTED: &str = "clients/typescript/src/generated/protocol.schema.json";

#[test]
fn the_committed_protocol_schema_is_the_one_the_frame_types_generate() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(COMMITTED);
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let fresh = switchboard::protocol_schema_text();
    assert!(
        committed == fresh,
        "{COMMITTED} is out of date with the protocol's types: run `npm run generate` in \
         clients/typescript (it regenerates the schema and the TypeScript frame types) and \
         commit both files"
    );
}

#[test]
fn the_schema_describes_every_frame_union_and_their_shared_types() {
    let schema = switchboard::protocol_schema();
    let defs = schema["$defs"].as_object().expect("$defs");
    for name in [
        "ClientFrame",
        "AppFrame",
        "ServerFrame",
        "RunFrame",
        "Json",
        "Ref",
    ] {
        assert!(defs.contains_key(name), "{name} is defined");
    }
    let server_types: Vec<&str> = defs["ServerFrame"]["oneOf"]
        .as_array()
        .expect("ServerFrame is a union")
        .iter()
        .filter_map(|v| v["properties"]["type"]["const"].as_str())
        .collect();
    for frame in ["welcome", "message", "joined", "reply", "error", "gap"] {
        assert!(server_types.contains(&frame), "{frame} in {server_types:?}");
    }
    let join = defs["ClientFrame"]["oneOf"]
        .as_array()
        .expect("ClientFrame is a union")
        .iter()
        .find(|v| v["properties"]["type"]["const"] == "join")
        .expect("join is a client frame");
    assert!(
        join["properties"]["room"].is_object(),
        "the body is inlined"
    );
    assert_eq!(join["properties"]["ref"]["$ref"], "#/$defs/Ref");
}
