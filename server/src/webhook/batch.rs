//! Batching (`webhook.batch_max` over 1): the events ready to be sent (each the next of its
//! user, so a batch holds at most one event per user and the order per user holds) are
//! gathered for at most `webhook.batch_wait_ms`, or until `batch_max` of them wait, and POSTed
//! together as a JSON array, with the retries of a single event. No `X-Switchboard-Event-Id`
//! header: each event carries its `id`.
//!
//! The backend's 2xx answer is empty (every event taken, no reply) or
//! `{"answers": [{"id": "...", "reply": <any JSON>} | {"id": "...", "error": {"code": "...",
//! "message": "..."}}, ...]}`: an event it does not mention was taken without a reply. A 4xx
//! refuses every event of the batch; anything else is as for a single event.

use super::delivery::{delivered, refused, Answered, Outcome};
use super::event::Job;
use super::Webhook;
use serde_json::Value;
use std::time::Duration;
use switchboard::UserId;
use tokio::sync::mpsc::UnboundedReceiver;

/// Gather the events `inbox` brings into batches of at most `max`, waiting at most `wait` for
/// a batch to fill, and send each in a task of its own.
pub(super) async fn collect(
    webhook: Webhook,
    mut inbox: UnboundedReceiver<(UserId, Job)>,
    max: usize,
    wait: Duration,
) {
    while let Some(first) = inbox.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + wait;
        while batch.len() < max {
            match tokio::time::timeout_at(deadline, inbox.recv()).await {
                Ok(Some(next)) => batch.push(next),
                Ok(None) | Err(_) => break,
            }
        }
        tokio::spawn(webhook.clone().send_batch(batch));
    }
}

impl Webhook {
    /// POST `batch` as one array; settle each event, and start each user's next one.
    async fn send_batch(self, mut batch: Vec<(UserId, Job)>) {
        for (_, job) in &mut batch {
            self.prepare(job).await;
        }
        let events: Vec<_> = batch.iter().map(|(_, job)| &job.event).collect();
        let body = serde_json::to_vec(&events).expect("events always serialize");
        let taken = (batch.iter().map(|(_, job)| job.taken).min()).expect("a batch is not empty");
        let answered = self.inner.deliverer.post(None, &body, taken).await;
        let ids: Vec<&str> = batch.iter().map(|(_, job)| job.event.id.as_str()).collect();
        let outcomes = outcomes(&answered, &ids);
        for ((user, job), outcome) in batch.into_iter().zip(outcomes) {
            self.settle(job, outcome).await;
            if let Some(next) = self.done(&user) {
                self.start(user, next);
            }
        }
    }
}

/// Each event's outcome, in the order of `ids`, from the backend's answer to their batch.
fn outcomes(answered: &Answered, ids: &[&str]) -> Vec<Outcome> {
    let each = |f: &dyn Fn() -> Outcome| ids.iter().map(|_| f()).collect();
    match answered {
        Answered::Taken(Some(body)) if body.iter().all(u8::is_ascii_whitespace) => {
            each(&|| Outcome::Delivered(None))
        }
        Answered::Taken(Some(body)) => {
            let Ok(Value::Object(mut answer)) = serde_json::from_slice::<Value>(body) else {
                return each(&|| Outcome::Invalid);
            };
            let Some(Value::Array(answers)) = answer.remove("answers") else {
                return each(&|| Outcome::Invalid);
            };
            ids.iter()
                .map(|id| match answers.iter().find(|a| a["id"] == *id) {
                    None => Outcome::Delivered(None),
                    Some(a) if a.get("error").is_some() => refused(Some(a.to_string().as_bytes())),
                    Some(a) => delivered(Some(a.to_string().as_bytes())),
                })
                .collect()
        }
        Answered::Refused(body) => each(&|| refused(body.as_deref())),
        Answered::Taken(None) | Answered::Redirected => each(&|| Outcome::Invalid),
        Answered::Exhausted => each(&|| Outcome::Exhausted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_event_gets_its_own_answer_by_id() {
        let body = json!({"answers": [
            {"id": "b", "error": {"code": "quota_exceeded", "message": "later"}},
            {"id": "a", "reply": {"text": "hi"}},
        ]});
        let answered = Answered::Taken(Some(body.to_string().into_bytes()));
        let got = outcomes(&answered, &["a", "b", "c"]);
        assert_eq!(got[0], Outcome::Delivered(Some(json!({"text": "hi"}))));
        assert!(
            matches!(&got[1], Outcome::Refused { code, .. } if code.as_str() == "quota_exceeded")
        );
        assert_eq!(got[2], Outcome::Delivered(None), "not mentioned: taken");
    }

    #[test]
    fn a_batch_answer_that_is_not_the_format_makes_every_event_invalid() {
        for body in [&b"[1,2]"[..], b"{\"answers\": 3}", b"<html>"] {
            let got = outcomes(&Answered::Taken(Some(body.to_vec())), &["a", "b"]);
            assert_eq!(got, [Outcome::Invalid, Outcome::Invalid]);
        }
        let empty = outcomes(&Answered::Taken(Some(Vec::new())), &["a"]);
        assert_eq!(empty, [Outcome::Delivered(None)]);
        let gone = outcomes(&Answered::Exhausted, &["a", "b"]);
        assert_eq!(gone, [Outcome::Exhausted, Outcome::Exhausted]);
    }
}
