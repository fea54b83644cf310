//! Rooms the backend decides (`Hub::add_user_to_room`, `Hub::remove_user_from_room`): every
//! open connection of the user joins or leaves at once, whatever its token allows, within the
//! room limits, and each is told with `joined` or `left` without a `ref`.

mod support;

use serde_json::json;
use support::*;
use switchboard::testing::Harness;
use switchboard::{Open, RefreshGrant, RoomAccess, RoomId, UserId, UserMembership};

fn lobby() -> RoomId {
    "lobby".into()
}

fn alice() -> UserId {
    "alice".into()
}

/// A connection of `user` whose token allows only the room `mine`.
fn only_mine(h: &mut Harness, user: &str) -> switchboard::ConnId {
    let access = RoomAccess::Only(vec!["mine".into()]);
    h.open(Open::new(user).access(access)).unwrap()
}

#[test]
fn the_backend_joins_every_connection_of_the_user_whatever_their_tokens_allow() {
    let mut h = harness();
    let first = only_mine(&mut h, "alice");
    let second = h.connect("alice");
    let bob = h.connect("bob");
    h.take(first);
    h.take(second);
    h.take(bob);

    let done = h.with_hub(|hub, now| hub.add_user_to_room(now, &alice(), &lobby()));

    let expected = UserMembership {
        changed: 2,
        unchanged: 0,
        refused: 0,
    };
    assert_eq!(done, expected);
    for conn in [first, second] {
        let joined = h.take(conn);
        assert_eq!(joined.len(), 1, "{joined:?}");
        assert_eq!(joined[0]["type"], "joined");
        assert_eq!(joined[0]["room"], "lobby");
        assert!(joined[0].get("ref").is_none(), "the client asked nothing");
    }
    assert!(h.take(bob).is_empty(), "another user is not touched");
    let mut members = h.hub().room_members(&lobby());
    members.sort();
    assert_eq!(members, vec![first, second]);
}

#[test]
fn a_connection_already_in_the_room_is_counted_unchanged_and_told_nothing() {
    let mut h = harness();
    let conn = h.connect("alice");
    join(&mut h, conn, "lobby");
    h.take(conn);

    let done = h.with_hub(|hub, now| hub.add_user_to_room(now, &alice(), &lobby()));

    assert_eq!((done.changed, done.unchanged, done.refused), (0, 1, 0));
    assert!(h.take(conn).is_empty());
}

#[test]
fn the_room_limits_still_hold_for_the_backends_joins() {
    let mut config = small_config();
    config.limits.max_members_per_room = 1;
    let mut h = Harness::new(config);
    let first = h.connect("alice");
    let second = h.connect("alice");

    let done = h.with_hub(|hub, now| hub.add_user_to_room(now, &alice(), &lobby()));

    assert_eq!((done.changed, done.unchanged, done.refused), (1, 0, 1));
    assert_eq!(h.hub().room_members(&lobby()).len(), 1);
    let joined = [first, second].map(|c| h.frames_of(c, "joined").len());
    assert_eq!(joined.iter().sum::<usize>(), 1);
}

#[test]
fn a_room_the_backend_joined_outlives_a_refreshed_token_that_does_not_allow_it() {
    let mut h = harness();
    let conn = only_mine(&mut h, "alice");
    let other = h.connect("alice");
    join(&mut h, other, "team");
    h.with_hub(|hub, now| hub.add_user_to_room(now, &alice(), &lobby()));
    h.take(conn);
    h.take(other);

    let grant = || RefreshGrant {
        expires_at: None,
        join: RoomAccess::Only(vec!["mine".into()]),
        publish: RoomAccess::Any,
    };
    h.with_hub(|hub, now| hub.refreshed(now, conn, grant()))
        .unwrap();
    h.with_hub(|hub, now| hub.refreshed(now, other, grant()))
        .unwrap();

    assert_eq!(h.hub().connection_info(conn).unwrap().rooms, vec![lobby()]);
    let rooms = h.hub().connection_info(other).unwrap().rooms;
    assert_eq!(rooms, vec![lobby()], "the room its own token chose is left");
    let left = h.frames_of(other, "left");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["room"], "team");
}

#[test]
fn the_backend_takes_every_connection_of_the_user_out_with_left_without_a_ref() {
    let mut h = harness();
    let first = h.connect("alice");
    let second = h.connect("alice");
    let outside = h.connect("alice");
    let bob = h.connect("bob");
    for conn in [first, second, bob] {
        join(&mut h, conn, "lobby");
        h.take(conn);
    }
    h.take(outside);

    let done = h.with_hub(|hub, _| hub.remove_user_from_room(&alice(), &lobby()));

    assert_eq!((done.changed, done.unchanged, done.refused), (2, 1, 0));
    for conn in [first, second] {
        assert_eq!(h.take(conn), vec![json!({"type": "left", "room": "lobby"})]);
    }
    assert!(h.take(outside).is_empty());
    assert_eq!(h.hub().room_members(&lobby()), vec![bob]);
}

#[test]
fn a_user_without_connections_changes_nothing() {
    let mut h = harness();
    let done = h.with_hub(|hub, now| hub.add_user_to_room(now, &alice(), &lobby()));
    assert_eq!(done, UserMembership::default());
    let done = h.with_hub(|hub, _| hub.remove_user_from_room(&alice(), &lobby()));
    assert_eq!(done, UserMembership::default());
    assert!(h.hub().room_members(&lobby()).is_empty());
}
