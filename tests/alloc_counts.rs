//! What the hub allocates: nothing per recipient of a fan-out in steady state, and a bounded
//! number of bytes per idle connection.
//!
//! A counting global allocator records, per thread, the allocations made and the bytes live,
//! so each test measures only its own work. Counts and sizes are deterministic for a given
//! build (no timing is involved), so they can be asserted. The figures are printed too
//! (`cargo test --release --test alloc_counts -- --nocapture`) for `BENCHMARKS.md`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;
use switchboard::{Hub, Message, Open, RoomId, Target};

#[path = "../benches/fixture/mod.rs"]
mod fixture;
use fixture::{config, drain, room_of};

/// The system allocator, counting what the current thread allocates.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static LIVE_BYTES: Cell<i64> = const { Cell::new(0) };
}

fn note(allocations: u64, bytes: i64) {
    // `try_with`: the allocator is also called while thread-locals are torn down.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + allocations));
    let _ = LIVE_BYTES.try_with(|c| c.set(c.get() + bytes));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the bookkeeping touches
// only `const`-initialized thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(1, layout.size() as i64);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(1, layout.size() as i64);
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(0, -(layout.size() as i64));
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(1, new_size as i64 - layout.size() as i64);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// What the current thread allocated while running `f`: (allocations, net bytes still live).
fn measure<T>(f: impl FnOnce() -> T) -> (T, u64, i64) {
    let (a0, b0) = (ALLOCATIONS.with(Cell::get), LIVE_BYTES.with(Cell::get));
    let value = f();
    let (a1, b1) = (ALLOCATIONS.with(Cell::get), LIVE_BYTES.with(Cell::get));
    (value, a1 - a0, b1 - b0)
}

/// Allocations made by `publishes` room publishes (each drained) to a room of `members`,
/// after enough publishes that the history and the output queue reached their steady size.
fn room_publish_allocations(members: usize, publishes: usize) -> u64 {
    let now = Instant::now();
    let (mut hub, _) = room_of(members, now);
    let message = Message::new(
        "tick",
        serde_json::json!({"t": 1_764_070_000_000u64, "i": 7}),
    );
    let target = Target::Room("lobby".into());
    let history = hub.config().history.max_messages;
    for _ in 0..history + 10 {
        hub.publish(now, target.clone(), &message).unwrap();
        drain(&mut hub);
    }
    let ((), allocations, _) = measure(|| {
        for _ in 0..publishes {
            let delivery = hub.publish(now, target.clone(), &message).unwrap();
            assert_eq!(drain(&mut hub), delivery.reached);
        }
    });
    allocations
}

/// A room fan-out allocates per publish (the one serialization), never per recipient: a
/// room of 1 000 members costs exactly the allocations of a room of 1.
#[test]
fn a_room_fan_out_allocates_nothing_per_recipient() {
    let publishes = 100;
    let one = room_publish_allocations(1, publishes);
    let thousand = room_publish_allocations(1_000, publishes);
    println!(
        "room fan-out, steady state: {:.2} allocations per publish (room of 1), {:.2} (room of 1000): {:.4} per delivery",
        one as f64 / publishes as f64,
        thousand as f64 / publishes as f64,
        (thousand as f64 - one as f64) / (publishes as f64 * 999.0),
    );
    assert_eq!(
        thousand, one,
        "allocations must not depend on the room size"
    );
    assert!(
        one <= 3 * publishes as u64,
        "at most 3 allocations per publish (the serialized frame), got {one} for {publishes}"
    );
}

/// Net heap bytes per connection: for `n` idle connections of `n` users, opened and drained;
/// then for one more connection of each of these users (what a connection costs without its
/// user's share, the user index entry and the user stream).
fn bytes_per_idle_connection(n: usize) -> (f64, f64) {
    let now = Instant::now();
    let mut hub = Hub::new(config());
    let users: Vec<String> = (0..n).map(|i| format!("user-{i}")).collect();
    let open_all = |hub: &mut Hub| {
        for user in &users {
            hub.open(now, Open::new(user.as_str())).unwrap();
            drain(hub);
        }
    };
    let ((), _, first) = measure(|| open_all(&mut hub));
    let ((), _, second) = measure(|| open_all(&mut hub));
    (first as f64 / n as f64, second as f64 / n as f64)
}

/// Net heap bytes per member of a room of `n` idle connections (the membership alone).
fn bytes_per_room_member(n: usize) -> f64 {
    let now = Instant::now();
    let mut hub = Hub::new(config());
    let room = RoomId::from("lobby");
    let conns: Vec<_> = (0..n)
        .map(|i| hub.open(now, Open::new(format!("user-{i}"))).unwrap())
        .collect();
    // The first member creates the room and its stream: not a member's own cost.
    hub.join_room(now, conns[0], &room).unwrap();
    drain(&mut hub);
    let ((), _, bytes) = measure(|| {
        for &conn in &conns[1..] {
            hub.join_room(now, conn, &room).unwrap();
            drain(&mut hub);
        }
    });
    bytes as f64 / (n - 1) as f64
}

/// An idle connection costs the hub a bounded number of heap bytes, everything included: its
/// slot, its heartbeat timer, its user id, and, for a user's first connection, the user's
/// index entry and user stream; a room membership costs one member slot. Measured at 16 384
/// connections, where every growable table is exactly full.
#[test]
fn an_idle_connection_costs_a_bounded_number_of_bytes() {
    let n = 16_384;
    let (first, more) = bytes_per_idle_connection(n);
    let member = bytes_per_room_member(n);
    println!(
        "{n} idle connections: {first:.0} bytes each (one user each), {more:.0} bytes for a \
         further connection of the same user, {member:.0} bytes per room membership"
    );
    assert!(more <= 512.0, "{more} bytes per connection");
    assert!(
        first <= 1024.0,
        "{first} bytes per connection of its own user"
    );
    assert!(member <= 32.0, "{member} bytes per room membership");
}
