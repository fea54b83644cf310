//! The async-std transport end to end, under both runtimes it supports: every case runs once
//! under `async_std::task::block_on` with `AsyncIo::async_std()` and once under
//! `smol::block_on` with `AsyncIo::smol()`, with real WebSocket clients (the conformance
//! suite's) over sockets on 127.0.0.1 and real timers. The protocol itself is the conformance
//! suite's business; these cases cover what is this crate's: spawning, timers, accepting, the
//! handshake, the events. Timeouts only guard against hangs; nothing asserts how long anything
//! took.

use async_net::{TcpListener, TcpStream};
use async_tungstenite::tungstenite;
use futures_util::future::{self, FutureExt, RemoteHandle};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use switchboard::{Config, HeartbeatConfig, Message, Notice, Reason, Target, UserId};
use switchboard_async_std::{AsyncIo, Builder, Events, Handle, Runtime};
use switchboard_conformance::cases::{close_code, frame};
use switchboard_conformance::{authenticate, guard, Received, WsClient};

/// A development config with the given ping interval (the timeout three times as long).
fn config(ping: Duration) -> Config {
    let development = Config::development();
    let heartbeat = HeartbeatConfig {
        interval: ping,
        timeout: 3 * ping,
        grace: ping,
        ..development.heartbeat
    };
    Config {
        heartbeat,
        ..development
    }
}

/// Pings out of the way of cases that are not about them.
const RARELY: Duration = Duration::from_secs(60);

/// A switchboard of two shards serving a listener on 127.0.0.1: its handle, its events, its
/// address, and its accept loop (which ends once shutdown starts; dropping it stops it).
async fn start(runtime: AsyncIo, config: Config) -> (Handle, Events, SocketAddr, RemoteHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound");
    let (handle, events) = Builder::on(runtime, config).shards(2).start();
    let (serve, serving) = handle.clone().serve(listener, authenticate).remote_handle();
    runtime.spawn(serve);
    (handle, events, addr, serving)
}

/// The next notice from any shard.
async fn notice(events: &mut Events) -> Notice {
    match guard("a notice", events.recv()).await {
        Some(event) => event.notice,
        None => panic!("the switchboard stopped"),
    }
}

/// Users named `prefix-N` on shards 0 and 1.
fn users_on_both_shards(handle: &Handle, prefix: &str) -> [String; 2] {
    let on = |shard: usize| {
        (0..)
            .map(|i| format!("{prefix}-{i}"))
            .find(|user| handle.shard_of(&UserId::from(user.as_str())) == shard)
            .expect("some user lands on every shard")
    };
    [on(0), on(1)]
}

/// A client is welcomed with a connection id naming its shard; a client's room publish
/// reaches a member on the other shard, and the application's publish to a user reaches it.
async fn clients_are_served_across_shards(runtime: AsyncIo) {
    let (handle, _events, addr, _serving) = start(runtime, config(RARELY)).await;
    let users = users_on_both_shards(&handle, "member");
    let mut clients = Vec::new();
    for (shard, user) in users.iter().enumerate() {
        let mut client = WsClient::connect(addr, &format!("user={user}")).await;
        let welcome = frame(&mut client).await;
        assert_eq!(welcome["user"], json!(user));
        let conn: switchboard::ConnId = welcome["conn"].as_str().unwrap().parse().unwrap();
        assert_eq!(usize::from(conn.shard()), shard);
        client.send(r#"{"type":"join","room":"lobby"}"#).await;
        assert_eq!(frame(&mut client).await["type"], "joined");
        clients.push(client);
    }
    let chat = r#"{"type":"publish","room":"lobby","event":"hi","data":1}"#;
    clients[0].send(chat).await;
    let relayed = frame(&mut clients[1]).await;
    assert_eq!(
        (&relayed["event"], &relayed["from"]),
        (&json!("hi"), &json!(users[0]))
    );
    let to_sender = Target::User(users[0].as_str().into());
    let delivery = handle
        .publish(to_sender, Message::new("direct", json!(2)))
        .await
        .expect("published");
    assert_eq!(delivery.reached, 1);
    assert_eq!(frame(&mut clients[0]).await["event"], "direct");
    drop(clients);
    handle.shutdown().await;
}

/// A frame of an application type reaches the application's event inbox, naming its
/// connection, and the application answers that connection.
async fn application_frames_reach_the_application(runtime: AsyncIo) {
    let mut config = config(RARELY);
    config.app_frame_types = vec!["user_message".into()];
    let (handle, mut events, addr, _serving) = start(runtime, config).await;
    let mut alice = WsClient::connect(addr, "user=alice").await;
    assert_eq!(frame(&mut alice).await["type"], "welcome");
    alice
        .send(r#"{"type":"user_message","data":"hello?"}"#)
        .await;
    let conn = loop {
        if let Notice::App(app) = notice(&mut events).await {
            assert_eq!(app.data, json!("hello?"));
            break app.conn;
        }
    };
    handle
        .send_to_connection(conn, Message::new("answer", json!(null)))
        .await
        .expect("open");
    assert_eq!(frame(&mut alice).await["event"], "answer");
    drop(alice);
    handle.shutdown().await;
}

/// A handshake the authenticator refuses is answered with its status (401) and never
/// becomes a connection.
async fn a_refused_handshake_gets_401(runtime: AsyncIo) {
    let (handle, _events, addr, _serving) = start(runtime, config(RARELY)).await;
    match WsClient::open(addr, "nobody", false).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("the handshake was accepted"),
    }
    let stats = handle.stats().await.expect("running");
    assert_eq!(stats.total.counters.opened, 0);
    handle.shutdown().await;
}

/// A stream the application accepted itself runs through `Handle::accept`: handshake,
/// authentication, then a connection like any other.
async fn an_accepted_stream_runs_through_accept(runtime: AsyncIo) {
    let (handle, _events) = Builder::on(runtime, config(RARELY)).shards(2).start();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound");
    let server = handle.clone();
    runtime.spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accepted");
        server.accept(tcp, &authenticate).await;
    });
    let mut bob = WsClient::connect(addr, "user=bob").await;
    assert_eq!(frame(&mut bob).await["type"], "welcome");
    handle
        .publish(Target::User("bob".into()), Message::new("hello", json!(1)))
        .await
        .expect("published");
    assert_eq!(frame(&mut bob).await["event"], "hello");
    let (_, code) = future::join(handle.shutdown(), close_code(&mut bob)).await;
    assert_eq!(code, Some(1001));
}

/// The runtime's timers drive the heartbeat: a client that reads nothing answers no ping and
/// is closed with 4000.
async fn a_silent_client_is_closed_for_heartbeat_timeout(runtime: AsyncIo) {
    let (handle, mut events, addr, _serving) =
        start(runtime, config(Duration::from_millis(100))).await;
    let mut silent = WsClient::connect(addr, "user=silent").await;
    let reason = loop {
        if let Notice::Closed { reason, .. } = notice(&mut events).await {
            break reason;
        }
    };
    assert_eq!(reason, Reason::HeartbeatTimeout);
    assert_eq!(frame(&mut silent).await["type"], "welcome");
    assert_eq!(close_code(&mut silent).await, Some(4000));
    handle.shutdown().await;
}

/// The handshake bounds each connection's write buffer (async-tungstenite honours the
/// configuration it is given): a client that pings and never reads its pongs fills the buffer,
/// and the hub's next frame for it, which does not fit, ends it as a slow consumer (4008)
/// with the socket dropped, no close frame and no reply.
async fn a_client_that_leaves_its_pongs_unread_is_closed_as_a_slow_consumer(runtime: AsyncIo) {
    let mut config = config(Duration::from_secs(600));
    config.limits.messages_per_second = u32::MAX;
    config.limits.message_burst = u32::MAX;
    config.backpressure.inflight_bytes = 16 * 1024;
    config.backpressure.queue_bytes = 256 * 1024;
    let (handle, mut events, addr, _serving) = start(runtime, config).await;
    let mut flooder = WsClient::open(addr, "user=flooder", true)
        .await
        .expect("accepted");
    assert_eq!(frame(&mut flooder).await["type"], "welcome");

    flooder
        .leave_pongs_unread(handle.write_buffer_limit())
        .await;

    let reason = loop {
        if let Notice::Closed { reason, .. } = notice(&mut events).await {
            break reason;
        }
    };
    assert_eq!(reason, Reason::SlowConsumer);
    assert_eq!(flooder.read().await, Received::Closed(None));
    handle.shutdown().await;
}

/// Shutdown closes every client with 1001 after what was already sent, stops accepting, and
/// ends the event inbox.
async fn shutdown_closes_with_1001_and_stops_accepting(runtime: AsyncIo) {
    let (handle, mut events, addr, serving) = start(runtime, config(RARELY)).await;
    let mut alice = WsClient::connect(addr, "user=alice").await;
    assert_eq!(frame(&mut alice).await["type"], "welcome");
    handle
        .publish(Target::All, Message::new("last-words", json!(null)))
        .await
        .expect("published");
    let (_, (last, code)) = future::join(handle.shutdown(), async {
        (frame(&mut alice).await, close_code(&mut alice).await)
    })
    .await;
    assert_eq!(
        (last["event"].as_str(), code),
        (Some("last-words"), Some(1001))
    );
    while guard("the event inbox", events.recv()).await.is_some() {}
    guard("the accept loop", serving).await;
    let refused = TcpStream::connect(addr).await;
    assert!(refused.is_err(), "no longer listening");
}

/// One `#[test]` per case and runtime: `on_async_std::case` and `on_smol::case`.
macro_rules! on_both_runtimes {
    ($($case:ident),* $(,)?) => {
        mod on_async_std {
            $(
                #[test]
                fn $case() {
                    async_std::task::block_on(super::$case(super::AsyncIo::async_std()));
                }
            )*
        }
        mod on_smol {
            $(
                #[test]
                fn $case() {
                    smol::block_on(super::$case(super::AsyncIo::smol()));
                }
            )*
        }
    };
}

on_both_runtimes!(
    clients_are_served_across_shards,
    application_frames_reach_the_application,
    a_refused_handshake_gets_401,
    an_accepted_stream_runs_through_accept,
    a_silent_client_is_closed_for_heartbeat_timeout,
    a_client_that_leaves_its_pongs_unread_is_closed_as_a_slow_consumer,
    shutdown_closes_with_1001_and_stops_accepting,
);
