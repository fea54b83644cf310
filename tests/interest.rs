//! Interest: with `Config::cluster`, a hub tells the cluster (`ClusterOutput::Interest`) when it
//! starts and stops serving a room or a user locally, so that a bridge to other nodes
//! subscribes only to what some local connection needs.

mod support;

use serde_json::json;
use support::*;
use switchboard::testing::Harness;
use switchboard::{Config, RoomId, StreamId, UserId};

fn room(name: &str) -> StreamId {
    StreamId::Room(RoomId::from(name))
}

fn user(name: &str) -> StreamId {
    StreamId::User(UserId::from(name))
}

/// A room's interest starts with its first member and ends when its last member leaves or
/// closes; members in between change nothing.
#[test]
fn a_room_is_of_interest_from_its_first_member_to_its_last() {
    let mut config = Config::development();
    config.cluster = true;
    let mut h = Harness::new(config);
    let alice = h.connect("alice");
    let bob = h.connect("bob");
    assert_eq!(h.interest(), [(user("alice"), true), (user("bob"), true)]);
    join(&mut h, alice, "lobby");
    join(&mut h, bob, "lobby");
    assert_eq!(h.interest(), [(room("lobby"), true)]);
    h.send(
        alice,
        &json!({"type": "leave", "room": "lobby"}).to_string(),
    );
    assert_eq!(h.interest(), []);
    h.drop_connection(bob);
    assert_eq!(h.interest(), [(room("lobby"), false), (user("bob"), false)]);
}

/// A user's interest lasts while the user has at least one connection.
#[test]
fn a_user_is_of_interest_while_connected() {
    let mut config = Config::development();
    config.cluster = true;
    let mut h = Harness::new(config);
    let first = h.connect("alice");
    let second = h.connect("alice");
    h.drop_connection(first);
    assert_eq!(h.interest(), [(user("alice"), true)]);
    h.drop_connection(second);
    assert_eq!(h.interest(), [(user("alice"), false)]);
}

/// A single hub (not in a cluster) tells no interest.
#[test]
fn a_single_hub_emits_no_interest() {
    let mut h = Harness::new(Config::development());
    let alice = h.connect("alice");
    join(&mut h, alice, "lobby");
    h.drop_connection(alice);
    assert_eq!(h.interest(), []);
}
