//! Peers whose cost the connection driver bounds without the hub's help, end to end: a peer
//! that floods after the hub closed it is read no further than a fixed number of frames, and a
//! peer that reads nothing while it keeps its connection alive with pings is closed as a slow
//! consumer once a write stalls. Nothing here asserts how long anything took; timeouts only
//! guard against hangs.

use bytes::Bytes;
use futures_util::{Sink, Stream};
use serde_json::json;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use switchboard::{Config, Message, Notice, Open, Reason, Target};
use switchboard_testing::{authenticate, guard, Received, WsClient};
use switchboard_tokio::{Builder, Events, Frame, Socket, SocketError, FRAMES_READ_AFTER_CLOSE};
use tokio::net::TcpSocket;

/// Why `user`'s connection closed, from the application's events.
async fn closed(events: &mut Events, user: &str) -> Reason {
    loop {
        match guard("the close", events.recv()).await.map(|e| e.notice) {
            Some(Notice::Closed {
                user: u, reason, ..
            }) if u.as_str() == user => return reason,
            Some(_) => {}
            None => panic!("the switchboard stopped"),
        }
    }
}

/// What the server did with a [`Flooder`].
#[derive(Debug, Default)]
struct Log {
    /// Frames the server read.
    read: usize,
    /// How many it had read when it wrote its close frame, and the close code.
    close: Option<(usize, Option<u16>)>,
}

/// A peer that sends `ping` frames as fast as the server reads them and never a close frame:
/// a socket that is never empty for long and never closes.
struct Flooder {
    log: Arc<Mutex<Log>>,
    /// Every other read finds the socket empty for a moment, as a real one would: the
    /// driver's task yields to its other work.
    empty: bool,
}

impl Stream for Flooder {
    type Item = Result<Frame, SocketError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.empty = !self.empty;
        if self.empty {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.log.lock().expect("not poisoned").read += 1;
        let ping = Bytes::from_static(br#"{"type":"ping"}"#);
        Poll::Ready(Some(Ok(Frame::Text(ping))))
    }
}

impl Socket for Flooder {}

impl Sink<Frame> for Flooder {
    type Error = SocketError;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), SocketError>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, frame: Frame) -> Result<(), SocketError> {
        if let Frame::Close(close) = frame {
            let mut log = self.log.lock().expect("not poisoned");
            log.close = Some((log.read, close.map(|(code, _)| code)));
        }
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), SocketError>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), SocketError>> {
        Poll::Ready(Ok(()))
    }
}

/// A peer that floods frames is closed by the rate limit (4029); from then on the driver
/// stops reading for the hub, and while it waits for the peer's close frame (with the
/// default `close_timeout`, 5 s) it reads at most `FRAMES_READ_AFTER_CLOSE` frames before it
/// drops the socket, instead of reading and discarding the flood at full speed until the
/// timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_after_the_close_is_read_no_further_than_the_close_budget() {
    let (handle, _events) = Builder::new(Config::development()).shards(1).start();
    let log = Arc::new(Mutex::new(Log::default()));
    let flooder = Flooder {
        log: log.clone(),
        empty: false,
    };

    guard(
        "the flooder's connection",
        handle.run_socket(Open::new("flooder"), flooder),
    )
    .await;

    let (read, close) = {
        let log = log.lock().expect("not poisoned");
        (log.read, log.close)
    };
    let (read_before, code) = close.expect("the server wrote a close frame");
    assert_eq!(code, Some(4029));
    let after = read - read_before;
    assert!(
        after <= FRAMES_READ_AFTER_CLOSE,
        "{after} frames read after the close (at most {FRAMES_READ_AFTER_CLOSE})"
    );
    let stats = handle.stats().await.expect("running");
    assert_eq!(stats.total.counters.closes.get(Reason::RateLimited), 1);
    handle.shutdown().await;
}

/// More than the socket buffers of both ends hold (4 KiB each here), and within the hub's
/// in-flight budget (256 KiB): all of it is handed to the writer, and the socket stops
/// taking it.
const MESSAGES: u64 = 48;

/// A client that reads nothing while it pings within the rate is alive for the hub (its pings
/// are signs of life, so the heartbeat never declares it dead) and never overflows it (all
/// it was sent is already with the writer): the writer's batch, which the socket stops
/// taking, is what ends it. After `write_timeout` the hub closes it as a slow consumer, and
/// the close frame follows what the socket took once the client reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_reads_nothing_but_pings_within_the_rate_is_closed_as_a_slow_consumer() {
    let mut config = Config::development();
    // Without its pings, the client would be closed with 4000 within three seconds; with a
    // ping every 100 ms it stays alive however loaded the machine (a stall of two seconds).
    config.heartbeat.interval = Duration::from_millis(200);
    config.heartbeat.timeout = Duration::from_millis(2000);
    config.heartbeat.grace = Duration::from_millis(1000);
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_send_buffer_size(4096).expect("sndbuf");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let listener = socket.listen(64).expect("listen");
    let addr = listener.local_addr().expect("bound");
    let (handle, mut events) = Builder::new(config)
        .shards(1)
        .write_timeout(Duration::from_millis(500))
        .close_timeout(Duration::from_secs(30))
        .start();
    tokio::spawn(handle.clone().serve(listener, authenticate));

    let mut stuck = WsClient::open(addr, "user=stuck", true)
        .await
        .expect("accepted");
    assert_eq!(stuck.json().await["type"], "welcome");
    let pad = "x".repeat(4096);
    for i in 0..MESSAGES {
        let message = Message::new("tick", json!({ "i": i, "pad": pad }));
        let to = Target::User("stuck".into());
        handle.publish(to, message).await.expect("published");
    }
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let pinging = tokio::spawn(async move {
        loop {
            stuck.send_ping(b"alive").await;
            let wait = tokio::time::timeout(Duration::from_millis(100), &mut stopped);
            if wait.await.is_ok() {
                return stuck;
            }
        }
    });

    assert_eq!(closed(&mut events, "stuck").await, Reason::SlowConsumer);
    let _ = stop.send(());
    let mut stuck = guard("the pinging client", pinging).await.expect("ran");
    let mut next = 0;
    let code = loop {
        match stuck.read().await {
            Received::Frame(frame) => {
                assert_eq!(frame["data"]["i"], json!(next), "in order, from the first");
                next += 1;
            }
            Received::Closed(code) => break code,
        }
    };
    assert_eq!(code, Some(4008));
    let stats = handle.stats().await.expect("running");
    assert_eq!(stats.total.counters.closes.get(Reason::SlowConsumer), 1);
    handle.shutdown().await;
}
