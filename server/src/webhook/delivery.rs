//! Delivering one event: POST it, signed, until the backend answers or the budget runs out.
//!
//! An attempt that meets a connect error, a timeout (`webhook.timeout_ms`), a 5xx, a 408 or a
//! 429 is retried after a backoff with full jitter (a random wait up to `webhook.backoff_ms`
//! doubled per attempt, at most `webhook.max_backoff_ms`), while attempts
//! (`webhook.max_attempts`) and age (`webhook.max_age_ms`, from the node taking the event)
//! remain. Every attempt sends the same bytes and the same event id, so the backend can drop
//! duplicates. The answer is read up to `webhook.max_answer_bytes`:
//!
//! - 2xx: an empty body (or 204) is no reply; a JSON object may carry `"reply": <any JSON>`;
//!   anything else (not JSON, too large) is an invalid answer;
//! - 4xx (but 408, 429): `{"error": {"code": "...", "message": "..."}}` refuses the event
//!   with the backend's code (1 to 64 of `[a-z0-9_]`; otherwise `backend_error`);
//! - anything else (a redirect, which is not followed): an invalid answer.

use super::metrics::WebhookMetrics;
use super::signature::{sign, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::settings::WebhookConfig;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use switchboard::AppErrorCode;

/// The header carrying the event's id.
pub const EVENT_ID_HEADER: &str = "x-switchboard-event-id";

/// The code of a refusal whose own code is missing or not a valid code.
pub const GENERIC_CODE: &str = "backend_error";

/// The longest message of a refusal passed on to the client, in characters.
const MAX_MESSAGE_CHARS: usize = 256;

/// How an event ended.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// The backend took it (2xx), with its reply, if any.
    Delivered(Option<Value>),
    /// The backend refused it (4xx) with its code and message.
    Refused {
        /// The code, valid on the wire.
        code: AppErrorCode,
        /// For humans, at most 256 characters.
        message: String,
    },
    /// The backend's 2xx answer was too large or not the documented JSON, or it redirected.
    Invalid,
    /// Attempts or age ran out without an answer.
    Exhausted,
}

/// What the backend answered, before it is read as one event's answer or a batch's.
#[derive(Debug)]
pub enum Answered {
    /// 2xx, with the body (`None`: past `max_answer_bytes`).
    Taken(Option<Vec<u8>>),
    /// 4xx, with the body (`None`: past `max_answer_bytes`).
    Refused(Option<Vec<u8>>),
    /// Neither, nor a status that is retried: a redirect, which is not followed.
    Redirected,
    /// Attempts or age ran out.
    Exhausted,
}

impl Outcome {
    /// One event's outcome from the backend's answer.
    pub fn of(answered: Answered) -> Outcome {
        match answered {
            Answered::Taken(body) => delivered(body.as_deref()),
            Answered::Refused(body) => refused(body.as_deref()),
            Answered::Redirected => Outcome::Invalid,
            Answered::Exhausted => Outcome::Exhausted,
        }
    }
}

/// One attempt that calls for another.
#[derive(Debug)]
struct Retry(String);

/// POSTs events to the backend.
#[derive(Debug)]
pub struct Deliverer {
    client: reqwest::Client,
    config: WebhookConfig,
    metrics: WebhookMetrics,
}

impl Deliverer {
    /// A deliverer for `config`, counting into `metrics`.
    pub fn new(config: WebhookConfig, metrics: WebhookMetrics) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Deliverer {
            client,
            config,
            metrics,
        })
    }

    /// POST `body` (event `id`, or a batch without one, taken at `taken`) until it is answered
    /// or the budget ran out.
    pub async fn post(&self, id: Option<&str>, body: &[u8], taken: Instant) -> Answered {
        let deadline = taken + self.config.max_age;
        for attempt in 0..self.config.max_attempts {
            if attempt > 0 {
                let wait = jitter(self.ceiling(attempt));
                if Instant::now() + wait >= deadline {
                    break;
                }
                tokio::time::sleep(wait).await;
                self.metrics.retried();
            }
            let started = Instant::now();
            match self.attempt(id, body).await {
                Ok(answered) => {
                    self.metrics.sent(started.elapsed());
                    return answered;
                }
                Err(Retry(why)) => tracing::debug!(id, attempt, why, "webhook attempt failed"),
            }
        }
        Answered::Exhausted
    }

    /// The backoff ceiling before attempt `attempt` (1 for the first retry).
    fn ceiling(&self, attempt: u32) -> Duration {
        let doubled = self
            .config
            .backoff
            .saturating_mul(1 << (attempt - 1).min(20));
        doubled.min(self.config.max_backoff)
    }

    async fn attempt(&self, id: Option<&str>, body: &[u8]) -> Result<Answered, Retry> {
        let mut request = (self.client.post(self.config.url.clone()))
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(id) = id {
            request = request.header(EVENT_ID_HEADER, id);
        }
        if !self.config.secrets.is_empty() {
            let now = SystemTime::now().duration_since(UNIX_EPOCH);
            let timestamp = now.map_or(0, |d| d.as_secs());
            request = (request.header(TIMESTAMP_HEADER, timestamp)).header(
                SIGNATURE_HEADER,
                sign(&self.config.secrets, timestamp, body),
            );
        }
        let response =
            (request.body(body.to_vec()).send().await).map_err(|e| Retry(e.to_string()))?;
        let status = response.status();
        let retried = [StatusCode::REQUEST_TIMEOUT, StatusCode::TOO_MANY_REQUESTS];
        if status.is_server_error() || retried.contains(&status) {
            return Err(Retry(format!("status {status}")));
        }
        let answer = read_bounded(response, self.config.max_answer_bytes).await?;
        Ok(if status.is_success() {
            Answered::Taken(answer)
        } else if status.is_client_error() {
            Answered::Refused(answer)
        } else {
            Answered::Redirected
        })
    }
}

/// The answer's body, or `None` past `limit` bytes.
async fn read_bounded(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Option<Vec<u8>>, Retry> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| Retry(e.to_string()))? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// A 2xx answer: no body, or a JSON object with an optional `reply`.
pub fn delivered(answer: Option<&[u8]>) -> Outcome {
    match answer {
        None => Outcome::Invalid,
        Some(body) if body.iter().all(u8::is_ascii_whitespace) => Outcome::Delivered(None),
        // An object only: serde would also read an array as a struct's fields in order.
        Some(body) => match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(mut answer)) => Outcome::Delivered(answer.remove("reply")),
            _ => Outcome::Invalid,
        },
    }
}

/// A 4xx answer: the backend's code and message when they are valid, a generic one otherwise.
pub fn refused(answer: Option<&[u8]>) -> Outcome {
    #[derive(Deserialize)]
    struct Refusal {
        error: Detail,
    }
    #[derive(Deserialize)]
    struct Detail {
        code: String,
        #[serde(default)]
        message: String,
    }
    let detail = answer.and_then(|body| serde_json::from_slice::<Refusal>(body).ok());
    match detail.and_then(|r| Some((AppErrorCode::new(&r.error.code)?, r.error.message))) {
        Some((code, message)) => Outcome::Refused {
            code,
            message: message.chars().take(MAX_MESSAGE_CHARS).collect(),
        },
        None => Outcome::Refused {
            code: AppErrorCode::new(GENERIC_CODE).expect("a valid code"),
            message: "the backend refused the frame".into(),
        },
    }
}

/// A uniformly random wait from zero to `ceiling` (full jitter: retries of many events spread
/// out instead of arriving together).
fn jitter(ceiling: Duration) -> Duration {
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    match getrandom::u64() {
        Ok(r) if nanos > 0 => Duration::from_nanos(r % nanos.saturating_add(1)),
        _ => ceiling,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_2xx_answer_is_no_reply_a_reply_or_invalid() {
        assert_eq!(delivered(Some(b"")), Outcome::Delivered(None));
        assert_eq!(delivered(Some(b"{}")), Outcome::Delivered(None));
        assert_eq!(
            delivered(Some(br#"{"reply":{"text":"hi"}}"#)),
            Outcome::Delivered(Some(serde_json::json!({"text":"hi"})))
        );
        assert_eq!(delivered(Some(b"<html>")), Outcome::Invalid);
        assert_eq!(delivered(Some(b"[1]")), Outcome::Invalid);
        assert_eq!(delivered(None), Outcome::Invalid, "over the bound");
    }

    #[test]
    fn a_4xx_answer_keeps_a_valid_code_and_replaces_any_other() {
        let code = |o: Outcome| match o {
            Outcome::Refused { code, .. } => code.as_str().to_owned(),
            other => panic!("{other:?}"),
        };
        let body = br#"{"error":{"code":"quota_exceeded","message":"later"}}"#;
        assert_eq!(code(refused(Some(body))), "quota_exceeded");
        let hostile = br#"{"error":{"code":"<script>","message":"x"}}"#;
        assert_eq!(code(refused(Some(hostile))), GENERIC_CODE);
        assert_eq!(code(refused(Some(b"nope"))), GENERIC_CODE);
        assert_eq!(code(refused(None)), GENERIC_CODE);
        let long = format!(
            r#"{{"error":{{"code":"x","message":"{}"}}}}"#,
            "m".repeat(10_000)
        );
        match refused(Some(long.as_bytes())) {
            Outcome::Refused { message, .. } => assert_eq!(message.len(), MAX_MESSAGE_CHARS),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_jittered_wait_never_exceeds_its_ceiling() {
        for ms in [0, 1, 100, 5_000] {
            let ceiling = Duration::from_millis(ms);
            assert!((0..100).all(|_| jitter(ceiling) <= ceiling));
        }
    }
}
