//! What code generators read: a `$ref` with annotations beside it wrapped so that the
//! referenced type keeps its name, and descriptions as plain text without rustdoc's links.

use serde_json::{json, Value};

/// A `$ref` with annotations beside it (a field's description) is written `allOf: [$ref]`: the
/// same schema, which generators (json-schema-to-typescript) read as the referenced type by its
/// name instead of a copy of it.
pub(super) fn wrap_annotated_refs(schema: &mut Value) {
    match schema {
        Value::Object(object) => {
            object.values_mut().for_each(wrap_annotated_refs);
            if object.len() > 1 {
                if let Some(reference) = object.remove("$ref") {
                    object.insert("allOf".into(), json!([{ "$ref": reference }]));
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(wrap_annotated_refs),
        _ => {}
    }
}

/// Descriptions come from the Rust doc comments: keep their text, without rustdoc's link
/// brackets (`` [`Hub`] `` reads `` `Hub` ``).
pub(super) fn plain_descriptions(schema: &mut Value) {
    match schema {
        Value::Object(object) => {
            for (key, value) in object.iter_mut() {
                match (key.as_str(), value) {
                    ("description", Value::String(text)) => *text = without_doc_links(text),
                    (_, value) => plain_descriptions(value),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(plain_descriptions),
        _ => {}
    }
}

/// `` [`x`] `` and `` [`x`](target) `` become `` `x` ``.
fn without_doc_links(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("[`") {
        let Some(len) = rest[start + 1..].find("`]") else {
            break;
        };
        let code = &rest[start + 1..start + 1 + len + 1];
        out.push_str(&rest[..start]);
        out.push_str(code);
        rest = &rest[start + 1 + len + 2..];
        if rest.starts_with('(') {
            if let Some(end) = rest.find(')') {
                rest = &rest[end + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_links_read_as_code() {
        assert_eq!(
            without_doc_links("see [`Hub`] and [`Output`](crate::Output)."),
            "see `Hub` and `Output`."
        );
        assert_eq!(without_doc_links("a [`broken"), "a [`broken");
    }
}
