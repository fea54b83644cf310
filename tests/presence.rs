//! Presence: members that watch a room hear users arrive and leave, once per user however many
//! connections it has; `joined` lists who is there, up to `PresenceConfig::max_members`; in a
//! cluster the hub reports its changes and delivers only what the cluster hands back.

mod support;

use serde_json::{json, Value};
use support::*;
use switchboard::testing::Harness;
use switchboard::{
    ClusterInput, Config, ConnId, Open, PresenceChange, PresenceEvent, RoomAccess, RoomId,
};

/// `conn` joins `room` asking for presence; its `joined`.
fn watch(h: &mut Harness, conn: ConnId, room: &str) -> Value {
    h.send(
        conn,
        &json!({"type": "join", "room": room, "presence": true}).to_string(),
    );
    let joined = h.frames_of(conn, "joined");
    joined.last().cloned().expect("joined")
}

/// The `presence` frames `conn` received, as `(event, user)`, taken.
fn heard(h: &mut Harness, conn: ConnId) -> Vec<(String, String)> {
    h.take(conn)
        .into_iter()
        .filter(|f| f["type"] == "presence")
        .map(|f| {
            assert_eq!(f.as_object().unwrap().len(), 4, "{f}");
            let field = |k: &str| f[k].as_str().unwrap().to_owned();
            (field("event"), field("user"))
        })
        .collect()
}

fn pair(event: &str, user: &str) -> (String, String) {
    (event.to_owned(), user.to_owned())
}

#[test]
fn a_watcher_hears_a_user_arrive_once_however_many_tabs_and_leave_with_the_last() {
    let mut h = harness();
    let watcher = h.connect("alice");
    watch(&mut h, watcher, "chat");
    assert_eq!(heard(&mut h, watcher), [pair("join", "alice")]);

    let tab1 = h.connect("bob");
    join(&mut h, tab1, "chat");
    assert_eq!(heard(&mut h, watcher), [pair("join", "bob")]);
    let tab2 = h.connect("bob");
    join(&mut h, tab2, "chat");
    assert_eq!(heard(&mut h, watcher), [], "a second tab is not announced");

    h.send(tab1, r#"{"type":"leave","room":"chat"}"#);
    assert_eq!(heard(&mut h, watcher), [], "bob is still in through tab 2");
    h.drop_connection(tab2);
    assert_eq!(
        heard(&mut h, watcher),
        [pair("leave", "bob")],
        "the last tab closing announces the leave"
    );
}

#[test]
fn a_member_that_did_not_ask_hears_nothing_and_gets_no_member_list() {
    let mut h = harness();
    let quiet = h.connect("carol");
    join(&mut h, quiet, "chat");
    let joined = h.frames_of(quiet, "joined").pop().unwrap();
    assert!(joined.get("members").is_none() && joined.get("count").is_none());
    let bob = h.connect("bob");
    watch(&mut h, bob, "chat");
    h.drop_connection(bob);
    assert_eq!(heard(&mut h, quiet), []);
}

#[test]
fn joined_lists_the_users_once_each_sorted_with_their_count() {
    let mut h = harness();
    for user in ["dave", "bob", "bob"] {
        let conn = h.connect(user);
        join(&mut h, conn, "chat");
    }
    let alice = h.connect("alice");
    let joined = watch(&mut h, alice, "chat");
    assert_eq!(joined["members"], json!(["alice", "bob", "dave"]));
    assert_eq!(joined["count"], 3);
    assert_eq!(
        h.hub().room_users(&"chat".into()),
        ["alice".into(), "bob".into(), "dave".into()]
    );
}

#[test]
fn joining_again_answers_the_current_list_to_a_watcher() {
    let mut h = harness();
    let alice = h.connect("alice");
    watch(&mut h, alice, "chat");
    let bob = h.connect("bob");
    join(&mut h, bob, "chat");
    let again = watch(&mut h, alice, "chat");
    assert_eq!(again["members"], json!(["alice", "bob"]));
}

#[test]
fn configured_room_patterns_watch_without_asking_and_false_opts_out() {
    let mut config = small_config();
    config.presence.rooms = RoomAccess::Only(vec!["chat:*".into()]);
    let mut h = Harness::new(config);
    let (alice, bob) = (h.connect("alice"), h.connect("bob"));
    join(&mut h, alice, "chat:1");
    h.send(bob, r#"{"type":"join","room":"chat:1","presence":false}"#);
    let carol = h.connect("carol");
    join(&mut h, carol, "chat:1");
    join(&mut h, carol, "game");
    assert_eq!(
        heard(&mut h, alice),
        [
            pair("join", "alice"),
            pair("join", "bob"),
            pair("join", "carol")
        ]
    );
    assert_eq!(heard(&mut h, bob), [], "bob opted out");
    assert!(h.frames_of(carol, "joined")[1].get("members").is_none());
}

#[test]
fn above_the_cap_joined_carries_only_the_count_and_no_change_is_sent() {
    let mut config = small_config();
    config.presence.max_members = 2;
    config.limits.max_connections = 100;
    let mut h = Harness::new(config);
    let alice = h.connect("alice");
    watch(&mut h, alice, "big");
    let bob = h.connect("bob");
    join(&mut h, bob, "big");
    assert_eq!(
        heard(&mut h, alice),
        [pair("join", "alice"), pair("join", "bob")]
    );

    let carol = h.connect("carol");
    let joined = watch(&mut h, carol, "big");
    assert_eq!(joined["count"], 3);
    assert!(joined.get("members").is_none(), "{joined}");
    assert_eq!(heard(&mut h, alice), [], "3 users: above the cap");
    assert_eq!(heard(&mut h, carol), []);

    h.drop_connection(carol);
    assert_eq!(
        heard(&mut h, alice),
        [pair("leave", "carol")],
        "2 users left: within the cap again"
    );
}

#[test]
fn a_room_outside_the_grant_is_forbidden_and_lists_no_one() {
    let mut h = harness();
    let bob = h.connect("bob");
    watch(&mut h, bob, "secret");
    let eve = h
        .open(Open::new("eve").access(RoomAccess::Only(vec!["lobby".into()])))
        .unwrap();
    h.send(
        eve,
        r#"{"type":"join","room":"secret","presence":true,"ref":1}"#,
    );
    let frames = h.take(eve);
    let error = frames.last().unwrap();
    assert_eq!(
        (&error["type"], &error["code"]),
        (&json!("error"), &json!("forbidden"))
    );
    assert!(frames
        .iter()
        .all(|f| f.get("members").is_none() && f.get("count").is_none()));
    assert_eq!(
        heard(&mut h, bob),
        [pair("join", "bob")],
        "eve never arrived"
    );
}

#[test]
fn presence_that_is_not_a_boolean_is_an_invalid_frame_and_joins_nothing() {
    let mut h = harness();
    let alice = h.connect("alice");
    h.send(
        alice,
        r#"{"type":"join","room":"chat","presence":"yes","ref":7}"#,
    );
    let error = h.frames(alice).last().unwrap().clone();
    assert_eq!(error["code"], "invalid_frame");
    assert_eq!(error["ref"], 7);
    assert!(h.hub().room_members(&"chat".into()).is_empty());
}

#[test]
fn nothing_is_kept_once_everyone_left() {
    let mut h = harness();
    let conns: Vec<ConnId> = ["alice", "alice", "bob"].map(|u| h.connect(u)).to_vec();
    for &c in &conns {
        watch(&mut h, c, "chat");
        join(&mut h, c, "other");
    }
    h.send(conns[0], r#"{"type":"leave","room":"chat"}"#);
    for c in conns {
        h.drop_connection(c);
    }
    for room in ["chat", "other"] {
        assert!(h.hub().room_users(&room.into()).is_empty(), "{room}");
    }
}

#[test]
fn backend_joins_and_removals_are_presence_changes_too() {
    let mut h = harness();
    let alice = h.connect("alice");
    watch(&mut h, alice, "chat");
    let (b1, _b2) = (h.connect("bob"), h.connect("bob"));
    h.with_hub(|hub, now| hub.add_user_to_room(now, &"bob".into(), &"chat".into()));
    assert_eq!(
        heard(&mut h, alice),
        [pair("join", "alice"), pair("join", "bob")]
    );
    h.with_hub(|hub, _| hub.remove_user_from_room(&"bob".into(), &"chat".into()));
    assert_eq!(heard(&mut h, alice), [pair("leave", "bob")]);
    let _ = b1;
}

/// In a cluster.
fn cluster_harness() -> Harness {
    let mut config = small_config();
    config.cluster = true;
    Harness::new(config)
}

#[test]
fn in_a_cluster_the_hub_reports_its_changes_and_delivers_only_what_comes_back() {
    let mut h = cluster_harness();
    let alice = h.connect("alice");
    watch(&mut h, alice, "chat");
    let (b1, b2) = (h.connect("bob"), h.connect("bob"));
    join(&mut h, b1, "chat");
    join(&mut h, b2, "chat");
    h.drop_connection(b1);
    h.drop_connection(b2);
    let reported: Vec<(PresenceEvent, String, usize)> = h
        .presence()
        .into_iter()
        .map(|c| (c.event, c.user.to_string(), c.users))
        .collect();
    assert_eq!(
        reported,
        [
            (PresenceEvent::Join, "alice".into(), 1),
            (PresenceEvent::Join, "bob".into(), 2),
            (PresenceEvent::Leave, "bob".into(), 1),
        ]
    );
    assert_eq!(
        heard(&mut h, alice),
        [],
        "nothing until the cluster answers"
    );

    // The cluster says carol (on another node) arrived in a room of 40 users.
    let carol = PresenceChange {
        room: RoomId::from("chat"),
        user: "carol".into(),
        event: PresenceEvent::Join,
        users: 40,
    };
    h.cluster(ClusterInput::Presence(&carol));
    assert_eq!(heard(&mut h, alice), [pair("join", "carol")]);
    h.cluster(ClusterInput::Presence(&carol));
    assert_eq!(heard(&mut h, alice), [], "told twice, delivered once");
    let dan = h.connect("dan");
    let joined = watch(&mut h, dan, "chat");
    assert_eq!(
        joined["members"],
        json!(["carol", "dan"]),
        "what the cluster told, and the joiner's own user"
    );
    h.take(dan);
    let crowd = PresenceChange {
        users: Config::development().presence.max_members + 1,
        ..carol
    };
    let crowd = PresenceChange {
        user: "erin".into(),
        ..crowd
    };
    h.cluster(ClusterInput::Presence(&crowd));
    assert_eq!(heard(&mut h, alice), [], "above the cap across the cluster");
}

#[test]
fn in_a_cluster_what_is_told_of_a_room_not_served_here_is_not_kept() {
    let mut h = cluster_harness();
    let told = |user: &str, event| PresenceChange {
        room: RoomId::from("chat"),
        user: user.into(),
        event,
        users: 1,
    };
    h.cluster(ClusterInput::Presence(&told("carol", PresenceEvent::Join)));
    let alice = h.connect("alice");
    let joined = watch(&mut h, alice, "chat");
    assert_eq!(joined["members"], json!(["alice"]));
    h.cluster(ClusterInput::Presence(&told("carol", PresenceEvent::Join)));
    h.cluster(ClusterInput::Presence(&told("bob", PresenceEvent::Leave)));
    assert_eq!(heard(&mut h, alice), [pair("join", "carol")]);
    h.drop_connection(alice);
    // The room is no longer served: what was told of it is forgotten.
    let again = h.connect("alice");
    assert_eq!(watch(&mut h, again, "chat")["members"], json!(["alice"]));
}
