//! The OpenAPI document against the running server and against `docs/API.md`: it is served
//! behind the key, every operation it lists is routed, what the server answers validates
//! against it, and so does every JSON example of the API's documentation.

mod support;

use serde_json::{json, Value};
use support::{TestServer, WsClient};
use switchboard::{AgentEvent, Position};

/// The document the server serves.
fn document() -> Value {
    serde_json::from_str(switchboard_server::openapi::json()).expect("the document is JSON")
}

/// What an example is checked against: an operation's request body or one of its answers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    Request,
    Response(u16),
}

/// The document's path template that `path` (e.g. `/api/users/alice`) matches.
fn template<'d>(doc: &'d Value, path: &str) -> Option<&'d str> {
    let segments: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()?
        .keys()
        .map(String::as_str)
        .find(|t| {
            let parts: Vec<&str> = t.split('/').collect();
            parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(p, s)| {
                    p == s || (p.starts_with('{') && p.ends_with('}') && !s.is_empty())
                })
        })
}

/// Validate `instance` against the schema of `part` of `METHOD path`; the errors, if any.
fn check(
    doc: &Value,
    method: &str,
    path: &str,
    part: Part,
    instance: &Value,
) -> Result<(), String> {
    let template = template(doc, path).ok_or_else(|| format!("{path} is not in the document"))?;
    let operation = &doc["paths"][template][method.to_lowercase()];
    if operation.is_null() {
        return Err(format!("{method} {template} is not in the document"));
    }
    let content = match part {
        Part::Request => &operation["requestBody"]["content"],
        Part::Response(status) => &operation["responses"][status.to_string()]["content"],
    };
    let schema = content["application/json"]["schema"].clone();
    if schema.is_null() {
        return Err(format!(
            "{method} {template} has no JSON schema for {part:?}"
        ));
    }
    // The operation's schema refers to the components of the document: validate it as the
    // root of a document that holds them.
    let mut root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"].clone(),
    });
    for (key, value) in schema.as_object().expect("a schema object") {
        root[key] = value.clone();
    }
    let validator = jsonschema::validator_for(&root).map_err(|e| format!("bad schema: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{method} {path} {part:?}: {instance} does not validate: {}",
            errors.join("; ")
        ))
    }
}

/// One JSON example of the documentation and what it is checked against.
#[derive(Debug)]
struct Example {
    method: String,
    path: String,
    part: Part,
    json: Value,
    line: usize,
}

/// Every JSON example of a markdown document:
///
/// - in a `sh` block, the body of each `curl ... -d '<json>'` (its request), and a comment
///   `# {...}` after a `curl` (that operation's 200 answer). The method is `-X`'s (`GET`
///   without), the path the URL's from `/api` on; variables assigned in the block
///   (`R=$SB/api/...`) are expanded;
/// - a `json` block whose info string names its operation and part:
///   ```` ```json POST /api/publish request ```` or ```` ```json GET /api/stats 200 ````
///   (but for ```` ```json dashboard feed ````, which is no `/api` route).
fn examples(markdown: &str) -> Vec<Example> {
    let mut found = Vec::new();
    let lines: Vec<&str> = markdown.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let Some(info) = lines[i].strip_prefix("```") else {
            i += 1;
            continue;
        };
        let start = i + 1;
        let mut end = start;
        while end < lines.len() && !lines[end].starts_with("```") {
            end += 1;
        }
        let block = &lines[start..end];
        let words: Vec<&str> = info.split_whitespace().collect();
        match words.as_slice() {
            ["json", method, path, part] => {
                let text = block.join("\n");
                let json = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("line {start}: not JSON ({e}): {text}"));
                let part = match *part {
                    "request" => Part::Request,
                    status => Part::Response(status.parse().expect("a status or `request`")),
                };
                found.push(Example {
                    method: method.to_string(),
                    path: path.to_string(),
                    part,
                    json,
                    line: start,
                });
            }
            // The dashboard's feed is no `/api` route: tests/dashboard.rs checks its example.
            ["json", "dashboard", "feed"] => {}
            // Nor the webhook's event: tests/webhook.rs checks it against a real delivery.
            ["json", "webhook", "event"] => {}
            // Nor the producer channel's frames: tests/producer.rs checks them on a real channel.
            ["json", "producer", _] => {}
            ["json", ..] => {
                panic!("line {start}: a json block must name `METHOD /api/path request|STATUS`")
            }
            ["sh"] => found.extend(curl_examples(block, start)),
            _ => {}
        }
        i = end + 1;
    }
    found
}

/// The examples of one `sh` block (see [`examples`]).
fn curl_examples(block: &[&str], first_line: usize) -> Vec<Example> {
    let mut found = Vec::new();
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut last: Option<(String, String)> = None;
    let mut i = 0;
    while i < block.len() {
        let line_no = first_line + i;
        // A command with its continuation lines.
        let mut command = block[i].trim().to_owned();
        while command.ends_with('\\') && i + 1 < block.len() {
            command.pop();
            i += 1;
            command.push(' ');
            command.push_str(block[i].trim());
        }
        i += 1;
        if let Some(comment) = command.strip_prefix("# ") {
            if comment.starts_with('{') {
                let (method, path) = last.clone().expect("an answer follows a curl");
                let json = serde_json::from_str(comment)
                    .unwrap_or_else(|e| panic!("line {line_no}: not JSON ({e}): {comment}"));
                found.push(Example {
                    method,
                    path,
                    part: Part::Response(200),
                    json,
                    line: line_no,
                });
            }
            continue;
        }
        if let Some((name, value)) = command.split_once('=') {
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                vars.push((format!("${name}"), value.to_owned()));
                continue;
            }
        }
        if !command.starts_with("curl ") {
            continue;
        }
        let mut expanded = command.clone();
        for (name, value) in vars.iter().rev() {
            expanded = expanded.replace(&format!("{name} "), &format!("{value} "));
        }
        let Some(at) = expanded.find("/api/") else {
            continue;
        };
        let path: String = expanded[at..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '\'')
            .collect();
        let method = expanded
            .split_whitespace()
            .skip_while(|w| *w != "-X")
            .nth(1)
            .unwrap_or("GET")
            .to_owned();
        if let Some(body) = expanded.split_once(" -d '").map(|(_, rest)| rest) {
            let body = &body[..body.rfind('\'').expect("a quoted body")];
            let json = serde_json::from_str(body)
                .unwrap_or_else(|e| panic!("line {line_no}: not JSON ({e}): {body}"));
            found.push(Example {
                method: method.clone(),
                path: path.clone(),
                part: Part::Request,
                json,
                line: line_no,
            });
        }
        last = Some((method, path));
    }
    found
}

#[test]
fn every_json_example_of_the_api_documentation_validates_against_the_document() {
    let doc = document();
    let markdown = include_str!("../../docs/API.md");
    let examples = examples(markdown);
    let failures: Vec<String> = examples
        .iter()
        .filter_map(|e| {
            check(&doc, &e.method, &e.path, e.part, &e.json)
                .err()
                .map(|why| format!("docs/API.md line {}: {why}", e.line))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Each route's body and answer has an example.
    for (method, path, part) in [
        ("POST", "/api/publish", Part::Request),
        ("POST", "/api/publish", Part::Response(200)),
        ("POST", "/api/runs/alice/run-1/events", Part::Request),
        ("POST", "/api/runs/alice/run-1/events", Part::Response(200)),
        ("GET", "/api/users/alice", Part::Response(200)),
        ("GET", "/api/rooms/lobby", Part::Response(200)),
        ("POST", "/api/users/alice/disconnect", Part::Response(200)),
        ("POST", "/api/users/alice/rooms/lobby", Part::Response(200)),
        (
            "DELETE",
            "/api/users/alice/rooms/lobby",
            Part::Response(200),
        ),
        ("GET", "/api/stats", Part::Response(200)),
        ("POST", "/api/publish", Part::Response(400)),
        ("POST", "/api/publish", Part::Response(401)),
    ] {
        assert!(
            examples.iter().any(|e| e.method == method
                && template(&doc, &e.path) == template(&doc, path)
                && e.part == part),
            "no example of {method} {path} {part:?}"
        );
    }
}

/// The checker refuses what the document refuses: an example is really checked.
#[test]
fn an_example_of_the_wrong_shape_does_not_validate() {
    let doc = document();
    let wrong = [
        (
            "POST",
            "/api/publish",
            Part::Request,
            json!({"to": {"room": "lobby"}}),
        ),
        (
            "POST",
            "/api/publish",
            Part::Request,
            json!({"to": {"planet": "mars"}, "event": "x"}),
        ),
        (
            "POST",
            "/api/publish",
            Part::Request,
            json!({"to": "all", "event": "x", "extra": 1}),
        ),
        (
            "POST",
            "/api/runs/a/r/events",
            Part::Request,
            json!({"event": "agent_thinking"}),
        ),
        (
            "POST",
            "/api/runs/a/r/events",
            Part::Request,
            json!({"event": "agent_exploded"}),
        ),
        (
            "GET",
            "/api/stats",
            Part::Response(200),
            json!({"connections": "many"}),
        ),
    ];
    for (method, path, part, instance) in wrong {
        assert!(
            check(&doc, method, path, part, &instance).is_err(),
            "{method} {path} {instance} validated"
        );
    }
}

/// The two core types whose schemas the document takes from the core: every value of theirs
/// validates.
#[test]
fn every_agent_event_and_position_of_the_core_validates_against_the_document() {
    let doc = document();
    let events = [
        AgentEvent::AgentStarted {
            data: json!({"prompt": "hi"}),
        },
        AgentEvent::AgentThinking {
            thought: "hmm".into(),
        },
        AgentEvent::AgentMessageDelta {
            message: "m1".into(),
            offset: 3,
            last: true,
            text: "end".into(),
        },
        AgentEvent::ToolExecuting {
            tool: "search".into(),
            call_id: Some("c1".into()),
            input: json!({"q": 1}),
        },
        AgentEvent::ToolExecuting {
            tool: "search".into(),
            call_id: None,
            input: json!(null),
        },
        AgentEvent::ToolCompleted {
            tool: "search".into(),
            call_id: None,
            output: json!(["r"]),
        },
        AgentEvent::AgentCompleted {
            result: json!("done"),
        },
        AgentEvent::AgentFailed {
            error: "boom".into(),
        },
        AgentEvent::AgentCancelled { reason: None },
        AgentEvent::AgentCancelled {
            reason: Some("user".into()),
        },
    ];
    for event in events {
        let mut body = serde_json::to_value(&event).unwrap();
        check(&doc, "POST", "/api/runs/a/r/events", Part::Request, &body).unwrap();
        body["agent"] = "helper".into();
        body["thread"] = "t1".into();
        check(&doc, "POST", "/api/runs/a/r/events", Part::Request, &body).unwrap();
    }
    let position = serde_json::to_value(Position { epoch: 17, seq: 4 }).unwrap();
    let delivery = json!({"reached": 1, "buffered": false, "position": position});
    check(
        &doc,
        "POST",
        "/api/runs/a/r/events",
        Part::Response(200),
        &delivery,
    )
    .unwrap();
}

/// What the running server answers on each route validates against the document, and every
/// operation the document lists is routed (neither 404 nor 405).
#[tokio::test]
async fn the_servers_answers_validate_and_every_documented_route_is_served() {
    let server = TestServer::start().await;
    let doc = document();
    let (status, served) = server.api("GET", "/api/openapi.json", None).await;
    assert_eq!(status, 200);
    assert_eq!(served, doc, "the served document is the generated one");
    let (status, refused) = server
        .api_as("wrong-key", "GET", "/api/openapi.json", None)
        .await;
    assert_eq!(status, 401, "{refused}");

    let mut alice = server.connect_with("alice", "&thread=t1").await;
    alice.join("lobby").await;
    let answers = [
        (
            "POST",
            "/api/publish",
            Some(json!({"to": {"user": "alice"}, "event": "e", "data": 1})),
            200,
        ),
        (
            "POST",
            "/api/publish",
            Some(json!({"to": [{"room": "lobby"}, "all"], "event": "e"})),
            200,
        ),
        (
            "POST",
            "/api/publish",
            Some(json!({"to": [], "event": "e"})),
            400,
        ),
        (
            "POST",
            "/api/publish/batch",
            Some(json!({"messages": [
                {"to": {"user": "alice"}, "event": "e"},
                {"to": {"connection": "0.999.0"}, "event": "e"},
                {"to": {"user": "alice"}},
            ]})),
            200,
        ),
        (
            "POST",
            "/api/publish/batch",
            Some(json!({"messages": []})),
            400,
        ),
        (
            "POST",
            "/api/runs/alice/run-1/events",
            Some(json!({"event": "agent_started", "agent": "a", "thread": "t1"})),
            200,
        ),
        (
            "POST",
            "/api/runs/alice/run-1/events",
            Some(json!({"event": "tool_completed", "tool": "x"})),
            409,
        ),
        ("GET", "/api/users/alice", None, 200),
        ("GET", "/api/users/nobody", None, 200),
        ("GET", "/api/rooms/lobby", None, 200),
        ("GET", "/api/stats", None, 200),
        ("POST", "/api/users/alice/disconnect", None, 200),
    ];
    for (method, path, body, expected) in answers {
        let (status, answer) = server.api(method, path, body).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
        check(&doc, method, path, Part::Response(status), &answer).unwrap();
    }
    assert_eq!(alice.closed().await, 4002);
    let (status, refused) = server.api_as("wrong-key", "GET", "/api/stats", None).await;
    check(&doc, "GET", "/api/stats", Part::Response(status), &refused).unwrap();

    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let concrete = path.replace('{', "x").replace('}', "");
            let body = (method == "post").then(|| json!({}));
            let (status, answer) = server.api(&method.to_uppercase(), &concrete, body).await;
            assert!(
                status != 404 && status != 405,
                "{method} {concrete} is documented but answers {status}: {answer}"
            );
        }
    }
    drop::<WsClient>(alice);
}
