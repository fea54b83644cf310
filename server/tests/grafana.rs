//! The Grafana board `deploy/grafana/switchboard.json` against a running node of a cluster:
//! every metric its queries name is in that node's `/metrics`.

mod support;

use serde_json::Value;
use std::collections::BTreeSet;
use support::TestServer;
use switchboard_testing::Redis;

/// Every PromQL expression of the board: the panels' targets and the variables' queries.
fn expressions(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr" | "definition", Value::String(expr)) => found.push(expr.clone()),
                    ("query", Value::String(expr)) if expr.contains('(') => {
                        found.push(expr.clone())
                    }
                    _ => expressions(value, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| expressions(v, found)),
        _ => {}
    }
}

/// The metric names in an expression: identifiers starting `switchboard_` or `process_`.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let rest = &expr[i..];
        if starts_word && (rest.starts_with("switchboard_") || rest.starts_with("process_")) {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            i += name.len();
            names.push(name);
        } else {
            i += 1;
        }
    }
    names
}

/// The sample names of a text exposition.
fn exposed(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            line.split(['{', ' '])
                .next()
                .expect("a sample name")
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn every_metric_the_grafana_board_queries_is_exposed_by_a_node() {
    let board: Value =
        serde_json::from_str(include_str!("../../deploy/grafana/switchboard.json")).unwrap();
    let mut found = Vec::new();
    expressions(&board, &mut found);
    assert!(found.len() > 30, "the board's queries: {found:?}");
    let queried: BTreeSet<String> = found.iter().flat_map(|e| metric_names(e)).collect();

    // A node of a cluster, so that the bridge's metrics are there too.
    let redis = Redis::start().await;
    let server = TestServer::with(&format!("[redis]\nurl = \"{}\"", redis.url())).await;
    let _client = server.connect("alice").await;
    let (status, metrics) = server.get_text("/metrics").await;
    assert_eq!(status, 200);
    let names = exposed(&metrics);
    let missing: Vec<&String> = queried.iter().filter(|n| !names.contains(*n)).collect();
    assert!(missing.is_empty(), "queried but not exposed: {missing:?}");

    // What the board is for.
    for needed in [
        "switchboard_connections",
        "switchboard_messages_out_total",
        "switchboard_rtt_seconds_bucket",
        "switchboard_closes_total",
        "switchboard_queued_bytes",
        "switchboard_queue_max_bytes",
        "switchboard_history_bytes",
        "switchboard_history_max_bytes",
        "switchboard_cluster_unpublished_total",
        "process_resident_memory_bytes",
    ] {
        assert!(
            queried.contains(needed),
            "the board does not query {needed}"
        );
    }
    assert!(found
        .iter()
        .any(|e| e.contains("histogram_quantile(0.99")
            && e.contains("switchboard_rtt_seconds_bucket")));
}

#[test]
fn metric_names_are_read_out_of_promql() {
    let names = metric_names(
        "histogram_quantile(0.99, sum by (le) (rate(switchboard_rtt_seconds_bucket{instance=~\"$i\"}[5m]))) / process_max_fds",
    );
    assert_eq!(names, ["switchboard_rtt_seconds_bucket", "process_max_fds"]);
    assert!(metric_names("sum(my_switchboard_x)").is_empty());
}
