//! The publishers of `burst` besides the coordinator's own (one HTTP publisher, one message per
//! `POST /api/publish`): `--http-batch N` messages per `POST /api/publish/batch`, `--publishers
//! K` publishers at once, or `--publish-over websocket`, members of the room sending `publish`
//! frames as a client does. So the same run measures what publishing over HTTP costs the
//! server against a client's publish.
//!
//! The messages are cut into units (one message, or `N` consecutive ones for a batch), dealt
//! to the publishers in turn (unit `u` to publisher `u mod K`); each publisher sends its units
//! back to back. An HTTP publisher waits for each answer before its next request (so `K`
//! publishers have at most `K` requests in flight); a WebSocket publisher writes its frames
//! without waiting (a client's `publish` has no answer), then sends a `ping` and waits for
//! its `pong`, which the server answers once it has handled every frame before it.

use crate::coordinator::Published;
use crate::link::{Link, Protocol, Read, Transport};
use crate::{now_us, token, Cli, Scenario};
use clap::ValueEnum;
use jsonwebtoken::EncodingKey;
use serde_json::{json, Value};
use tokio::task::JoinSet;

/// How the messages reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PublishOver {
    /// The backend API: `POST /api/publish`, or `POST /api/publish/batch` with `--http-batch`.
    Http,
    /// Clients of the room (users `<prefix>-publisher-<k>`) sending `publish` frames over
    /// WebSockets.
    Websocket,
}

/// How `burst` publishes.
#[derive(Debug, Clone, clap::Args)]
pub struct PublishArgs {
    /// Publish through the HTTP API or as clients of the room (burst).
    #[arg(long, value_enum, default_value_t = PublishOver::Http)]
    pub publish_over: PublishOver,
    /// Messages per `POST /api/publish/batch` request (burst, over HTTP); 0: one message per
    /// `POST /api/publish`.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub http_batch: usize,
    /// Publishers sending at once, each its share of the messages (burst).
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub publishers: usize,
}

impl PublishArgs {
    /// Whether these publishers are asked for, rather than the coordinator's own.
    pub fn chosen(&self) -> bool {
        self.publish_over != PublishOver::Http || self.http_batch > 0 || self.publishers > 1
    }

    /// Messages per unit a publisher sends: a batch, or one.
    fn unit(&self) -> usize {
        match self.publish_over {
            PublishOver::Http => self.http_batch.max(1),
            PublishOver::Websocket => 1,
        }
    }
}

/// Refuse options that do not go together, before any client connects.
pub fn check(cli: &Cli) -> Result<(), String> {
    let args = &cli.publishing;
    if args.chosen() && cli.scenario != Scenario::Burst {
        return Err("--publish-over, --http-batch and --publishers apply to `burst`".into());
    }
    if args.publish_over == PublishOver::Websocket && args.http_batch > 0 {
        return Err("--http-batch publishes over HTTP, not with --publish-over websocket".into());
    }
    if args.publishers == 0 {
        return Err("--publishers must be at least 1".into());
    }
    if args.publish_over == PublishOver::Websocket && cli.protocol != Protocol::Switchboard {
        return Err("--publish-over websocket sends Switchboard's publish frames: not with --protocol socketio".into());
    }
    Ok(())
}

/// The units of `messages` messages, `unit` at a time, dealt to `publishers` publishers: for
/// each publisher, its units' message indices.
fn deal(messages: usize, unit: usize, publishers: usize) -> Vec<Vec<std::ops::Range<usize>>> {
    let mut shares = vec![Vec::new(); publishers];
    for (u, start) in (0..messages).step_by(unit.max(1)).enumerate() {
        shares[u % publishers].push(start..(start + unit).min(messages));
    }
    shares
}

/// Message `i` as the coordinator's publisher sends it: its index and send time, padded.
fn data(i: usize, pad: &str) -> Value {
    let mut data = json!({"i": i, "t": now_us()});
    if !pad.is_empty() {
        data["pad"] = json!(pad);
    }
    data
}

/// Publish the scenario's messages with `cli.publishing`'s publishers.
pub async fn publish(cli: &Cli) -> Published {
    let args = &cli.publishing;
    let mut published = Published {
        first_us: now_us(),
        ..Published::default()
    };
    let mut tasks = JoinSet::new();
    for (k, units) in deal(cli.messages, args.unit(), args.publishers)
        .into_iter()
        .enumerate()
    {
        let cli = cli.clone();
        match args.publish_over {
            PublishOver::Http => tasks.spawn(async move { over_http(&cli, units).await }),
            PublishOver::Websocket => tasks.spawn(async move { as_client(&cli, k, units).await }),
        };
    }
    while let Some(done) = tasks.join_next().await {
        let share = done.unwrap_or_else(|e| failed(1, &e.to_string()));
        published.accepted += share.accepted;
        published.reached += share.reached;
        for (reason, n) in share.failed {
            *published.failed.entry(reason).or_default() += n;
        }
    }
    published.last_us = now_us();
    published
}

/// `n` messages failed for `reason`.
fn failed(n: usize, reason: &str) -> Published {
    let mut published = Published::default();
    published.failed.insert(reason.to_owned(), n);
    published
}

/// One HTTP publisher: each unit in one request, waiting for its answer.
async fn over_http(cli: &Cli, units: Vec<std::ops::Range<usize>>) -> Published {
    let http = reqwest::Client::new();
    let batch = cli.publishing.http_batch > 0;
    let url = if batch {
        format!("{}/batch", cli.publish_url())
    } else {
        cli.publish_url()
    };
    let pad = "x".repeat(cli.payload);
    let mut published = Published::default();
    for unit in units {
        let count = unit.len();
        let messages: Vec<Value> = unit
            .map(|i| json!({"to": {"room": cli.room}, "event": "load", "data": data(i, &pad)}))
            .collect();
        let body = if batch {
            json!({ "messages": messages })
        } else {
            messages.into_iter().next().unwrap_or_default()
        };
        let sent = http
            .post(&url)
            .bearer_auth(&cli.api_key)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await;
        let response = match sent {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                *published.failed.entry(r.status().to_string()).or_default() += count;
                continue;
            }
            Err(e) => {
                *published.failed.entry(e.to_string()).or_default() += count;
                continue;
            }
        };
        let answer = response.bytes().await.map_err(|e| e.to_string());
        let answer: Value =
            match answer.and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string())) {
                Ok(answer) => answer,
                Err(e) => {
                    *published.failed.entry(e.to_string()).or_default() += count;
                    continue;
                }
            };
        published.reached += answer["reached"].as_u64().unwrap_or(0);
        if batch {
            for result in answer["results"].as_array().into_iter().flatten() {
                match result["status"].as_u64() {
                    Some(200) => published.accepted += 1,
                    status => {
                        let reason = format!("batch message {status:?} {}", result["error"]);
                        *published.failed.entry(reason).or_default() += 1;
                    }
                }
            }
        } else {
            published.accepted += 1;
        }
    }
    published
}

/// One publisher as a client of the room: join, send every `publish` frame, then wait for
/// the `pong` that follows them.
async fn as_client(cli: &Cli, k: usize, units: Vec<std::ops::Range<usize>>) -> Published {
    let count = units.iter().map(|u| u.len()).sum();
    match client_publishes(cli, k, units).await {
        Ok(published) => published,
        Err(e) => failed(count, &e),
    }
}

async fn client_publishes(
    cli: &Cli,
    k: usize,
    units: Vec<std::ops::Range<usize>>,
) -> Result<Published, String> {
    let user = format!("{}-publisher-{k}", cli.user_prefix);
    let key = EncodingKey::from_secret(cli.token_secret.as_bytes());
    let token = token::sign(&key, &user, 3600)?;
    let http = reqwest::Client::new();
    let mut link = Link::open(
        Transport::Websocket,
        Protocol::Switchboard,
        &http,
        cli.publish_base(),
        &token,
    )
    .await?;
    link.send(json!({"type": "join", "room": cli.room, "ref": "join"}).to_string())
        .await?;
    until(&mut link, |frame| frame["type"] == "joined").await?;
    let pad = "x".repeat(cli.payload);
    let mut sent = 0;
    for i in units.into_iter().flatten() {
        let frame =
            json!({"type": "publish", "room": cli.room, "event": "load", "data": data(i, &pad)});
        link.send(frame.to_string()).await?;
        sent += 1;
    }
    link.send(json!({"type": "ping", "ref": "published"}).to_string())
        .await?;
    let errors = until(&mut link, |frame| {
        frame["type"] == "pong" && frame["ref"] == "published"
    })
    .await?;
    link.close().await;
    let mut published = Published {
        accepted: sent - errors.len(),
        ..Published::default()
    };
    for error in errors {
        *published
            .failed
            .entry(format!("error frame {error}"))
            .or_default() += 1;
    }
    Ok(published)
}

/// Read until a frame `done` accepts: the `error` frames' codes read before it.
async fn until(link: &mut Link, done: impl Fn(&Value) -> bool) -> Result<Vec<String>, String> {
    let mut errors = Vec::new();
    loop {
        match link.read().await {
            Read::Text(text) => {
                let frame: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                if done(&frame) {
                    return Ok(errors);
                }
                if frame["type"] == "error" {
                    errors.push(frame["error"].to_string());
                }
            }
            Read::Closed(code) => return Err(format!("publisher closed with {code}")),
            Read::Other => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message is dealt once, in units of the batch size, publishers in turn.
    #[test]
    fn messages_are_dealt_in_units_to_the_publishers_in_turn() {
        assert_eq!(
            deal(5, 1, 2),
            vec![vec![0..1, 2..3, 4..5], vec![1..2, 3..4]]
        );
        assert_eq!(deal(7, 3, 2), vec![vec![0..3, 6..7], vec![3..6]]);
        assert_eq!(deal(2, 1, 3), vec![vec![0..1], vec![1..2], vec![]]);
    }

    /// These publishers are for `burst` alone, and a batch is an HTTP request.
    #[test]
    fn options_that_do_not_go_together_are_refused() {
        use clap::Parser;
        let parse = |args: &[&str]| Cli::parse_from([&["switchboard-load"], args].concat());
        assert!(!parse(&["burst"]).publishing.chosen());
        assert!(check(&parse(&[
            "burst",
            "--http-batch",
            "10",
            "--publishers",
            "4"
        ]))
        .is_ok());
        assert!(check(&parse(&["rate", "--publishers", "2"])).is_err());
        assert!(check(&parse(&[
            "burst",
            "--publish-over",
            "websocket",
            "--http-batch",
            "2"
        ]))
        .is_err());
        assert!(check(&parse(&["burst", "--publishers", "0"])).is_err());
    }
}
