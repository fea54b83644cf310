//! The tokio transport end to end: real WebSocket clients (tokio-tungstenite) over real
//! sockets on 127.0.0.1, real timers. Timeouts here only guard against hangs; nothing asserts
//! how long anything took.

use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use switchboard::{
    AgentEvent, AgentUpdate, Config, Envelope, Message, Notice, Open, Reason, RemoteTarget, Target,
    UserId,
};
use switchboard_testing::{authenticate, guard, query_param, Received, WsClient, GUARD};
use switchboard_tokio::{
    cluster_channel, Builder, ClusterEvent, ClusterEvents, Error, Event, Events, Handle,
};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite;

/// A development config whose heartbeat stays out of the way of tests that are not about it.
fn config() -> Config {
    let mut config = Config::development();
    config.heartbeat.interval = Duration::from_secs(60);
    config.heartbeat.timeout = Duration::from_secs(180);
    config.heartbeat.grace = Duration::from_secs(60);
    config
}

struct Server {
    handle: Handle,
    events: Events,
    addr: SocketAddr,
    serving: JoinHandle<()>,
}

async fn start(config: Config, shards: usize) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    // Clients left unread at the end of a test do not answer the close: don't wait long.
    let builder = Builder::new(config)
        .shards(shards)
        .close_timeout(Duration::from_millis(500));
    start_on(builder, listener)
}

fn start_on(builder: Builder, listener: TcpListener) -> Server {
    let addr = listener.local_addr().expect("bound");
    let (handle, events) = builder.start();
    let serving = tokio::spawn(handle.clone().serve(listener, authenticate));
    Server {
        handle,
        events,
        addr,
        serving,
    }
}

impl Server {
    /// The next notice.
    async fn notice(&mut self) -> (usize, Notice) {
        match guard("a notice", self.events.recv()).await {
            Some(Event { shard, notice }) => (shard, notice),
            None => panic!("the switchboard stopped"),
        }
    }

    /// Wait for `user`'s connection to close and return why.
    async fn closed(&mut self, user: &str) -> Reason {
        loop {
            if let (
                _,
                Notice::Closed {
                    user: u, reason, ..
                },
            ) = self.notice().await
            {
                if u.as_str() == user {
                    return reason;
                }
            }
        }
    }

    /// Users named `prefix-N` on `count` distinct shards, in shard order.
    fn users_on_distinct_shards(&self, prefix: &str, count: usize) -> Vec<String> {
        let mut found: Vec<Option<String>> = vec![None; count];
        for i in 0.. {
            let user = format!("{prefix}-{i}");
            let shard = self.handle.shard_of(&UserId::from(user.as_str()));
            if shard < count && found[shard].is_none() {
                found[shard] = Some(user);
            }
            if found.iter().all(Option::is_some) {
                break;
            }
        }
        found.into_iter().flatten().collect()
    }
}

fn message(event: &str) -> Message {
    Message::new(event, json!({"n": 1}))
}

/// The first frame on an accepted connection is `welcome`, naming the authenticated user and
/// the hub's heartbeat interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_frame_is_welcome() {
    let server = start(config(), 2).await;
    let mut alice = WsClient::connect(server.addr, "user=alice&thread=t1").await;
    let welcome = alice.json().await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["user"], "alice");
    assert_eq!(welcome["thread"], "t1");
    assert_eq!(welcome["heartbeat_ms"], 60_000);
    assert_eq!(welcome["stream"], "user:alice");
    server.handle.shutdown().await;
}

/// A room spans shards: a publish to it reaches its members on every shard, summed in one
/// delivery, and no one outside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_publish_reaches_its_members_on_every_shard() {
    let server = start(config(), 4).await;
    let users = server.users_on_distinct_shards("member", 4);
    let mut members = Vec::new();
    for user in &users {
        let mut client = WsClient::welcomed(server.addr, &format!("user={user}")).await;
        client.join("lobby").await;
        members.push(client);
    }
    let mut outsider = WsClient::welcomed(server.addr, "user=outsider").await;

    let delivery = server
        .handle
        .publish(Target::Room("lobby".into()), message("news"))
        .await
        .expect("published");
    assert_eq!(delivery.reached, 4);
    for member in &mut members {
        assert_eq!(member.event().await, "news");
    }
    server
        .handle
        .publish(Target::User("outsider".into()), message("sentinel"))
        .await
        .expect("published");
    assert_eq!(
        outsider.event().await,
        "sentinel",
        "the room's message came first"
    );

    let shards: std::collections::BTreeSet<usize> = server
        .handle
        .room_members("lobby")
        .await
        .expect("running")
        .iter()
        .map(|c| usize::from(c.shard()))
        .collect();
    assert_eq!(shards.len(), 4);
    let stats = server.handle.stats().await.expect("running");
    assert_eq!(stats.total.connections, 5);
    assert_eq!(stats.shards.len(), 4);
    assert!(stats.shards.iter().all(|s| s.connections >= 1));
    server.handle.shutdown().await;
}

/// A client's own room `publish` reaches the room's members on every shard, each once and
/// with the sender named, but not the sender; the connection id in `welcome` names its shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_room_publish_reaches_members_on_every_shard() {
    let server = start(config(), 3).await;
    let users = server.users_on_distinct_shards("member", 3);
    let mut members = Vec::new();
    for (shard, user) in users.iter().enumerate() {
        let mut client = WsClient::connect(server.addr, &format!("user={user}")).await;
        let welcome = client.json().await;
        let conn: switchboard::ConnId = welcome["conn"].as_str().unwrap().parse().unwrap();
        assert_eq!(usize::from(conn.shard()), shard);
        client.join("lobby").await;
        members.push(client);
    }
    members[0]
        .send(json!({"type": "publish", "room": "lobby", "event": "hi", "data": 1}))
        .await;
    for member in &mut members[1..] {
        let frame = member.json().await;
        assert_eq!(
            (&frame["event"], &frame["from"]),
            (&json!("hi"), &json!(users[0]))
        );
    }
    server
        .handle
        .publish(Target::Room("lobby".into()), message("after"))
        .await
        .expect("published");
    for member in &mut members {
        assert_eq!(member.event().await, "after", "nothing else came before");
    }
    server.handle.shutdown().await;
}

/// A user target reaches every connection of that user, a thread target only the user's
/// connections bound to that thread; another user receives neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_thread_targets_reach_only_the_addressed_connections() {
    let server = start(config(), 2).await;
    let mut on_thread = WsClient::welcomed(server.addr, "user=alice&thread=t1").await;
    let mut unbound = WsClient::welcomed(server.addr, "user=alice").await;
    let mut bob = WsClient::welcomed(server.addr, "user=bob&thread=t1").await;
    let handle = &server.handle;

    let thread = Target::Thread {
        user: "alice".into(),
        thread: "t1".into(),
    };
    let delivery = handle.publish(thread, message("for-t1")).await.expect("ok");
    assert_eq!(delivery.reached, 1);
    assert!(delivery.position.is_some(), "sequenced in alice's stream");
    let delivery = handle
        .publish(Target::User("alice".into()), message("for-alice"))
        .await
        .expect("ok");
    assert_eq!(delivery.reached, 2);
    handle
        .publish(Target::User("bob".into()), message("for-bob"))
        .await
        .expect("ok");

    assert_eq!(on_thread.event().await, "for-t1");
    assert_eq!(on_thread.event().await, "for-alice");
    assert_eq!(unbound.event().await, "for-alice");
    assert_eq!(bob.event().await, "for-bob");
    let connections = handle.user_connections("alice").await.expect("running");
    assert_eq!(connections.len(), 2);
    server.handle.shutdown().await;
}

/// A user handle only reaches its own user: another user's connection is unknown to it, and
/// disconnecting closes only its own connections (4002).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_handle_is_isolated_from_other_users() {
    let mut server = start(config(), 2).await;
    let mut alice = WsClient::welcomed(server.addr, "user=alice").await;
    let mut bob = WsClient::welcomed(server.addr, "user=bob").await;
    let scope = server.handle.user("alice");
    let bobs = server
        .handle
        .user_connections("bob")
        .await
        .expect("running");

    assert_eq!(scope.publish(message("mine")).await.expect("ok").reached, 1);
    assert_eq!(
        scope.send_to_connection(bobs[0], message("stolen")).await,
        Err(Error::UnknownConnection(bobs[0]))
    );
    assert_eq!(
        scope.connection_info(bobs[0]).await,
        Err(Error::UnknownConnection(bobs[0]))
    );
    assert_eq!(
        scope.connections().await,
        server.handle.user_connections("alice").await
    );
    assert_eq!(alice.event().await, "mine");

    assert_eq!(scope.disconnect().await, Ok(1));
    assert_eq!(alice.close_code().await, Some(4002));
    assert_eq!(server.closed("alice").await, Reason::Disconnected);
    server
        .handle
        .publish(Target::User("bob".into()), message("sentinel"))
        .await
        .expect("ok");
    assert_eq!(bob.event().await, "sentinel", "bob saw nothing of alice's");
    assert_eq!(server.handle.is_user_connected("bob").await, Ok(true));
    server.handle.shutdown().await;
}

/// A client that never reads never answers pings: the hub closes it with 4000 after the
/// heartbeat timeout and grace, while a client that reads (and so answers) stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_closed_for_heartbeat_timeout() {
    let mut config = Config::development();
    // Short enough for a quick test, long enough that a reading client on a loaded machine
    // answers in time: a scheduling stall of a second does not make it silent.
    config.heartbeat.interval = Duration::from_millis(200);
    config.heartbeat.timeout = Duration::from_millis(1500);
    config.heartbeat.grace = Duration::from_millis(1000);
    let mut server = start(config, 2).await;
    let mut silent = WsClient::connect(server.addr, "user=silent").await;
    let mut healthy = WsClient::welcomed(server.addr, "user=healthy").await;
    let reading = tokio::spawn(async move { healthy.close_code().await });

    assert_eq!(server.closed("silent").await, Reason::HeartbeatTimeout);
    assert_eq!(silent.json().await["type"], "welcome");
    assert_eq!(silent.close_code().await, Some(4000));
    assert_eq!(server.handle.is_user_connected("healthy").await, Ok(true));

    server.handle.shutdown().await;
    assert_eq!(
        guard("the healthy client", reading).await.expect("ran"),
        Some(1001)
    );
}

/// A client that stops reading stops the flush reports: the hub queues for it, then closes
/// it with 4008 once its queue overflows, while a reading member of the same room receives
/// every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_is_closed_with_4008_and_others_keep_receiving() {
    const MESSAGES: usize = 400;
    let mut config = config();
    config.backpressure.inflight_bytes = 16 * 1024;
    config.backpressure.queue_messages = 64;
    config.backpressure.queue_bytes = 256 * 1024;
    // Small socket buffers, so that the kernel cannot absorb the whole test.
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_send_buffer_size(4096).expect("sndbuf");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let listener = socket.listen(64).expect("listen");
    let builder = Builder::new(config)
        .shards(2)
        .close_timeout(Duration::from_secs(30));
    let mut server = start_on(builder, listener);

    let mut slow = WsClient::open(server.addr, "user=slow", true)
        .await
        .expect("handshake accepted");
    assert_eq!(slow.json().await["type"], "welcome");
    slow.join("feed").await;
    let mut fast = WsClient::welcomed(server.addr, "user=fast").await;
    fast.join("feed").await;

    // The fast reader reports its progress; the publisher stays a few messages ahead of it,
    // so only the reader that stopped can fall behind.
    let (progress, mut read_so_far) = tokio::sync::watch::channel(0usize);
    let reader = tokio::spawn(async move {
        let mut seqs = Vec::new();
        while seqs.len() < MESSAGES {
            let frame = fast.json().await;
            assert_eq!(frame["type"], "message");
            seqs.push(frame["seq"].as_u64().expect("sequenced"));
            progress.send_replace(seqs.len());
        }
        (fast, seqs)
    });
    let payload = "x".repeat(2048);
    for i in 0..MESSAGES {
        guard("the fast reader", read_so_far.wait_for(|&n| n + 8 >= i))
            .await
            .expect("reader alive");
        let m = Message::new("tick", json!({ "i": i, "pad": payload }));
        server
            .handle
            .publish(Target::Room("feed".into()), m)
            .await
            .expect("published");
    }
    let (fast, seqs) = guard("the fast reader", reader).await.expect("ran");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, none missing"
    );
    assert_eq!(server.closed("slow").await, Reason::SlowConsumer);

    let mut received = 0;
    let code = loop {
        match slow.read().await {
            Received::Frame(frame) if frame["type"] == "message" => received += 1,
            Received::Frame(_) => {}
            Received::Closed(code) => break code,
        }
    };
    assert_eq!(code, Some(4008));
    assert!(received < MESSAGES, "the slow reader was cut off");
    assert_eq!(server.handle.is_user_connected("fast").await, Ok(true));
    drop((fast, slow));
    server.handle.shutdown().await;
}

/// A client whose connection dropped reconnects with `resume=<epoch>:<seq>` and receives
/// everything after that position — including what was published while it was away — and
/// nothing before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_client_resumes_from_its_position() {
    let mut server = start(config(), 2).await;
    let mut alice = WsClient::welcomed(server.addr, "user=alice").await;
    let alice_target = || Target::User("alice".into());
    for event in ["m1", "m2"] {
        server
            .handle
            .publish(alice_target(), message(event))
            .await
            .expect("ok");
    }
    let m1 = alice.json().await;
    assert_eq!(m1["event"], "m1");
    assert_eq!(alice.event().await, "m2");
    drop(alice);
    assert_eq!(server.closed("alice").await, Reason::PeerClosed);
    let delivery = server
        .handle
        .publish(alice_target(), message("m3"))
        .await
        .expect("ok");
    assert!(delivery.buffered, "kept for alice's next connection");

    // Pretend m2 was lost with the connection: resume right after m1.
    let query = format!("user=alice&resume={}:{}", m1["epoch"], m1["seq"]);
    let mut again = WsClient::welcomed(server.addr, &query).await;
    assert_eq!(again.event().await, "m2");
    assert_eq!(again.event().await, "m3");
    server.handle.shutdown().await;
}

/// A user's stream lives on the user's shard only: a backend publish to users who are offline
/// is buffered once per user, on that user's shard (no sibling shard keeps a copy), and each
/// user receives what waited for it when it connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_to_offline_users_are_buffered_once_on_each_users_shard() {
    let server = start(config(), 2).await;
    let users: Vec<String> = (0..40).map(|i| format!("offline-{i}")).collect();
    for user in &users {
        let delivery = server
            .handle
            .publish(Target::User(user.as_str().into()), message("waiting"))
            .await
            .expect("ok");
        assert!(delivery.buffered, "{user} is offline");
        let to_thread = Target::Thread {
            user: user.as_str().into(),
            thread: "t1".into(),
        };
        server
            .handle
            .publish(to_thread, message("for-t1"))
            .await
            .expect("ok");
    }
    // Everything the publishes relayed to other shards has been fed by now.
    server.handle.fed(None).await.expect("running");
    let stats = server.handle.stats().await.expect("running");
    assert_eq!(stats.total.streams, users.len(), "one stream per user");
    assert_eq!(stats.total.history_messages, 2 * users.len());
    for (shard, shard_stats) in stats.shards.iter().enumerate() {
        let here = users
            .iter()
            .filter(|u| server.handle.shard_of(&UserId::from(u.as_str())) == shard)
            .count();
        assert_eq!(shard_stats.streams, here, "shard {shard}");
    }
    let mut first = WsClient::welcomed(server.addr, &format!("user={}&thread=t1", users[0])).await;
    assert_eq!(first.event().await, "waiting");
    assert_eq!(first.event().await, "for-t1");
    server.handle.shutdown().await;
}

/// A handshake the authenticator refuses is answered with its HTTP status (401) and never
/// becomes a WebSocket or reaches a hub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_handshake_gets_401_and_no_websocket() {
    let server = start(config(), 2).await;
    let url = format!("ws://{}/ws?nobody=1", server.addr);
    match guard("the handshake", tokio_tungstenite::connect_async(url)).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("the handshake was accepted"),
    }
    let stats = server.handle.stats().await.expect("running");
    assert_eq!(stats.total.counters.opened, 0);
    assert_eq!(stats.total.connections, 0);
    server.handle.shutdown().await;
}

/// `wait_for_connection` resolves true when the user connects, and false when the timeout
/// passes first; a message published while the user was away arrives after the welcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_connection_resolves_when_the_user_connects() {
    let server = start(config(), 2).await;
    let handle = server.handle.clone();
    let delivery = handle
        .publish(Target::User("carol".into()), message("while-away"))
        .await
        .expect("ok");
    assert!(delivery.buffered);
    let waiting = tokio::spawn({
        let handle = handle.clone();
        async move { handle.wait_for_connection("carol", GUARD).await }
    });
    let mut carol = WsClient::welcomed(server.addr, "user=carol").await;
    assert_eq!(guard("the waiter", waiting).await.expect("ran"), Ok(true));
    assert_eq!(carol.event().await, "while-away");
    assert_eq!(
        handle.user("carol").wait_for_connection(GUARD).await,
        Ok(true)
    );
    assert_eq!(
        handle
            .wait_for_connection("nobody", Duration::from_millis(50))
            .await,
        Ok(false)
    );
    server.handle.shutdown().await;
}

/// A request the application makes runs on the caller's thread when the shard is free: a
/// deadline it sets on a node with nothing else to time (no connection, no other waiter) still
/// wakes the shard task, which would otherwise sleep with no timer at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_on_an_idle_node_expires_on_time() {
    let server = start(config(), 1).await;
    let handle = server.handle.clone();
    // Let the shard task go to sleep, so that the request finds the shard free.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waited = guard(
        "the waiter's deadline",
        handle.wait_for_connection("nobody", Duration::from_millis(50)),
    )
    .await;
    assert_eq!(waited, Ok(false));
    server.handle.shutdown().await;
}

/// Shutdown delivers what was already sent, closes every client with 1001, stops accepting,
/// and then the handle refuses requests and the event inbox ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_client_with_1001_after_what_was_sent() {
    let mut server = start(config(), 2).await;
    let users = server.users_on_distinct_shards("client", 2);
    let mut readers = Vec::new();
    for user in &users {
        let mut client = WsClient::welcomed(server.addr, &format!("user={user}")).await;
        readers.push(tokio::spawn(async move {
            let last = client.event().await;
            (last, client.close_code().await)
        }));
    }
    let delivery = server
        .handle
        .publish(Target::All, message("last-words"))
        .await
        .expect("ok");
    assert_eq!(delivery.reached, 2);
    server.handle.shutdown().await;
    for reader in readers {
        let (last, code) = guard("a client", reader).await.expect("ran");
        assert_eq!(last, "last-words");
        assert_eq!(code, Some(1001));
    }

    guard("the accept loop", &mut server.serving)
        .await
        .expect("ran");
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "no longer listening"
    );
    assert_eq!(
        server.handle.publish(Target::All, message("late")).await,
        Err(Error::Stopped)
    );
    while guard("the event inbox", server.events.recv())
        .await
        .is_some()
    {}
}

/// Once shut down, the switchboard has no answer to any query, and says so: every query of
/// the handle and of a user handle is `Error::Stopped`, not an empty answer (`false`, `0`,
/// no connections, no members, no statistics).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_switchboard_answers_every_query_with_stopped() {
    let server = start(config(), 2).await;
    let alice = WsClient::welcomed(server.addr, "user=alice").await;
    let conn: switchboard::ConnId = alice.id().parse().expect("a connection id");
    let handle = &server.handle;
    server.handle.shutdown().await;

    assert_eq!(handle.is_user_connected("alice").await, Err(Error::Stopped));
    assert_eq!(handle.user_connections("alice").await, Err(Error::Stopped));
    assert_eq!(handle.room_members("lobby").await, Err(Error::Stopped));
    assert_eq!(handle.connection_info(conn).await, Err(Error::Stopped));
    assert_eq!(handle.stats().await, Err(Error::Stopped));
    assert_eq!(handle.disconnect_user("alice").await, Err(Error::Stopped));
    assert_eq!(handle.run_report("alice", "r1").await, Err(Error::Stopped));
    assert_eq!(
        handle.wait_for_connection("alice", GUARD).await,
        Err(Error::Stopped)
    );
    let scope = handle.user("alice");
    assert_eq!(scope.is_connected().await, Err(Error::Stopped));
    assert_eq!(scope.connections().await, Err(Error::Stopped));
    assert_eq!(scope.connection_info(conn).await, Err(Error::Stopped));
    assert_eq!(scope.disconnect().await, Err(Error::Stopped));
    assert_eq!(scope.run_report("r1").await, Err(Error::Stopped));
    assert_eq!(scope.wait_for_connection(GUARD).await, Err(Error::Stopped));
}

/// A client frame of an application type reaches the application as an event naming its
/// connection, and the application can answer that connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_frame_reaches_the_application_which_answers() {
    let mut config = config();
    config.app_frame_types = vec!["user_message".into()];
    let mut server = start(config, 2).await;
    let mut alice = WsClient::welcomed(server.addr, "user=alice&thread=t9").await;
    alice
        .send(json!({"type": "user_message", "data": {"text": "hello?"}}))
        .await;
    let conn = loop {
        let event = guard("the app frame", server.events.recv())
            .await
            .expect("running");
        if let Notice::App(app) = &event.notice {
            assert_eq!(app.kind, "user_message");
            assert_eq!(app.data, json!({"text": "hello?"}));
            assert_eq!(app.thread.as_ref().map(|t| t.as_str()), Some("t9"));
            break event.conn().expect("names its connection");
        }
    };
    server
        .handle
        .send_to_connection(conn, message("answer"))
        .await
        .expect("open");
    assert_eq!(alice.event().await, "answer");
    server.handle.shutdown().await;
}

/// Agent run events go to the user's connections bound to the run's thread, in order, and
/// the run's report counts what reached them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_updates_reach_the_connections_on_the_run_thread() {
    let server = start(config(), 2).await;
    let mut on_thread = WsClient::welcomed(server.addr, "user=alice&thread=t1").await;
    let mut elsewhere = WsClient::welcomed(server.addr, "user=alice&thread=t2").await;
    let update = |event| AgentUpdate {
        run: "r1".into(),
        agent: "helper".into(),
        thread: Some("t1".into()),
        event,
    };
    let handle = &server.handle;
    let started = AgentEvent::AgentStarted { data: json!(null) };
    let delivery = handle
        .send_agent_update("alice", update(started))
        .await
        .expect("accepted");
    assert_eq!(delivery.reached, 1);
    let done = AgentEvent::AgentCompleted { result: json!(42) };
    handle
        .user("alice")
        .send_agent_update(update(done))
        .await
        .expect("accepted");

    assert_eq!(on_thread.json().await["type"], "agent_started");
    assert_eq!(on_thread.json().await["type"], "agent_completed");
    let report = handle
        .run_report("alice", "r1")
        .await
        .expect("running")
        .expect("kept");
    assert!(report.fully_delivered());
    handle
        .publish(Target::User("alice".into()), message("sentinel"))
        .await
        .expect("ok");
    assert_eq!(
        elsewhere.event().await,
        "sentinel",
        "another thread saw no run event"
    );
    server.handle.shutdown().await;
}

/// A client frame larger than `max_frame_bytes` closes the connection with 1009: one
/// somewhat over the limit is read and refused by the hub, a much larger one is cut off by
/// the WebSocket layer before it is buffered, and the hub closes it the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_size_limit_closes_with_1009() {
    let mut config = config();
    config.limits.max_frame_bytes = 1024;
    let mut server = start(config, 2).await;
    for (user, size) in [("alice", 1500), ("bob", 3000)] {
        let mut client = WsClient::welcomed(server.addr, &format!("user={user}")).await;
        client
            .send(json!({"type": "ping", "pad": "x".repeat(size)}))
            .await;
        assert_eq!(client.close_code().await, Some(1009), "{size} bytes");
        assert_eq!(server.closed(user).await, Reason::FrameTooLarge);
    }
    server.handle.shutdown().await;
}

/// A client frame of exactly `max_frame_bytes`, many times the WebSocket read buffer, is read
/// whole and answered; one byte more closes the connection with 1009.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_of_the_size_limit_is_read_whole_past_the_read_buffer() {
    let limit = config().limits.max_frame_bytes;
    assert!(limit > 8 * switchboard_transport::READ_BUFFER_BYTES);
    let mut server = start(config(), 2).await;
    let ping = |size: usize| {
        let empty = r#"{"type":"ping","ref":1,"pad":""}"#;
        format!(
            r#"{{"type":"ping","ref":1,"pad":"{}"}}"#,
            "x".repeat(size - empty.len())
        )
    };
    let mut client = WsClient::welcomed(server.addr, "user=alice").await;
    client.send(ping(limit)).await;
    let pong = client.json().await;
    assert_eq!((&pong["type"], &pong["ref"]), (&json!("pong"), &json!(1)));
    client.send(ping(limit + 1)).await;
    assert_eq!(client.close_code().await, Some(1009));
    assert_eq!(server.closed("alice").await, Reason::FrameTooLarge);
    server.handle.shutdown().await;
}

/// With a cluster sink, a room publish over every shard emits one envelope for the other
/// nodes, not one per shard; an envelope from another node is delivered to the room's members
/// on every shard and emits none; envelopes queued from another node are fed in order, and
/// `Handle::fed` returns once all of them were. What the cluster needs never reaches the
/// application's events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_envelopes_leave_once_and_arrive_on_every_shard() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (sink, mut cluster) = cluster_channel();
    let builder = Builder::new(config())
        .shards(2)
        .close_timeout(Duration::from_millis(500))
        .cluster(sink);
    let mut server = start_on(builder, listener);
    let users = server.users_on_distinct_shards("member", 2);
    let mut members = Vec::new();
    for user in &users {
        let mut client = WsClient::welcomed(server.addr, &format!("user={user}")).await;
        client.join("lobby").await;
        members.push(client);
    }
    let markers = server.users_on_distinct_shards("marker", 2);

    // Everything a shard emits for an operation is in the sink before the operation returns:
    // count the envelopes queued before a connection opened afterwards is announced.
    async fn envelopes_before(
        addr: SocketAddr,
        cluster: &mut ClusterEvents,
        marker: &str,
    ) -> usize {
        let _client = WsClient::welcomed(addr, &format!("user={marker}")).await;
        let mut envelopes = 0;
        loop {
            match guard("the marker", cluster.recv()).await.expect("running") {
                ClusterEvent::Publish(_) => envelopes += 1,
                ClusterEvent::Opened { user, .. } if user.as_str() == marker => {
                    return envelopes;
                }
                _ => {}
            }
        }
    }
    while cluster.try_recv().is_some() {}

    let delivery = server
        .handle
        .publish(Target::Room("lobby".into()), message("local"))
        .await
        .expect("ok");
    assert_eq!(delivery.reached, 2);
    assert_eq!(
        envelopes_before(server.addr, &mut cluster, &markers[1]).await,
        1
    );

    let envelope = Envelope {
        target: RemoteTarget::Room {
            room: "lobby".into(),
        },
        message: message("from-afar"),
        from: None,
        except: Vec::new(),
    };
    server.handle.deliver_remote(envelope).expect("queued");
    assert_eq!(
        envelopes_before(server.addr, &mut cluster, &markers[0]).await,
        0
    );
    for member in &mut members {
        assert_eq!(member.event().await, "local");
        assert_eq!(member.event().await, "from-afar");
    }

    // Queued deliveries from other nodes are fed in order; `fed` returns once they all were.
    for i in 0..500 {
        let envelope = Envelope {
            target: RemoteTarget::Room {
                room: "lobby".into(),
            },
            message: message(&format!("queued-{i}")),
            from: None,
            except: Vec::new(),
        };
        server.handle.deliver_remote(envelope).expect("queued");
    }
    server.handle.fed(None).await.expect("running");
    assert_eq!(server.handle.inbound_backlog(), 0);
    for member in &mut members {
        for i in 0..500 {
            assert_eq!(member.event().await, format!("queued-{i}"));
        }
    }

    // The application saw the connections opening, joining and closing, and nothing else:
    // what the cluster needs went to the sink.
    let mut opened = 0;
    while let Some(event) = server.events.try_recv() {
        assert!(
            matches!(
                event.notice,
                Notice::Opened { .. } | Notice::Joined(_) | Notice::Closed { .. }
            ),
            "{event:?}"
        );
        opened += usize::from(matches!(event.notice, Notice::Opened { .. }));
    }
    assert_eq!(opened, users.len() + markers.len());
    server.handle.shutdown().await;
}

/// Embedded in axum: a route hands its `WebSocketUpgrade` extractor to the hub, and the connection
/// behaves like any other (welcome, targeted delivery, graceful close).
#[cfg(feature = "axum")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_axum_route_hands_its_websocket_to_the_hub() {
    use switchboard_testing::serve_ws_route;
    use switchboard_tokio::{axum::upgrade, position_from_query};

    let (handle, _events) = Builder::new(config()).shards(2).start();
    let hub = handle.clone();
    let (addr, serving) = serve_ws_route(move |ws, user, query| {
        let mut open = Open::new(user);
        open.resume = position_from_query(Some(query));
        upgrade(&hub, ws, open)
    })
    .await;

    let mut alice = WsClient::welcomed(addr, "user=alice").await;
    let delivery = handle
        .publish(Target::User("alice".into()), message("via-axum"))
        .await
        .expect("ok");
    assert_eq!(delivery.reached, 1);
    assert_eq!(alice.event().await, "via-axum");
    let url = format!("ws://{addr}/ws");
    match guard("the handshake", tokio_tungstenite::connect_async(url)).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected a 401, got {other:?}"),
    }

    let closing = tokio::spawn(async move { alice.close_code().await });
    handle.shutdown().await;
    assert_eq!(guard("alice", closing).await.expect("ran"), Some(1001));
    serving.abort();
}

/// Embedded in axum: a route may turn a client away after the upgrade with a refusal of its
/// own (a limit the application keeps, say), and the client sees what it sees when the hub
/// refuses an open itself: no `welcome`, the refusal's close code.
#[cfg(feature = "axum")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_axum_route_refuses_a_websocket_as_the_hub_does() {
    use switchboard::OpenError;
    use switchboard_testing::serve_ws_route;
    use switchboard_tokio::axum::{refuse, upgrade};

    let mut config = config();
    config.limits.max_connections_per_user = 1;
    let (handle, _events) = Builder::new(config).shards(2).start();
    let hub = handle.clone();
    let (addr, serving) = serve_ws_route(move |ws, user, query| {
        if query_param(query, "refuse").is_some() {
            return refuse(&hub, ws, OpenError::UserLimit);
        }
        upgrade(&hub, ws, Open::new(user))
    })
    .await;

    let alice = WsClient::welcomed(addr, "user=alice").await;
    let mut by_the_hub = WsClient::connect(addr, "user=alice").await;
    assert!(matches!(
        by_the_hub.read().await,
        Received::Closed(Some(4003))
    ));
    let mut by_the_route = WsClient::connect(addr, "user=bob&refuse=1").await;
    assert!(matches!(
        by_the_route.read().await,
        Received::Closed(Some(4003))
    ));
    assert_eq!(handle.stats().await.expect("running").total.connections, 1);
    drop(alice);
    handle.shutdown().await;
    serving.abort();
}
