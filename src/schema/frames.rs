//! Reshaping the generated frame definitions to read as the wire does: a field the hub omits
//! is optional and never `null` (server frames as serialized), a run frame is one object per
//! event, a client frame's body is inlined into its variant and every client frame may carry
//! a `ref` (client frames as parsed).

use crate::run::EventKind;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// The hub omits an absent optional field (`skip_serializing_if`) instead of writing `null`:
/// an optional property of a serialized frame is never `null`.
pub(super) fn omitted_is_never_null(schema: &mut Value) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    let required: BTreeSet<String> = object
        .get("required")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if let Some(Value::Object(properties)) = object.get_mut("properties") {
        for (name, property) in properties.iter_mut() {
            if !required.contains(name) {
                strip_null(property);
            }
        }
    }
    for (key, value) in object.iter_mut() {
        if key == "properties" {
            continue;
        }
        match value {
            Value::Array(items) => items.iter_mut().for_each(omitted_is_never_null),
            Value::Object(_) => omitted_is_never_null(value),
            _ => {}
        }
    }
}

fn strip_null(property: &mut Value) {
    let Some(object) = property.as_object_mut() else {
        return;
    };
    if let Some(Value::Array(types)) = object.get_mut("type") {
        types.retain(|t| t != "null");
        if let [only] = types.as_slice() {
            let only = only.clone();
            object.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(options)) = object.get("anyOf") {
        let kept: Vec<Value> = options
            .iter()
            .filter(|o| **o != json!({ "type": "null" }))
            .cloned()
            .collect();
        object.remove("anyOf");
        match <[Value; 1]>::try_from(kept) {
            Ok([only]) => {
                if let Value::Object(only) = only {
                    object.extend(only);
                }
            }
            Err(kept) => {
                object.insert("anyOf".into(), Value::Array(kept));
            }
        }
    }
    if object.get("default") == Some(&Value::Null) {
        object.remove("default");
    }
}

/// A run frame is the run's fields, its place in the stream, and its event flattened in (the
/// event's fields, `type` repeating the event's name), or no event for `producer_lost`:
/// describe it as one object per event, like the other frame unions.
pub(super) fn distribute_run_events(defs: &mut Map<String, Value>) {
    let Some(Value::Object(run)) = defs.get("RunFrame") else {
        return;
    };
    let Some(Value::Array(events)) = run
        .get("anyOf")
        .and_then(|options| options.get(0))
        .and_then(|event| event.get("oneOf"))
    else {
        return;
    };
    let mut common = Map::new();
    for key in ["properties", "required"] {
        if let Some(value) = run.get(key) {
            common.insert(key.into(), value.clone());
        }
    }
    let typed = |kind: &Value, mut variant: Map<String, Value>| {
        merge_object(&mut variant, &common);
        if let Some(Value::Object(properties)) = variant.get_mut("properties") {
            properties.insert("type".into(), json!({ "type": "string", "const": kind }));
        }
        variant.insert("type".into(), json!("object"));
        Value::Object(variant)
    };
    let mut variants: Vec<Value> = events
        .iter()
        .filter_map(|event| {
            let kind = event.pointer("/properties/event/const")?;
            Some(typed(kind, event.as_object()?.clone()))
        })
        .collect();
    let lost = json!(EventKind::ProducerLost.as_str());
    let mut producer_lost = Map::new();
    producer_lost.insert(
        "description".into(),
        json!("The server ended the run: its producer went away, or was silent for the run idle timeout."),
    );
    variants.push(typed(&lost, producer_lost));
    let description = run.get("description").cloned().unwrap_or(Value::Null);
    defs.insert(
        "RunFrame".into(),
        json!({ "description": description, "oneOf": variants }),
    );
}

/// A client frame's body is its own type (`join` reads a `JoinBody`): inline it into the
/// frame's variant, so that each frame is one object.
pub(super) fn inline_variant_bodies(defs: &mut Map<String, Value>) {
    let Some(Value::Array(variants)) = defs
        .get("ClientFrame")
        .and_then(|frame| frame.get("oneOf"))
        .cloned()
    else {
        return;
    };
    let inlined: Vec<Value> = variants
        .into_iter()
        .map(|mut variant| {
            let body = variant
                .as_object_mut()
                .and_then(|v| v.remove("$ref"))
                .and_then(|r| r.as_str().map(str::to_owned))
                .and_then(|r| r.strip_prefix("#/$defs/").map(str::to_owned))
                .and_then(|name| defs.get(&name).cloned());
            if let (Some(Value::Object(body)), Some(variant)) = (body, variant.as_object_mut()) {
                merge_object(variant, &body);
            }
            variant
        })
        .collect();
    if let Some(Value::Object(frame)) = defs.get_mut("ClientFrame") {
        frame.insert("oneOf".into(), Value::Array(inlined));
    }
}

/// Adds `body`'s properties and required names to `into`.
fn merge_object(into: &mut Map<String, Value>, body: &Map<String, Value>) {
    if let Some(Value::Object(properties)) = body.get("properties") {
        let target = into
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(target) = target {
            target.extend(properties.clone());
        }
    }
    if let Some(Value::Array(required)) = body.get("required") {
        let target = into
            .entry("required")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(target) = target {
            target.extend(required.iter().cloned());
        }
    }
}

/// Every client frame may carry a `ref`, echoed in its direct answer.
pub(super) fn add_ref(schema: &mut Value) {
    let reference = json!({ "$ref": "#/$defs/Ref" });
    match schema.get_mut("oneOf") {
        Some(Value::Array(variants)) => variants.iter_mut().for_each(add_ref),
        _ => {
            if let Some(Value::Object(properties)) = schema.get_mut("properties") {
                properties.insert("ref".into(), reference);
            }
        }
    }
}
