//! Two servers joined by one real Redis (`[redis] url`): the backend API of either node reaches
//! clients on the other, `/metrics` counts what crossed, the per-user connection limit holds
//! across them, a node shutting down sends its clients to the other, revocations and one-time
//! tickets hold across them, `[redis] prefix` names every channel and key, and a message to a
//! user connected nowhere waits for the user's next connection on either node (also one that
//! kept a stale copy of the user's stream). Each test starts `redis-server` from PATH on a free
//! port.

mod support;

use futures_util::StreamExt;
use serde_json::{json, Value};
use support::cluster::*;
use support::keys::now;
use support::*;
use switchboard_server::auth::{Claims, TokenKeys};
use switchboard_testing::{eventually, Redis};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Wait until the cluster counts `count` connections of `user`.
async fn user_connections_reach(server: &TestServer, user: &str, count: u64) {
    let bridge = bridge(server);
    eventually(&format!("{count} connections of {user}"), || async {
        bridge.user_connections(user).await.ok() == Some(count)
    })
    .await;
}

/// Connect to `server` as `user` and read until the server closes: the close code and reason.
/// Panics if a text frame (a `welcome`) arrives before the close.
async fn refused_before_welcome(server: &TestServer, user: &str) -> (u16, String) {
    let url = format!(
        "ws://{}/ws?token={}",
        server.addr(),
        server.token(user, None)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("the handshake is accepted, then the connection closed");
    loop {
        let frame = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a frame within the patience");
        match frame {
            Some(Ok(WsMessage::Close(Some(close)))) => {
                return (u16::from(close.code), close.reason.to_string())
            }
            Some(Ok(WsMessage::Text(text))) => panic!("received {text} before the close"),
            Some(Ok(_)) => continue,
            other => panic!("the socket ended without a close frame: {other:?}"),
        }
    }
}

/// Wait until `server`'s `/metrics` shows `name` at `min` or more: the
/// bridge counts after Redis answered, not before the API call returns.
async fn metric_reaches(server: &TestServer, name: &str, min: f64) {
    eventually(&format!("{name} to reach {min}"), || async {
        server.metric(name).await.is_some_and(|value| value >= min)
    })
    .await;
}

/// With `[redis] url`, a publish through one node's API reaches a room member on the other
/// node, and disconnecting a user through one node's API closes the user's connections on the
/// other with 4002.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_of_one_node_reaches_clients_on_another() {
    let redis = Redis::start().await;
    let [one, two] = two_nodes(&redis).await;
    let mut alice = two.connect("alice").await;
    alice.join("lobby").await;
    subscribed(&two, "sb:room:lobby").await;

    one.publish(json!({"room": "lobby"}), "hello", json!(1))
        .await;
    assert_eq!(alice.next_of("message").await["event"], "hello");

    let (status, answer) = one.api("POST", "/api/users/alice/disconnect", None).await;
    assert_eq!((status, answer["closed"].clone()), (200, json!(0)));
    assert_eq!(alice.closed().await, 4002);
    shut_down([one, two]).await;
}

/// Agent run events posted to one node's API reach the user's client on the other node in the
/// run's order, numbered in the user's shared stream; the client then reconnects to the first
/// node with its position and receives exactly the events it missed there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_crosses_nodes_and_its_reader_resumes_on_the_other_node() {
    let redis = Redis::start().await;
    let [one, two] = two_nodes(&redis).await;
    let mut alice = two.connect("alice").await;
    let events = [
        json!({"event": "agent_started", "agent": "planner", "data": null}),
        json!({"event": "agent_thinking", "thought": "hmm"}),
        json!({"event": "tool_executing", "tool": "search", "input": {}}),
        json!({"event": "tool_completed", "tool": "search", "output": {}}),
        json!({"event": "agent_completed", "result": 1}),
    ];
    let post = |event: &Value| one.api("POST", "/api/runs/alice/r1/events", Some(event.clone()));
    let mut epoch = Value::Null;
    for (seq, event) in events[..3].iter().enumerate() {
        assert_eq!(post(event).await.0, 200);
        let frame = alice.json().await;
        assert_eq!(
            (&frame["type"], &frame["seq"]),
            (&event["event"], &json!(seq + 1))
        );
        epoch = frame["epoch"].clone();
    }
    drop(alice);
    for event in &events[3..] {
        assert_eq!(post(event).await.0, 200);
    }

    let mut again = one
        .connect_with("alice", &format!("&resume={epoch}:3"))
        .await;
    for (seq, event) in events[3..].iter().enumerate() {
        let frame = again.json().await;
        assert_eq!(
            (&frame["type"], &frame["seq"]),
            (&event["event"], &json!(seq + 4))
        );
        assert_eq!(frame["epoch"], epoch);
    }
    shut_down([one, two]).await;
}

/// A node of a cluster exposes its bridge's statistics in `/metrics`: after a room publish
/// through one node's API reached a client on the other, the first counts it sequenced and the
/// second delivered; after a publish to everyone, published and received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_publishes_that_crossed_nodes() {
    let redis = Redis::start().await;
    let [one, two] = two_nodes(&redis).await;
    let mut alice = two.connect("alice").await;
    alice.join("lobby").await;
    subscribed(&two, "sb:room:lobby").await;

    one.publish(json!({"room": "lobby"}), "hello", json!(1))
        .await;
    assert_eq!(alice.next_of("message").await["event"], "hello");
    metric_reaches(&one, "cluster_sequenced_total", 1.0).await;
    metric_reaches(&two, "cluster_entries_total", 1.0).await;
    one.publish(json!("all"), "everyone", json!(2)).await;
    assert_eq!(alice.next_of("message").await["event"], "everyone");
    metric_reaches(&one, "cluster_published_total", 1.0).await;
    metric_reaches(&two, "cluster_received_total", 1.0).await;
    let (_, text) = two.get_text("/metrics").await;
    assert!(
        text.contains("# TYPE switchboard_cluster_received_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE switchboard_cluster_subscriptions gauge\n"),
        "{text}"
    );
    drop(alice);
    shut_down([one, two]).await;
}

/// Two nodes with `[redis] prefix` set to another prefix than the default talk over channels
/// under it, and every key they write in Redis carries it: a second deployment on the same
/// Redis, with its own prefix, shares nothing with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_their_own_prefix_name_every_channel_and_key_under_it() {
    let redis = Redis::start().await;
    let settings = format!("{}prefix = \"blue\"\n", redis.settings());
    let nodes = [
        TestServer::with(&settings).await,
        TestServer::with(&settings).await,
    ];
    let [one, two] = &nodes;
    let mut alice = two.connect("alice").await;
    alice.join("lobby").await;
    subscribed(two, "blue:room:lobby").await;
    assert!(
        !bridge(two)
            .subscriptions()
            .iter()
            .any(|c| c.starts_with("sb:")),
        "{:?}",
        bridge(two).subscriptions()
    );
    one.publish(json!({"room": "lobby"}), "hello", json!(1))
        .await;
    assert_eq!(alice.next_of("message").await["event"], "hello");

    let client = redis::Client::open(redis.url()).expect("a url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .expect("the keys");
    let node = bridge(one).node().to_owned();
    assert!(keys.contains(&format!("blue:node:{node}")), "{keys:?}");
    assert!(
        keys.contains(&"blue:history:room:lobby".to_owned()),
        "{keys:?}"
    );
    assert!(keys.iter().all(|k| k.starts_with("blue:")), "{keys:?}");
    drop(alice);
    shut_down(nodes).await;
}

/// A node of a cluster that receives SIGTERM hands its clients what was queued for them, closes
/// them with 1012 (service restart: reconnect to another node) instead of 1001, and exits
/// successfully; a client then connects to another node and receives what is published there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_clients_with_1012_and_they_reconnect_to_another_node() {
    let redis = Redis::start().await;
    let mut one = ServerProcess::serve(&[("SWITCHBOARD_REDIS_URL", &redis.url())]);
    let mut two = TestServer::with(&redis.settings()).await;
    let mut alice = one.server.connect("alice").await;
    one.server
        .publish(json!({"user": "alice"}), "before", json!(1))
        .await;

    one.terminate();
    assert_eq!(alice.next_of("message").await["event"], "before");
    assert_eq!(alice.closed().await, 1012);
    let (success, log) = one.exited().await;
    assert!(success, "{log}");

    let mut alice = two.connect("alice").await;
    two.publish(json!({"user": "alice"}), "after", json!(2))
        .await;
    assert_eq!(alice.next_of("message").await["event"], "after");
    let ((), code) = tokio::join!(two.shutdown(), alice.closed());
    assert_eq!(
        code, 1012,
        "a clustered node in this process closes with 1012 too"
    );
}

/// With `reject_new`, `max_connections_per_user` holds across the cluster exactly as on one
/// node: a user at the limit with connections on both nodes who connects to either is refused
/// with 4003 (`user_limit`) before any `welcome`, and the refusals do not count. Once one of
/// the user's connections closes, a new one is admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_at_the_limit_across_nodes_is_refused_before_welcome() {
    let redis = Redis::start().await;
    let settings = redis.settings_with_user_limit(2);
    let mut one = TestServer::with(&settings).await;
    let mut two = TestServer::with(&settings).await;
    let first = one.connect("alice").await;
    let second = two.connect("alice").await;
    user_connections_reach(&one, "alice", 2).await;

    for node in [&one, &two] {
        let refused = refused_before_welcome(node, "alice").await;
        assert_eq!(refused, (4003, "user_limit".to_owned()));
        metric_reaches(node, "cluster_refused_total", 1.0).await;
    }
    assert_eq!(bridge(&one).user_connections("alice").await.unwrap(), 2);

    drop(first);
    user_connections_reach(&two, "alice", 1).await;
    let third = two.connect("alice").await;
    user_connections_reach(&one, "alice", 2).await;
    drop((second, third));
    one.shutdown().await;
    two.shutdown().await;
}

/// While Redis is unreachable a node admits connections without the cluster-wide check (each
/// hub still holds its own limit): a user at the cluster's limit still connects, and receives
/// what is published to it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_unreachable_connections_are_admitted_unchecked() {
    let redis = Redis::start().await;
    let settings = redis.settings_with_user_limit(1);
    let mut one = TestServer::with(&settings).await;
    let mut two = TestServer::with(&settings).await;
    let first = one.connect("alice").await;
    user_connections_reach(&two, "alice", 1).await;

    drop(redis);
    let mut second = two.connect("alice").await;
    two.publish(json!({"user": "alice"}), "unchecked", json!(1))
        .await;
    assert_eq!(second.next_of("message").await["event"], "unchecked");
    drop((first, second));
    one.shutdown().await;
    two.shutdown().await;
}

/// A node with shared streams that began shutting down still takes what the cluster's shared
/// history keeps (publishes to users, threads and rooms; agent-run events) and answers the
/// rest 503 `shutting_down` (to everyone, ephemeral, or a list with either): nothing it
/// answered 200 is lost with it. Once it has shut down, the user's client resumes on the
/// other node and receives what it took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clustered_node_shutting_down_takes_only_what_the_shared_history_keeps() {
    let redis = Redis::start().await;
    let [mut one, mut two] = two_nodes(&redis).await;
    let mut zed = two.connect("zed").await;
    one.publish(json!({"user": "zed"}), "before", json!(0))
        .await;
    let before = zed.next_of("message").await;
    drop(zed);
    one.running.as_ref().unwrap().drain().await;

    let kept = [
        (
            "/api/publish",
            json!({"to": {"user": "zed"}, "event": "kept"}),
        ),
        (
            "/api/runs/zed/r1/events",
            json!({"event": "agent_started", "agent": "a", "data": null}),
        ),
    ];
    for (path, body) in kept {
        let (status, answer) = one.api("POST", path, Some(body)).await;
        assert_eq!(status, 200, "{path}: {answer}");
    }
    let refused = [
        json!({"to": "all", "event": "lost"}),
        json!({"to": {"user": "zed"}, "event": "lost", "ephemeral": "typing"}),
        json!({"to": [{"user": "zed"}, "all"], "event": "lost"}),
    ];
    for body in refused {
        let (status, answer) = one.api("POST", "/api/publish", Some(body.clone())).await;
        assert_eq!(
            (status, answer["error"].clone()),
            (503, json!("shutting_down")),
            "{body}"
        );
    }
    one.shutdown().await;

    let resume = format!("&resume={}:{}", before["epoch"], before["seq"]);
    let mut zed = two.connect_with("zed", &resume).await;
    assert_eq!(zed.next_of("message").await["event"], "kept");
    assert_eq!(zed.json().await["type"], "agent_started");
    let ((), code) = tokio::join!(two.shutdown(), zed.closed());
    assert_eq!(code, 1012);
}

/// An HS256 token of `user` issued at `iat` with the id `jti`, valid ten minutes.
fn token_issued(user: &str, iat: u64, jti: Option<&str>) -> String {
    TokenKeys::new(SECRET).sign(&Claims {
        sub: user.into(),
        exp: now() + 600,
        iat: Some(iat),
        jti: jti.map(str::to_owned),
        ..Claims::default()
    })
}

/// The time to live of `key` in `redis`, in milliseconds (`redis-cli PTTL`: -2 if absent).
fn pttl(redis: &Redis, key: &str) -> i64 {
    let port = redis
        .url()
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let output = std::process::Command::new("redis-cli")
        .args(["-p", &port, "PTTL", key])
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap()
}

/// A user revoked through one node is refused on both, and their connection on the other
/// node closes with 4002; a token issued after the cut-off connects. A token revoked by id
/// through the second node is refused by the first. Both revocations expire in Redis when
/// the tokens they concern have (the longest lifetime plus twice the leeway).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_through_one_node_holds_on_every_node() {
    let redis = Redis::start().await;
    let [one, two] = two_nodes(&redis).await;
    let old = token_issued("alice", now() - 5, None);
    let mut alice = two.connect_token(&old).await;

    let revoke = json!({"revoke": true});
    let (status, answer) = one
        .api("POST", "/api/users/alice/disconnect", Some(revoke))
        .await;
    assert_eq!(status, 200, "{answer}");
    let cutoff = answer["cutoff"].as_u64().unwrap();
    assert_eq!(alice.closed().await, 4002);
    for node in [&one, &two] {
        assert_eq!(node.token_refusal(&old).await, "revoked");
    }
    let newer = token_issued("alice", cutoff + 1, None);
    two.connect_token(&newer).await;

    let stolen = token_issued("bob", now(), Some("b-1"));
    let body = json!({"jti": "b-1", "exp": now() + 600});
    let (status, _) = two.api("POST", "/api/tokens/revoke", Some(body)).await;
    assert_eq!(status, 200);
    assert_eq!(one.token_refusal(&stolen).await, "revoked");
    two.connect_token(&token_issued("bob", now(), Some("b-2")))
        .await;

    let keep = (24 * 3600 + 2 * 30) * 1000;
    let user_ttl = pttl(&redis, "sb:revoked:user:alice");
    assert!(user_ttl > 0 && user_ttl <= keep, "{user_ttl}");
    let token_ttl = pttl(&redis, "sb:revoked:token:b-1");
    assert!(
        token_ttl > 0 && token_ttl <= (600 + 30) * 1000,
        "{token_ttl}"
    );
    shut_down([one, two]).await;
}

/// A ticket issued through one node opens one connection on the other, and is then
/// `invalid_ticket` on every node; its key in Redis is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_opens_one_connection_in_the_whole_cluster() {
    let redis = Redis::start().await;
    let [one, two] = two_nodes(&redis).await;
    let request = json!({"user": "alice", "rooms": ["lobby"]});
    let (status, answer) = one.api("POST", "/api/tickets", Some(request)).await;
    assert_eq!(status, 200, "{answer}");
    let ticket = answer["ticket"].as_str().unwrap().to_owned();
    assert!(pttl(&redis, &format!("sb:ticket:{ticket}")) > 0);

    let mut alice = WsClient::welcomed(two.addr(), &format!("ticket={ticket}")).await;
    assert_eq!(alice.welcome()["user"], "alice");
    alice.join("lobby").await;
    for node in [&one, &two] {
        let reason = node.refusal_reason(&format!("?ticket={ticket}"), &[]).await;
        assert_eq!(reason, "invalid_ticket");
    }
    assert_eq!(pttl(&redis, &format!("sb:ticket:{ticket}")), -2);
    drop(alice);
    shut_down([one, two]).await;
}

/// While Redis is unreachable a revocation is answered 503 `cluster_unavailable`: the user's
/// connections on that node are closed and the revocation holds there, while the other node,
/// which could not learn of it, still accepts the token. Tickets are refused with 503, since
/// no other node could accept them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_a_revocation_holds_on_its_node_only() {
    let mut redis = Redis::start().await;
    let [one, two] = two_nodes(&redis).await;
    let old = token_issued("alice", now() - 5, None);
    let mut alice = one.connect_token(&old).await;
    redis.kill();

    let revoke = json!({"revoke": true});
    let (status, answer) = one
        .api("POST", "/api/users/alice/disconnect", Some(revoke))
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (503, Some("cluster_unavailable"))
    );
    assert_eq!(alice.closed().await, 4002);
    assert_eq!(one.token_refusal(&old).await, "revoked");
    two.connect_token(&old).await;

    let (status, answer) = one
        .api("POST", "/api/tickets", Some(json!({"user": "alice"})))
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (503, Some("cluster_unavailable"))
    );
    shut_down([one, two]).await;
}

/// A message to a user connected nowhere waits in the shared history: the user's next
/// connection receives it, on whichever node it opens and without a position; a second
/// connection on that node does not receive it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_a_user_connected_nowhere_reaches_the_next_connection_on_any_node() {
    let redis = Redis::start().await;
    let [one, two] = two_nodes(&redis).await;
    one.publish(json!({"user": "alice"}), "while-away", json!(1))
        .await;
    let mut alice = two.connect("alice").await;
    let waited = alice.fence().await;
    assert_eq!(waited.len(), 1, "{waited:?}");
    let frame = &waited[0];
    assert_eq!(
        (&frame["event"], &frame["seq"], &frame["stream"]),
        (&json!("while-away"), &json!(1), &json!("user:alice"))
    );
    let mut again = two.connect("alice").await;
    assert_eq!(again.fence().await, Vec::<Value>::new());
    shut_down([one, two]).await;
}

/// A node keeps a user's stream after the user's last connection there closed, but stops
/// following it: a message sent while the user is connected nowhere still reaches the next
/// connection there, without a position, and what follows comes without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stopped_following_a_users_stream_catches_up_before_the_next_connection() {
    let redis = Redis::start().await;
    let [one, two] = two_nodes(&redis).await;
    let mut alice = two.connect("alice").await;
    one.publish(json!({"user": "alice"}), "first", json!(1))
        .await;
    assert_eq!(alice.next_of("message").await["event"], "first");
    alice.close().await;
    // Node two holds the user's channel for a while after a connection (10 s): past that, it
    // no longer follows the stream.
    unsubscribed(&two, "sb:user:alice").await;
    one.publish(json!({"user": "alice"}), "while-away", json!(2))
        .await;
    let mut again = two.connect("alice").await;
    let waited = again.fence().await;
    let seqs: Vec<_> = waited.iter().map(|f| (&f["event"], &f["seq"])).collect();
    assert_eq!(seqs, [(&json!("while-away"), &json!(2))], "{waited:?}");
    one.publish(json!({"user": "alice"}), "after", json!(3))
        .await;
    let frame = again.json().await;
    assert_eq!(
        (&frame["event"], &frame["seq"]),
        (&json!("after"), &json!(3))
    );
    shut_down([one, two]).await;
}
