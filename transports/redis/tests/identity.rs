//! The bridge's revocations and one-time tickets against a real Redis, from two nodes: the
//! later of two cut-offs wins whichever node writes last (nodes' clocks differ), a token id
//! is revoked on its own, and a ticket is stored once and taken once.

mod support;

use std::time::Duration;
use support::node;
use switchboard::UserId;
use switchboard_redis::Revoked;
use switchboard_testing::Redis;

const KEEP: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_later_cutoff_wins_and_token_ids_are_revoked_on_their_own() {
    let redis = Redis::start().await;
    let a = node(&redis, "a", |_| {}).await;
    let b = node(&redis, "b", |_| {}).await;
    let alice = UserId::from("alice");
    a.bridge.revoke_user(&alice, 200, KEEP).await.unwrap();
    b.bridge.revoke_user(&alice, 100, KEEP).await.unwrap();
    b.bridge.revoke_token("t-1", KEEP).await.unwrap();
    for bridge in [&a.bridge, &b.bridge] {
        let found = bridge.revocations(&alice, Some("t-1")).await.unwrap();
        assert_eq!(
            found,
            Revoked {
                issued_until: Some(200),
                token: true
            }
        );
        let other = bridge.revocations(&alice, Some("t-2")).await.unwrap();
        assert!(!other.token);
        let bob = bridge
            .revocations(&UserId::from("bob"), None)
            .await
            .unwrap();
        assert_eq!(bob, Revoked::default());
    }
    a.bridge.revoke_user(&alice, 300, KEEP).await.unwrap();
    let found = b.bridge.revocations(&alice, None).await.unwrap();
    assert_eq!(found.issued_until, Some(300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_is_stored_once_taken_once_and_expires() {
    let redis = Redis::start().await;
    let a = node(&redis, "a", |_| {}).await;
    let b = node(&redis, "b", |_| {}).await;
    assert!(a.bridge.put_ticket("t1", "grant", KEEP).await.unwrap());
    assert!(
        !b.bridge.put_ticket("t1", "other", KEEP).await.unwrap(),
        "never replaced"
    );
    assert_eq!(
        b.bridge.take_ticket("t1").await.unwrap().as_deref(),
        Some("grant")
    );
    assert_eq!(a.bridge.take_ticket("t1").await.unwrap(), None);

    let brief = Duration::from_millis(50);
    assert!(a.bridge.put_ticket("t2", "grant", brief).await.unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b.bridge.take_ticket("t2").await.unwrap(), None, "expired");
}
