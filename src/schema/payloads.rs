//! Payloads: schemars describes any JSON value as the schema that accepts anything; the
//! protocol's schema names it `Json` (a `ref`: `Ref`) and defines both, so that generated
//! types say what a payload is.

use crate::protocol::MAX_REF_BYTES;
use serde_json::{json, Map, Value};

/// A payload is any JSON value: schemars describes it as the schema that accepts anything
/// (`true`, or an object with only annotations). Name it `Json` (and `Ref` for a `ref`), so that
/// generated types say what it is.
pub(super) fn any_is_json(schema: &mut Value, property: Option<&str>) {
    if is_any(schema) {
        let target = if property == Some("ref") {
            "Ref"
        } else {
            "Json"
        };
        let mut named = Map::new();
        named.insert("$ref".into(), json!(format!("#/$defs/{target}")));
        if let Some(description) = schema.get("description") {
            named.insert("description".into(), description.clone());
        }
        *schema = Value::Object(named);
        return;
    }
    match schema {
        Value::Object(object) => {
            for (key, value) in object.iter_mut() {
                if key == "properties" {
                    if let Value::Object(properties) = value {
                        for (name, property) in properties.iter_mut() {
                            any_is_json(property, Some(name));
                        }
                    }
                } else if key != "default" && key != "const" && key != "enum" {
                    any_is_json(value, None);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| any_is_json(i, None)),
        _ => {}
    }
}

fn is_any(schema: &Value) -> bool {
    match schema {
        Value::Bool(true) => true,
        Value::Object(object) => object
            .keys()
            .all(|k| matches!(k.as_str(), "description" | "default" | "title")),
        _ => false,
    }
}

/// `Json`: any JSON value.
pub(super) fn json_definition() -> Value {
    json!({
        "description": "Any JSON value.",
        // Deeply read-only in TypeScript: a client may pass its own read-only data.
        "tsType": "null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json }",
        "anyOf": [
            { "type": "null" },
            { "type": "boolean" },
            { "type": "number" },
            { "type": "string" },
            { "type": "array", "items": { "$ref": "#/$defs/Json" } },
            { "type": "object", "additionalProperties": { "$ref": "#/$defs/Json" } }
        ]
    })
}

/// `Ref`: a client's `ref`, any JSON value within [`MAX_REF_BYTES`].
pub(super) fn ref_definition() -> Value {
    json!({
        "description": format!(
            "A client's `ref`: any JSON value (at most {MAX_REF_BYTES} bytes of JSON text), echoed verbatim in the frame's direct answer."
        ),
        "$ref": "#/$defs/Json"
    })
}
