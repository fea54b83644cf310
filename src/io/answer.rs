//! The application's answer to a client frame of its own type ([`Notice::App`]): a `reply`
//! with data, or an `error` with a code of the application's choosing, each echoing the
//! frame's `ref` ([`ClientRef`]).
//!
//! [`Notice::App`]: crate::Notice::App

use crate::protocol::{ErrorCode, MAX_REF_BYTES};
use serde_json::value::RawValue;

/// The `ref` a client frame carried, as the client wrote it (raw JSON, at most
/// [`MAX_REF_BYTES`]): the application hands it back with its [`Answer`] and the client finds
/// it echoed.
#[derive(Debug, Clone)]
pub struct ClientRef(Box<RawValue>);

impl ClientRef {
    /// A `ref` from its raw JSON text; `None` if it is not JSON or longer than
    /// [`MAX_REF_BYTES`].
    pub fn parse(json: &str) -> Option<Self> {
        if json.len() > MAX_REF_BYTES {
            return None;
        }
        RawValue::from_string(json.to_owned()).ok().map(Self)
    }

    /// Its JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    pub(crate) fn from_raw(raw: &RawValue) -> Self {
        Self(raw.to_owned())
    }

    pub(crate) fn raw(&self) -> &RawValue {
        &self.0
    }
}

impl PartialEq for ClientRef {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

/// The longest error code an application may choose, in bytes.
pub const MAX_APP_CODE_BYTES: usize = 64;

/// The `code` of an application's `error` answer: 1 to [`MAX_APP_CODE_BYTES`] characters of
/// `[a-z0-9_]`, the alphabet of the protocol's own codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppErrorCode(String);

impl AppErrorCode {
    /// `code`, if it is 1 to [`MAX_APP_CODE_BYTES`] characters of `[a-z0-9_]`.
    pub fn new(code: &str) -> Option<Self> {
        let valid = (1..=MAX_APP_CODE_BYTES).contains(&code.len())
            && (code.bytes()).all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        valid.then(|| Self(code.to_owned()))
    }

    /// The code as it appears on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<ErrorCode> for AppErrorCode {
    fn from(code: ErrorCode) -> Self {
        Self(code.as_str().to_owned())
    }
}

/// What the application answers to a client frame of its own type.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A `reply` frame carrying `data`.
    Reply(serde_json::Value),
    /// An `error` frame with the application's `code` and a human `message`. It costs the
    /// client no strike: the frame was valid, the application declined it.
    Error {
        /// The stable code.
        code: AppErrorCode,
        /// What happened, for humans.
        message: String,
    },
}
