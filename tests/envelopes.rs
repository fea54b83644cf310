//! Envelopes between hubs: with `Config::cluster`, every publish that other hubs (the shards of
//! a process, or other nodes) may have to serve comes out once as a `ClusterOutput::Envelope`,
//! and an envelope fed to another hub as `ClusterInput::Envelope` reaches that hub's
//! connections as if published there.

mod support;

use serde_json::json;
use support::*;
use switchboard::testing::Harness;
use switchboard::{ClusterInput, Config, Envelope, RemoteTarget, Target};

fn cluster_hub(shard: u8) -> Harness {
    let mut config = Config::development();
    config.cluster = true;
    config.shard = shard;
    Harness::new(config)
}

fn feed(to: &mut Harness, envelopes: &[Envelope]) {
    for envelope in envelopes {
        to.cluster(ClusterInput::Envelope(envelope));
    }
}

/// A client's room `publish` frame leaves in an envelope with its sender and the sender's
/// connection left out, so the room's members on other hubs receive it exactly once, with
/// `from`.
#[test]
fn a_clients_room_publish_reaches_members_on_other_hubs_with_its_sender() {
    let (mut one, mut two) = (cluster_hub(0), cluster_hub(1));
    let alice = one.connect("alice");
    let bob = one.connect("bob");
    let carol = two.connect("carol");
    join(&mut one, alice, "lobby");
    join(&mut one, bob, "lobby");
    join(&mut two, carol, "lobby");
    one.take(alice);
    one.take(bob);
    two.take(carol);

    one.send(
        alice,
        &json!({"type": "publish", "room": "lobby", "event": "hi", "data": 1}).to_string(),
    );
    let envelopes = one.envelopes();
    assert_eq!(envelopes.len(), 1);
    assert_eq!(
        envelopes[0].target,
        RemoteTarget::Room {
            room: "lobby".into()
        }
    );
    assert_eq!(envelopes[0].from, Some("alice".into()));
    assert_eq!(envelopes[0].except, vec![alice]);

    feed(&mut two, &envelopes);
    let at_carol = two.frames_of(carol, "message");
    assert_eq!(at_carol.len(), 1);
    assert_eq!(
        (&at_carol[0]["event"], &at_carol[0]["from"]),
        (&json!("hi"), &json!("alice"))
    );
    assert_eq!(one.events(bob), vec!["hi"]);
    assert!(
        one.events(alice).is_empty(),
        "the sender does not get its own message"
    );
    assert!(
        two.envelopes().is_empty(),
        "an envelope fed in does not leave again"
    );
}

/// The application's except-set travels with the envelope: a connection left out on one hub is
/// left out on the hub that holds it.
#[test]
fn an_except_set_holds_on_every_hub() {
    let (mut one, mut two) = (cluster_hub(0), cluster_hub(1));
    let here = one.connect("alice");
    let there = two.connect("bob");
    let also_there = two.connect("carol");
    one.publish(Target::All.except([there]), msg("news"));
    let envelopes = one.envelopes();
    feed(&mut two, &envelopes);
    assert_eq!(one.events(here), vec!["news"]);
    assert!(two.events(there).is_empty());
    assert_eq!(two.events(also_there), vec!["news"]);
}

/// Between nodes, connection ids mean nothing: the envelope for other nodes carries none, and
/// it survives encoding.
#[test]
fn an_envelope_for_other_nodes_drops_connection_ids_and_round_trips() {
    let mut one = cluster_hub(0);
    let alice = one.connect("alice");
    one.publish(Target::All.except([alice]), msg("x"));
    let envelope = one.envelopes().remove(0);
    assert_eq!(envelope.except, vec![alice]);
    let outward = envelope.for_other_nodes();
    assert!(outward.except.is_empty());
    assert_eq!(Envelope::decode(&envelope.encode()).unwrap(), envelope);
    assert_eq!(Envelope::decode(&outward.encode()).unwrap(), outward);
}

/// Without `cluster`, no envelope leaves.
#[test]
fn a_single_hub_sends_no_envelope() {
    let mut h = harness();
    let alice = h.connect("alice");
    join(&mut h, alice, "lobby");
    h.publish(room("lobby"), msg("x"));
    h.send(
        alice,
        &json!({"type": "publish", "room": "lobby", "event": "y"}).to_string(),
    );
    assert!(h.envelopes().is_empty());
}
