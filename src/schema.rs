//! The JSON Schema of the wire protocol (feature `schema`), generated from the types that parse
//! and encode the frames, so that clients' types cannot drift from the hub's: the TypeScript
//! client's frame types are generated from this schema, and a test compares the committed copy
//! with a fresh one.
//!
//! The frames the hub sends are described as they are serialized (a field the hub omits when
//! absent is optional, never `null`); the frames clients send as they are parsed (a field with a
//! default is optional). Payloads are the `Json` definition (any JSON value). Two definitions
//! carry a `tsType`, the TypeScript spelling of what their schema says, for the generator: `Json`
//! (read-only) and stream names (`user:<id>` or `room:<id>`).
//!
//! This file assembles the document from the generated definitions; the passes that reshape
//! them live by concept: `frames` (frames as serialized and parsed), `payloads` (`Json` and
//! `Ref`), `generators` (what code generators read).

mod frames;
mod generators;
mod payloads;

use crate::id::ConnId;
use crate::protocol::{AppFrameSchema, ClientFrameSchema, RunFrame, ServerFrame};
use crate::stream::StreamId;
use frames::{add_ref, distribute_run_events, inline_variant_bodies, omitted_is_never_null};
use generators::{plain_descriptions, wrap_annotated_refs};
use payloads::{any_is_json, json_definition, ref_definition};
use schemars::generate::SchemaSettings;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::collections::BTreeSet;

impl JsonSchema for ConnId {
    fn schema_name() -> Cow<'static, str> {
        "ConnId".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A connection's id, unique in the cluster: `<shard>.<index>.<generation>`.",
            "type": "string",
            "pattern": "^[0-9]+\\.[0-9]+\\.[0-9]+$"
        })
    }
}

impl JsonSchema for StreamId {
    fn schema_name() -> Cow<'static, str> {
        "StreamName".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A stream: a user's (`user:<id>`) or a room's (`room:<id>`).",
            "type": "string",
            "pattern": "^(user|room):.+$",
            "tsType": "`user:${string}` | `room:${string}`"
        })
    }
}

/// The frame unions at the root of the schema, in the order of its `oneOf`, with what they are.
const ROOTS: [(&str, &str); 4] = [
    (
        "ClientFrame",
        "A frame of the protocol a client sends (docs/PROTOCOL.md section 2).",
    ),
    (
        "AppFrame",
        "An application frame a client sends: a `type` the server lists in `[frames] types`, with its `data`; the application answers it with `reply` or `error` when it carries a `ref`.",
    ),
    (
        "ServerFrame",
        "A frame the server sends, but agent-run frames (docs/PROTOCOL.md section 3).",
    ),
    (
        "RunFrame",
        "An agent-run frame: `type` is the event (`producer_lost`: the server ended the run because its producer went away), `stream`/`epoch`/`seq` its place in the user stream.",
    ),
];

/// The JSON Schema (draft 2020-12) of every frame of the protocol: `$defs` holds `ClientFrame`
/// (the protocol's client frames), `AppFrame` (an application frame), `ServerFrame` (every frame
/// the hub sends but agent-run frames) and `RunFrame` (an agent-run frame), and the types they
/// use; the root is any one of the four.
///
/// # Panics
///
/// If a definition shared by client and server frames were described two ways (the crate's own
/// types, checked by its tests), never because of input.
pub fn protocol_schema() -> Value {
    let mut server = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator();
    server.subschema_for::<ServerFrame<'static>>();
    server.subschema_for::<RunFrame<'static>>();
    let mut server_defs = server.take_definitions(true);
    for schema in server_defs.values_mut() {
        omitted_is_never_null(schema);
    }
    distribute_run_events(&mut server_defs);

    let mut client = SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator();
    client.subschema_for::<ClientFrameSchema>();
    client.subschema_for::<AppFrameSchema>();
    let mut client_defs = client.take_definitions(true);
    rename(&mut client_defs, "ClientFrameSchema", "ClientFrame");
    rename(&mut client_defs, "AppFrameSchema", "AppFrame");
    inline_variant_bodies(&mut client_defs);
    for name in ["ClientFrame", "AppFrame"] {
        if let Some(schema) = client_defs.get_mut(name) {
            add_ref(schema);
        }
    }

    let mut defs = server_defs;
    for (name, schema) in client_defs {
        match defs.get(&name) {
            Some(existing) if *existing != schema => {
                panic!("`{name}` is described differently in client and server frames")
            }
            _ => {
                defs.insert(name, schema);
            }
        }
    }
    for schema in defs.values_mut() {
        any_is_json(schema, None);
    }
    defs.insert("Json".into(), json_definition());
    defs.insert("Ref".into(), ref_definition());
    keep_reachable(&mut defs);
    for (name, description) in ROOTS {
        if let Some(Value::Object(root)) = defs.get_mut(name) {
            root.insert("description".into(), json!(description));
        }
    }
    for schema in defs.values_mut() {
        wrap_annotated_refs(schema);
        plain_descriptions(schema);
    }

    let roots: Vec<Value> = ROOTS
        .iter()
        .map(|(name, _)| json!({ "$ref": format!("#/$defs/{name}") }))
        .collect();
    canonical(json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Frame",
        "description": "A frame of the Switchboard protocol (docs/PROTOCOL.md): a JSON object in one WebSocket text message.",
        "oneOf": roots,
        "$defs": defs,
    }))
}

/// [`protocol_schema`] as the text of the committed file: pretty-printed, ending in a newline.
pub fn protocol_schema_text() -> String {
    let mut text =
        serde_json::to_string_pretty(&protocol_schema()).expect("a JSON value always serializes");
    text.push('\n');
    text
}

fn rename(defs: &mut Map<String, Value>, from: &str, to: &str) {
    if let Some(schema) = defs.remove(from) {
        defs.insert(to.into(), schema);
    }
}

/// Keeps only the definitions the frames use (client frame bodies are inlined).
fn keep_reachable(defs: &mut Map<String, Value>) {
    let mut reached: BTreeSet<String> = BTreeSet::new();
    let mut pending: Vec<String> = ROOTS.iter().map(|(r, _)| (*r).to_owned()).collect();
    while let Some(name) = pending.pop() {
        if !reached.insert(name.clone()) {
            continue;
        }
        if let Some(schema) = defs.get(&name) {
            collect_refs(schema, &mut pending);
        }
    }
    defs.retain(|name, _| reached.contains(name));
}

fn collect_refs(schema: &Value, into: &mut Vec<String>) {
    match schema {
        Value::Object(object) => {
            for (key, value) in object {
                match (key.as_str(), value) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix("#/$defs/") {
                            into.push(name.to_owned());
                        }
                    }
                    _ => collect_refs(value, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_refs(i, into)),
        _ => {}
    }
}

/// Object keys in sorted order, whatever map serde_json was built with, so that the text is
/// the same in every build of the workspace.
fn canonical(value: Value) -> Value {
    match value {
        Value::Object(object) => {
            let mut entries: Vec<(String, Value)> = object.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::protocol::{parse, CLIENT_FRAME_TYPES};

    /// One frame of each type a client may send that is the protocol's own.
    const EVERY_CLIENT_FRAME: [&str; 8] = [
        r#"{"type":"join","room":"lobby","since":{"epoch":1,"seq":2}}"#,
        r#"{"type":"leave","room":"lobby"}"#,
        r#"{"type":"publish","room":"lobby","event":"chat","data":1}"#,
        r#"{"type":"bind","thread":null}"#,
        r#"{"type":"ping"}"#,
        r#"{"type":"resume","streams":[{"stream":"user:u","epoch":1,"seq":0}]}"#,
        r#"{"type":"refresh","token":"t.t.t"}"#,
        r#"{"type":"cancel","run":"r1"}"#,
    ];

    fn types_of(union: &Value) -> BTreeSet<String> {
        union["oneOf"]
            .as_array()
            .expect("a union")
            .iter()
            .filter_map(|v| v["properties"]["type"]["const"].as_str().map(str::to_owned))
            .collect()
    }

    #[test]
    fn the_schema_names_exactly_the_client_frames_the_parser_reads() {
        let config = Config::development();
        let parsed: BTreeSet<String> = EVERY_CLIENT_FRAME
            .iter()
            .map(|text| {
                parse(text, &config).unwrap_or_else(|e| panic!("{text}: {}", e.message));
                let frame: Value = serde_json::from_str(text).expect("JSON");
                frame["type"].as_str().expect("a type").to_owned()
            })
            .collect();
        let schema = protocol_schema();
        assert_eq!(types_of(&schema["$defs"]["ClientFrame"]), parsed);
        let protocol: BTreeSet<String> = CLIENT_FRAME_TYPES.map(str::to_owned).into();
        assert_eq!(
            protocol, parsed,
            "CLIENT_FRAME_TYPES lists every client frame"
        );
    }

    #[test]
    fn run_frames_repeat_the_event_as_their_type_and_producer_lost_has_no_event() {
        let schema = protocol_schema();
        let run = &schema["$defs"]["RunFrame"];
        assert!(types_of(run).contains("agent_started"));
        for variant in run["oneOf"].as_array().expect("a union") {
            let kind = &variant["properties"]["type"]["const"];
            match variant["properties"].get("event") {
                Some(event) => assert_eq!(&event["const"], kind),
                None => assert_eq!(kind, "producer_lost"),
            }
            let required = variant["required"].as_array().expect("required");
            for field in ["type", "run", "agent", "stream", "epoch", "seq"] {
                assert!(required.contains(&json!(field)), "{kind}: {field}");
            }
        }
    }

    #[test]
    fn a_field_the_server_omits_when_absent_is_optional_and_never_null() {
        let schema = protocol_schema();
        let welcome = schema["$defs"]["ServerFrame"]["oneOf"]
            .as_array()
            .expect("a union")
            .iter()
            .find(|v| v["properties"]["type"]["const"] == "welcome")
            .expect("welcome");
        let required = welcome["required"].as_array().expect("required");
        assert!(!required.contains(&json!("thread")));
        assert_eq!(
            welcome["properties"]["thread"],
            json!({ "$ref": "#/$defs/ThreadId" })
        );
    }
}
