//! The bounded WebSocket write buffer, end to end: a peer that pings and never reads its pongs
//! fills its connection's write buffer up to `Handle::write_buffer_limit` and no further, and the
//! hub's next frame for it, which does not fit, ends the connection as a slow consumer (4008)
//! with the socket dropped. Both ways of accepting WebSockets are covered: the transport's own
//! handshake (`Handle::serve`) and an axum route. Real clients over real sockets; timeouts only
//! guard against hangs.

use std::time::Duration;
use switchboard::{Config, Notice, Open, Reason};
use switchboard_testing::{authenticate, guard, Received, WsClient};
use switchboard_tokio::{Builder, Event, Events, Handle};
use tokio::net::TcpListener;

/// A config that leaves the write buffer as the only limit a ping flood meets: no rate limit
/// to speak of, no heartbeat ping that would reach the writer first, and small backpressure
/// budgets, so that the write buffer bound (computed from them) is small too.
fn config() -> Config {
    let mut config = Config::development();
    config.limits.messages_per_second = u32::MAX;
    config.limits.message_burst = u32::MAX;
    config.heartbeat.interval = Duration::from_secs(600);
    config.heartbeat.timeout = Duration::from_secs(1800);
    config.backpressure.inflight_bytes = 16 * 1024;
    config.backpressure.queue_bytes = 256 * 1024;
    config
}

/// Why `user`'s connection closed, from the application's events.
async fn closed(events: &mut Events, user: &str) -> Reason {
    loop {
        match guard("the close", events.recv()).await {
            Some(Event {
                notice: Notice::Closed {
                    user: u, reason, ..
                },
                ..
            }) if u.as_str() == user => return reason,
            Some(_) => {}
            None => panic!("the switchboard stopped"),
        }
    }
}

/// The flood, from a client with small socket buffers connected to `addr`: the hub closes it as
/// a slow consumer, and the client finds its socket dropped without a close frame and without
/// the reply to its last frame.
async fn a_peer_that_leaves_its_pongs_unread_is_closed_as_a_slow_consumer(
    handle: &Handle,
    events: &mut Events,
    addr: std::net::SocketAddr,
) {
    let mut flooder = WsClient::open(addr, "user=flooder", true)
        .await
        .expect("accepted");
    assert_eq!(flooder.json().await["type"], "welcome");

    flooder
        .leave_pongs_unread(handle.write_buffer_limit())
        .await;

    assert_eq!(closed(events, "flooder").await, Reason::SlowConsumer);
    assert_eq!(flooder.read().await, Received::Closed(None));
    let closes = handle.stats().await.expect("running").total.counters.closes;
    assert_eq!(closes.get(Reason::SlowConsumer), 1);
}

/// The write buffer bound is what the handshake of `Handle::serve` configures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_transports_handshake_the_write_buffer_is_bounded() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound");
    let (handle, mut events) = Builder::new(config()).shards(2).start();
    let serving = tokio::spawn(handle.clone().serve(listener, authenticate));

    a_peer_that_leaves_its_pongs_unread_is_closed_as_a_slow_consumer(&handle, &mut events, addr)
        .await;

    handle.shutdown().await;
    serving.abort();
}

/// The write buffer bound is what `axum::upgrade` configures.
#[cfg(feature = "axum")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_an_axum_route_the_write_buffer_is_bounded() {
    use switchboard_testing::serve_ws_route;
    use switchboard_tokio::axum::upgrade;

    let (handle, mut events) = Builder::new(config()).shards(2).start();
    let hub = handle.clone();
    let (addr, serving) =
        serve_ws_route(move |ws, user, _| upgrade(&hub, ws, Open::new(user))).await;

    a_peer_that_leaves_its_pongs_unread_is_closed_as_a_slow_consumer(&handle, &mut events, addr)
        .await;

    handle.shutdown().await;
    serving.abort();
}
