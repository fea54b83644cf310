//! Continuity: resuming after a reconnect, with and without a gap, messages waiting for an
//! offline user's next connection, and a graceful shutdown.

use super::*;

/// A client that reconnects with its last user-stream position receives everything after
/// it — what it missed and what was published while it was away — and nothing before it.
pub async fn resume_after_reconnect_without_gap<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    publish(&t, user("alice"), message("m1")).await;
    publish(&t, user("alice"), message("m2")).await;
    let m1 = frame(&mut alice).await;
    assert_eq!(m1["event"], "m1");
    assert_eq!(event(&mut alice).await, "m2");
    alice.close().await;
    let delivery = publish(&t, user("alice"), message("m3")).await;
    assert!(delivery.buffered, "kept for alice's next connection");
    // As if m2 was lost with the connection: resume right after m1.
    let (mut again, _) = welcomed(&t, Connect::user("alice").resume(position(&m1))).await;
    assert_eq!(event(&mut again).await, "m2");
    assert_eq!(event(&mut again).await, "m3");
    quiet(&mut again, "alice, resumed").await;
    drop(again);
    t.shutdown().await;
}

/// A client that reconnects from a position history no longer reaches back to receives a
/// `gap` naming what is lost, then what history still holds.
pub async fn resume_after_reconnect_with_gap<T: Transport>() {
    let mut config = config();
    config.history.max_messages = 3;
    let t = T::start(config).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    publish(&t, user("alice"), message("m1")).await;
    let m1 = frame(&mut alice).await;
    alice.close().await;
    for i in 2..=7 {
        publish(&t, user("alice"), message(&format!("m{i}"))).await;
    }
    let (mut again, _) = welcomed(&t, Connect::user("alice").resume(position(&m1))).await;
    let gap = frame(&mut again).await;
    assert_eq!(
        (&gap["type"], &gap["stream"], &gap["reason"]),
        (&json!("gap"), &json!("user:alice"), &json!("history"))
    );
    assert_eq!((&gap["from"], &gap["to"]), (&json!(2), &json!(4)));
    for kept in ["m5", "m6", "m7"] {
        assert_eq!(event(&mut again).await, kept);
    }
    quiet(&mut again, "alice, resumed").await;
    drop(again);
    t.shutdown().await;
}

/// Messages to a user with no connection wait for the next one (`buffered`): unthreaded ones
/// right after `welcome`, a thread's right after the connection binds to it.
pub async fn offline_messages_wait_for_the_next_connection<T: Transport>() {
    let t = T::start(config()).await;
    let away = publish(&t, user("carol"), message("while-away")).await;
    assert_eq!((away.reached, away.buffered), (0, true));
    let for_thread = publish(&t, thread("carol", "t9"), message("for-t9")).await;
    assert_eq!((for_thread.reached, for_thread.buffered), (0, true));
    let (mut carol, _) = welcomed(&t, Connect::user("carol")).await;
    assert_eq!(event(&mut carol).await, "while-away");
    let bound = request(&mut carol, json!({"type": "bind", "thread": "t9"})).await;
    assert_eq!(bound["type"], "bound");
    assert_eq!(event(&mut carol).await, "for-t9");
    quiet(&mut carol, "carol").await;
    drop(carol);
    t.shutdown().await;
}

/// The next message's event, then the close code.
async fn last_words(client: &mut impl Client) -> (String, Option<u16>) {
    (event(client).await, close_code(client).await)
}

/// Shutdown closes every client with 1001 after what was already sent to it.
pub async fn shutdown_closes_with_1001_after_what_was_sent<T: Transport>() {
    let t = T::start(config()).await;
    let (mut alice, _) = welcomed(&t, Connect::user("alice")).await;
    let (mut bob, _) = welcomed(&t, Connect::user("bob")).await;
    let delivery = publish(&t, Target::All, message("last-words")).await;
    assert_eq!(delivery.reached, 2);
    let ((), alice_saw, bob_saw) =
        futures_util::join!(t.shutdown(), last_words(&mut alice), last_words(&mut bob));
    for saw in [alice_saw, bob_saw] {
        assert_eq!(saw, ("last-words".to_owned(), Some(1001)));
    }
}
