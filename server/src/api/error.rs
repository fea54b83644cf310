//! [`ApiError`]: how the API answers a failure (a status, a stable code and a message, as
//! [`ErrorBody`]), and what each failure of the request, the body, the lifecycle and the hub
//! becomes.

use super::ErrorBody;
use crate::lifecycle::ShuttingDown;
use axum::extract::rejection::JsonRejection;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use switchboard::{PublishError, RunError};
use switchboard_tokio::Error;
use tower_http::timeout::TimeoutError;

/// An API failure: a status and a stable code with a message; a 401 also names its stable
/// reason.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    reason: Option<&'static str>,
    message: String,
    /// A refused message delta: the offset the message's next delta must have.
    expected_offset: Option<u64>,
}

impl ApiError {
    /// A failure with `status` and the stable `code`.
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            reason: None,
            message: message.into(),
            expected_offset: None,
        }
    }

    /// A 401 `unauthorized` for a stable `reason` (with `WWW-Authenticate: Bearer`).
    pub fn unauthorized(reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            reason: Some(reason),
            ..Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
        }
    }

    /// The same failure naming its stable `reason`.
    pub(crate) fn with_reason(self, reason: &'static str) -> Self {
        ApiError {
            reason: Some(reason),
            ..self
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl ApiError {
    /// Its status and the body a response carries.
    pub(crate) fn into_parts(self) -> (StatusCode, ErrorBody) {
        let body = ErrorBody {
            error: self.code.to_owned(),
            message: self.message,
            reason: self.reason.map(str::to_owned),
            expected_offset: self.expected_offset,
        };
        (self.status, body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.into_parts();
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("valid"));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let mut causes = std::iter::successors(
            Some(&rejection as &(dyn std::error::Error + 'static)),
            |e| e.source(),
        );
        if causes.any(|e| e.is::<TimeoutError>()) {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                "the request body stalled longer than the server's body timeout \
                 (http.body_timeout_secs)",
            );
        }
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "bad_request"
        };
        // Axum answers 415 for a missing JSON content type and 422 for a body of the wrong
        // shape; to the API both are a request it cannot read: 400.
        let status = match status {
            StatusCode::PAYLOAD_TOO_LARGE => status,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, code, rejection.body_text())
    }
}

impl From<ShuttingDown> for ApiError {
    fn from(_: ShuttingDown) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "this node is shutting down and would lose the message: send it to another node",
        )
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::UnknownConnection(_) | Error::Publish(PublishError::UnknownConnection(_)) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_connection", message)
            }
            Error::Publish(PublishError::Run(e)) => run_order(e, message),
            Error::Publish(PublishError::TooManyRuns(_)) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_runs", message)
            }
            // A refusal added to the hub after this server was written: its meaning is unknown
            // here, so it is reported as the server's failure rather than guessed at.
            Error::Publish(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
            }
            Error::Room(_) => ApiError::new(StatusCode::CONFLICT, "room", message),
            Error::Stopped => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", message)
            }
        }
    }
}

/// A 409 `run_order`; a refused message delta names its stable reason, and a delta at the
/// wrong offset the offset expected, so that a producer can tell what to resend.
fn run_order(e: RunError, message: String) -> ApiError {
    let error = ApiError::new(StatusCode::CONFLICT, "run_order", message);
    match e {
        RunError::WrongOffset { expected, .. } => ApiError {
            expected_offset: Some(expected),
            ..error.with_reason("wrong_offset")
        },
        RunError::MessageEnded { .. } => error.with_reason("message_ended"),
        RunError::MessagesStillOpen { .. } => error.with_reason("messages_open"),
        RunError::TooManyMessages(_) => error.with_reason("too_many_messages"),
        _ => error,
    }
}
