//! What an idle connection costs the server in heap: a client that connected, joined a room and
//! sends nothing more holds at most [`BOUND`] bytes of the server's heap, through the
//! transport's own handshake (`Handle::serve`) and through an axum route.
//!
//! A counting global allocator keeps the live bytes allocated by everything but the clients
//! (whose futures are polled and dropped with the count off; they share no allocation with the
//! server): the server's heap, whatever task holds it.
//! The figure is a count of bytes, the same on any machine for a given build: no time is
//! measured. It leaves out what the allocator itself adds per allocation and what the kernel
//! holds per socket; the server's resident memory per idle connection (`BENCHMARKS.md`,
//! section 7) includes them. Printed with `--nocapture`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use switchboard::{Config, Open};
use switchboard_testing::{authenticate, WsClient};
use switchboard_tokio::{Builder, Events};
use tokio::net::TcpListener;
use tokio::sync::Mutex;

/// The most heap an idle connection may hold on the server, in bytes. Futures are larger in a
/// debug build than in a release one; this bound holds for both (a debug build holds 4 128
/// bytes through `Handle::serve` and 4 464 through axum: no read buffer while idle, the
/// WebSocket layer's own 256 bytes, a task of under 2 KiB. With a 4 KiB read buffer held for
/// the socket's life, axum's upgrade and a task that kept the socket and the `Open` as the
/// arguments of each async fn it passed through, it held 10 448 and 14 624).
const BOUND: i64 = 6 * 1024;

/// Idle clients measured at once (after one that warms the server up).
const CLIENTS: usize = 200;

/// The system allocator, counting the bytes live that the server holds: every allocation
/// but those made while a client is polled or dropped ([`as_client`]).
struct Counting;

static SERVER_BYTES: AtomicI64 = AtomicI64::new(0);

/// Live server allocations by size: bucket `i` holds those of `2^(i-1)` to `2^i - 1` bytes.
static SIZES: [AtomicI64; 24] = [const { AtomicI64::new(0) }; 24];

thread_local! {
    static CLIENT: Cell<bool> = const { Cell::new(false) };
}

fn note(size: usize, sign: i64) {
    // `try_with`: the allocator is also called while thread-locals are torn down.
    if !CLIENT.try_with(Cell::get).unwrap_or(true) {
        SERVER_BYTES.fetch_add(sign * size as i64, Ordering::Relaxed);
        let bucket = (usize::BITS - size.leading_zeros()) as usize;
        SIZES[bucket.min(SIZES.len() - 1)].fetch_add(sign, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the bookkeeping touches
// only a `const`-initialized thread-local and atomics, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size(), 1);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size(), 1);
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(layout.size(), -1);
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(layout.size(), -1);
        note(new_size, 1);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The tests share the counters: one at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// Run `f` as the clients' side: what it allocates and frees is not the server's.
fn as_client<T>(f: impl FnOnce() -> T) -> T {
    CLIENT.with(|c| c.set(true));
    let t = f();
    CLIENT.with(|c| c.set(false));
    t
}

/// A client's future, polled (and dropped) as the clients' side. The server's tasks run on the
/// same thread, but are polled on their own, outside it.
struct Client<F>(Option<Pin<Box<F>>>);

impl<F: Future> Client<F> {
    fn new(future: F) -> Self {
        Client(Some(as_client(|| Box::pin(future))))
    }
}

impl<F: Future> Future for Client<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let future = self.0.as_mut().expect("polled after its end");
        let polled = as_client(|| future.as_mut().poll(cx));
        if polled.is_ready() {
            let ended = self.0.take();
            as_client(|| drop(ended));
        }
        polled
    }
}

impl<F> Drop for Client<F> {
    fn drop(&mut self) {
        let future = self.0.take();
        as_client(|| drop(future));
    }
}

/// The live server allocations by size bucket.
fn sizes() -> Vec<i64> {
    SIZES.iter().map(|n| n.load(Ordering::Relaxed)).collect()
}

/// The development preset (its heartbeat pings idle connections, as in production), with room
/// for the clients.
fn config() -> Config {
    let mut config = Config::development();
    config.limits.max_connections = 10 * CLIENTS;
    config
}

/// Read the application's events as a server does, so that they do not pile up.
fn drain(mut events: Events) {
    tokio::spawn(async move { while events.recv().await.is_some() {} });
}

/// Clients `first..first + count`, each its own user, connected to `addr` and joined to one
/// room.
async fn idle_clients(addr: SocketAddr, first: usize, count: usize) -> Vec<WsClient> {
    Client::new(async move {
        let mut clients = Vec::with_capacity(count);
        for i in first..first + count {
            let mut client = WsClient::welcomed(addr, &format!("user=idle-{i}")).await;
            client.send(r#"{"type":"join","room":"lobby"}"#).await;
            client.next_of("joined").await;
            clients.push(client);
        }
        clients
    })
    .await
}

/// The server's heap per idle connection at `addr`: what `CLIENTS` clients connected and
/// joined add, after one more that warmed the server up (its room, its maps).
async fn heap_per_idle_connection(addr: SocketAddr) -> i64 {
    let warm = idle_clients(addr, 0, 1).await;
    // Let the writers report their last flushes before counting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (before, sizes_before) = (SERVER_BYTES.load(Ordering::Relaxed), sizes());
    let clients = idle_clients(addr, 1, CLIENTS).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let live = SERVER_BYTES.load(Ordering::Relaxed) - before;
    let added: Vec<String> = sizes()
        .iter()
        .zip(sizes_before)
        .enumerate()
        .filter(|(_, (after, before))| *after != before)
        .map(|(bucket, (after, before))| {
            let per = (*after - before) as f64 / CLIENTS as f64;
            format!("{per:.2} under {} bytes", 1u64 << bucket)
        })
        .collect();
    println!("allocations per idle connection: {}", added.join(", "));
    as_client(|| drop((warm, clients)));
    live / CLIENTS as i64
}

#[tokio::test]
async fn an_idle_connection_through_the_transports_handshake_holds_under_the_bound() {
    let _serial = SERIAL.lock().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound");
    let (handle, events) = Builder::new(config()).shards(2).start();
    drain(events);
    let serving = tokio::spawn(handle.clone().serve(listener, authenticate));

    let bytes = heap_per_idle_connection(addr).await;
    println!("Handle::serve: {bytes} bytes of server heap per idle connection");
    assert!(bytes <= BOUND, "{bytes} bytes per idle connection");

    handle.shutdown().await;
    serving.abort();
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn an_idle_connection_through_an_axum_route_holds_under_the_bound() {
    use switchboard_testing::serve_ws_route;
    use switchboard_tokio::axum::upgrade;

    let _serial = SERIAL.lock().await;
    let (handle, events) = Builder::new(config()).shards(2).start();
    drain(events);
    let hub = handle.clone();
    let (addr, serving) =
        serve_ws_route(move |ws, user, _| upgrade(&hub, ws, Open::new(user))).await;

    let bytes = heap_per_idle_connection(addr).await;
    println!("axum: {bytes} bytes of server heap per idle connection");
    assert!(bytes <= BOUND, "{bytes} bytes per idle connection");

    handle.shutdown().await;
    serving.abort();
}
