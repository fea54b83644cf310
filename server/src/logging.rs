//! Logs: the subscriber the binary installs (`[log] format`: text or JSON lines on stderr, the
//! level from `RUST_LOG`), and the HTTP layers that give every request an id and an access-log
//! line.
//!
//! - **Request ids.** Every request carries `x-request-id`: the caller's, when it is 1 to
//!   [`MAX_REQUEST_ID`] characters of `A-Z a-z 0-9 - _ . : @`, otherwise a new UUID (a value
//!   outside that set is replaced, so a client cannot write what it likes into the logs). The
//!   answer echoes it.
//! - **Spans.** Each request runs in a `request` span with `request_id`, `method` and `uri`,
//!   which ends with its answer (for `GET /ws`, the `101`). A client connection then runs in
//!   a span of its own ([`connection_span`]: `connection`, with the handshake's `request_id`,
//!   the `user`, and `conn` once the hub opened it), which lasts as long as the connection and
//!   holds the transport's `connection opened` and `connection ended` lines.
//! - **Access log.** One `info` line per answer (`status`, `latency`), a `warn` line for a 5xx.
//! - **Never waiting for stderr.** Lines are formatted where they happen and written by a thread
//!   of their own (`switchboard-log`), up to [`LOG_QUEUE_LINES`] behind; lines queued together
//!   leave in one write. A stderr nobody reads (a stalled log shipper, a full pipe) used to stop
//!   every worker thread at its next line, and the whole node with them; now the lines past the
//!   queue are dropped and counted ([`dropped_lines`], `switchboard_log_lines_dropped_total`),
//!   and serving goes on.
//! - **No credential in any field.** The `uri` keeps the values of the query parameters
//!   `thread` and `resume` only; every other value (`token=` of `/ws` above all) is written
//!   `[redacted]`. No header is logged.

use crate::settings::LogFormat;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, Uri};
use axum::Router;
use std::ffi::OsString;
use std::io::{BufWriter, IsTerminal, Write};
use std::sync::OnceLock;
use switchboard::UserId;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::{Level, Span};
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// The longest `x-request-id` taken from a client.
pub const MAX_REQUEST_ID: usize = 128;
/// Query parameters whose values may be logged; every other value is redacted.
const LOGGED_PARAMETERS: [&str; 2] = ["thread", "resume"];
/// What a redacted value is logged as.
const REDACTED: &str = "[redacted]";

/// Log lines formatted and not yet written to stderr: past this many, new lines are dropped
/// (and counted) until the writer thread catches up. About 2 MiB of lines of a typical length.
pub const LOG_QUEUE_LINES: usize = 8_192;

/// The writer thread's buffer: the lines it finds queued leave in writes of up to this much,
/// and whatever it holds is written as soon as the queue is empty.
const LOG_WRITE_BUFFER: usize = 64 * 1024;

/// How many lines the installed subscriber dropped, once [`init`] installed it.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// The process's log writer: keep it until the process ends, as dropping it writes what is
/// still queued (waiting at most a second for stderr).
#[must_use = "dropping it ends the log writer"]
pub struct Logs {
    writer: NonBlocking,
    _written: WorkerGuard,
}

impl Logs {
    /// Write `line` to stderr as it is, after every log line before it: for the lines people
    /// and scripts wait for (the address the server listens on).
    pub fn plain(&self, line: &str) {
        // A line the queue has no room for is counted as dropped, like any other.
        let _ = self
            .writer
            .clone()
            .write_all(format!("{line}\n").as_bytes());
    }
}

/// Log lines dropped since the process started because stderr was [`LOG_QUEUE_LINES`] behind;
/// 0 when [`init`] did not install the subscriber (the server embedded in another program).
pub fn dropped_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, |dropped| dropped.dropped_lines() as u64)
}

/// Install the process's subscriber: `format` lines on stderr, written by a thread of its own
/// (see the module's doc), filtered by `RUST_LOG` (default `info`). Text lines are coloured
/// only for a terminal, unless `NO_COLOR` says no. JSON lines carry the event's fields at the
/// top level, its span's fields under `span` and every enclosing span under `spans`.
pub fn init(format: LogFormat) -> Logs {
    let (writer, written) = NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .lossy(true)
        .thread_name("switchboard-log")
        .finish(BufWriter::with_capacity(
            LOG_WRITE_BUFFER,
            std::io::stderr(),
        ));
    let _ = DROPPED.set(writer.error_counter());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .with_writer(writer.clone());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
    Logs {
        writer,
        _written: written,
    }
}

/// Whether text lines carry colour codes: only for a person at a terminal, and not when
/// `NO_COLOR` is set to anything but an empty value (no-color.org). A file, a pipe or journald
/// gets plain lines, which `grep` and log shippers read as they are.
fn colours(stderr_is_terminal: bool, no_color: Option<OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|value| value.is_empty())
}

/// `app` with request ids (set, kept or replaced, and echoed) and a span and access-log line
/// per request.
pub fn http(app: Router) -> Router {
    app.layer(
        ServiceBuilder::new()
            .map_request(drop_unusable_request_id)
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(request_span as fn(&Request<Body>) -> Span)
                    .on_request(())
                    .on_response(DefaultOnResponse::new().level(Level::INFO))
                    .on_failure(DefaultOnFailure::new().level(Level::WARN)),
            )
            .layer(PropagateRequestIdLayer::x_request_id()),
    )
}

/// Remove an `x-request-id` that is not a usable id, so that a new one is made.
fn drop_unusable_request_id(mut request: Request<Body>) -> Request<Body> {
    let mut given = request.headers().get_all("x-request-id").iter();
    let usable = match (given.next(), given.next()) {
        (None, _) => true,
        (Some(one), None) => usable_request_id(one),
        (Some(_), Some(_)) => false,
    };
    if !usable {
        request.headers_mut().remove("x-request-id");
    }
    request
}

fn usable_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=MAX_REQUEST_ID).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(b))
}

/// The span of one request.
fn request_span(request: &Request<Body>) -> Span {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        uri = %redacted(request.uri()),
    )
}

/// The span of one client connection of `open.user`, opened by the request with `headers`: a
/// root of its own (it outlives the request, whose span it follows from), with the request's
/// `request_id`, the `user`, and the `conn` the transport records once the hub opened it.
/// The transport runs the connection in the span current when it is handed the connection.
pub fn connection_span(headers: &HeaderMap, user: &UserId) -> Span {
    let id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let span = tracing::info_span!(
        parent: None,
        "connection",
        request_id = %id,
        user = %user,
        conn = tracing::field::Empty,
    );
    span.follows_from(Span::current());
    span
}

/// The path and query of `uri`, every query value but `LOGGED_PARAMETERS`' redacted.
pub fn redacted(uri: &Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.path().to_owned();
    };
    let parameters: Vec<String> = query
        .split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded: String = url_decoded(name);
            if LOGGED_PARAMETERS.contains(&decoded.as_str()) {
                format!("{name}={value}")
            } else {
                format!("{name}={REDACTED}")
            }
        })
        .collect();
    format!("{}?{}", uri.path(), parameters.join("&"))
}

/// `name` with `%XX` escapes and `+` decoded (as the query extractor decodes it), so that an
/// escaped spelling of a parameter is judged as the parameter it names.
fn url_decoded(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, byte) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn colours_only_for_a_terminal_and_never_under_no_color() {
        assert!(colours(true, None));
        assert!(colours(true, Some("".into())), "an empty NO_COLOR is unset");
        assert!(!colours(true, Some("1".into())));
        assert!(!colours(false, None), "a file, a pipe, journald");
    }

    #[test]
    fn only_thread_and_resume_values_survive_in_a_logged_uri() {
        assert_eq!(
            redacted(&uri("/ws?token=eyJ.secret.sig&thread=t-1&resume=5:9")),
            "/ws?token=[redacted]&thread=t-1&resume=5:9"
        );
        assert_eq!(redacted(&uri("/api/stats")), "/api/stats");
        assert_eq!(
            redacted(&uri("/ws?%74oken=abc&api_key=k&token")),
            "/ws?%74oken=[redacted]&api_key=[redacted]&token=[redacted]"
        );
        assert_eq!(
            redacted(&uri("/ws?thread%3D=x")),
            "/ws?thread%3D=[redacted]"
        );
    }

    #[test]
    fn a_request_id_is_kept_only_when_it_is_short_and_plain() {
        let ok = |s: &str| usable_request_id(&HeaderValue::from_str(s).unwrap());
        assert!(ok("4f1c-22aa_b.c:d@e"));
        assert!(ok(&"a".repeat(MAX_REQUEST_ID)));
        assert!(!ok(&"a".repeat(MAX_REQUEST_ID + 1)));
        assert!(!ok(""));
        assert!(!ok("has space"));
        assert!(!ok("quote\"json"));
        assert!(!usable_request_id(
            &HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap()
        ));
    }
}
