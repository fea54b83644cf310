//! The browser origins a WebSocket may come from (`[http] allowed_origins`).
//!
//! A browser sends `Origin` with every WebSocket handshake, so a page on another site cannot
//! open a connection in the name of a user who visits it when its origin is not listed. A
//! request without `Origin` comes from a client that is not a browser (a backend, a mobile
//! app, a CLI) and is not checked here: its credential is its token. Origins compare as
//! serialized by the browser (`scheme://host[:port]`), ignoring ASCII case.
//!
//! The same list answers the CORS checks of the Server-Sent Events endpoints ([`AllowedOrigins::cors`]):
//! a page's `EventSource` and its `fetch` posts are cross-origin requests, which the browser
//! lets through only when the answer names the page's origin. A WebSocket handshake needs no
//! CORS answer (browsers do not enforce it there), only the check above.

use axum::http::{header, HeaderName, HeaderValue, Method};
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may keep a preflight's answer (`Access-Control-Max-Age`): it asks again
/// for each `POST /sse/{conn}` otherwise.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// Which origins may open a WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// Any origin (nothing configured, or `*` listed).
    Any,
    /// Only these origins, lowercase; requests without `Origin` too.
    Only(Vec<String>),
}

impl AllowedOrigins {
    /// Parse the configured list: `*`, or origins like `https://app.example.com` or
    /// `http://localhost:3000` (no path, no trailing slash), or `null` (sandboxed pages and
    /// local files, which browsers send as that word).
    pub fn parse(list: &[String]) -> Result<Self, String> {
        if list.iter().any(|o| o == "*") {
            return Ok(AllowedOrigins::Any);
        }
        let origins = list
            .iter()
            .map(|origin| {
                let lower = origin.to_ascii_lowercase();
                let valid = lower == "null"
                    || ["http://", "https://"].iter().any(|scheme| {
                        lower.strip_prefix(scheme).is_some_and(|authority| {
                            !authority.is_empty() && !authority.contains(['/', '?', '#', ' ', '@'])
                        })
                    });
                if valid {
                    Ok(lower)
                } else {
                    Err(format!(
                        "http.allowed_origins: {origin:?} is not an origin like \
                         https://app.example.com (scheme and host, optional port, no path)"
                    ))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AllowedOrigins::Only(origins))
    }

    /// True if a handshake with this `Origin` header (or none) may proceed.
    pub fn allows(&self, origin: Option<&HeaderValue>) -> bool {
        match (self, origin) {
            (AllowedOrigins::Any, _) | (AllowedOrigins::Only(_), None) => true,
            (AllowedOrigins::Only(list), Some(origin)) => origin
                .to_str()
                .is_ok_and(|origin| list.iter().any(|o| o.eq_ignore_ascii_case(origin))),
        }
    }

    /// The CORS answers of `GET /sse` and `POST /sse/{conn}` for pages of the allowed origins:
    /// `Access-Control-Allow-Origin` echoes the page's origin (never `*`, so the answer stays
    /// per origin behind caches: `Vary: origin`), preflights allow `GET`/`POST` with the
    /// headers the endpoints read (`Authorization`, `Content-Type`, `Last-Event-ID`). No
    /// credentials mode: the endpoints authenticate by token or ticket, never by cookie. A page
    /// of another origin gets no CORS headers (its browser blocks the answer) and the endpoint
    /// itself refuses it with 403 `forbidden_origin`.
    pub fn cors(&self) -> CorsLayer {
        let origins = self.clone();
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |origin, _| {
                origins.allows(Some(origin))
            }))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("last-event-id"),
            ])
            .max_age(PREFLIGHT_MAX_AGE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(list: &[&str]) -> Result<AllowedOrigins, String> {
        AllowedOrigins::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn listed_origins_pass_others_do_not_and_non_browsers_always_do() {
        let only = origins(&["https://App.example.com", "http://localhost:3000"]).unwrap();
        let header = |v: &str| HeaderValue::from_str(v).unwrap();
        assert!(only.allows(Some(&header("https://app.example.com"))));
        assert!(only.allows(Some(&header("HTTP://LOCALHOST:3000"))));
        assert!(only.allows(None), "no Origin: not a browser");
        for refused in [
            "https://evil.example",
            "http://app.example.com",
            "https://app.example.com:8443",
            "null",
        ] {
            assert!(!only.allows(Some(&header(refused))), "{refused}");
        }
        let opaque = HeaderValue::from_bytes(b"https://app.example.com\xff").unwrap();
        assert!(!only.allows(Some(&opaque)));
        assert_eq!(
            origins(&["https://a.example", "*"]),
            Ok(AllowedOrigins::Any)
        );
        assert!(origins(&["null"]).unwrap().allows(Some(&header("null"))));
    }

    #[test]
    fn entries_that_are_not_origins_are_refused() {
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "ftp://app.example.com",
            "https://",
        ] {
            assert!(origins(&[bad]).is_err(), "{bad}");
        }
    }
}
