//! Extractors whose every rejection is a problem document (400), never
//! axum's plain-text one.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::request::Parts;
use es_core::CommandId;

use super::problem::Problem;

/// A JSON body; a body that is not JSON, lacks a field or has a field of
/// the wrong type is a 400 saying which.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(Problem))]
pub(super) struct Body<T>(pub T);

/// Path parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Problem))]
pub(super) struct PathParam<T>(pub T);

/// Query parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Problem))]
pub(super) struct QueryParams<T>(pub T);

impl From<JsonRejection> for Problem {
    fn from(rejection: JsonRejection) -> Self {
        Problem::bad_request(rejection.body_text())
    }
}

impl From<PathRejection> for Problem {
    fn from(rejection: PathRejection) -> Self {
        Problem::bad_request(rejection.body_text())
    }
}

impl From<QueryRejection> for Problem {
    fn from(rejection: QueryRejection) -> Self {
        Problem::bad_request(rejection.body_text())
    }
}

/// The header that makes a command idempotent.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The `Idempotency-Key` header, a UUID, as the command's id: sending a
/// command again with the same key returns the original outcome and stores
/// nothing twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct IdempotencyKey(pub Option<CommandId>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let Some(value) = parts.headers.get(IDEMPOTENCY_KEY) else { return Ok(Self(None)) };
        let text =
            value.to_str().map_err(|_| Problem::bad_request("the Idempotency-Key header is not text"))?;
        let uuid = uuid::Uuid::parse_str(text.trim()).map_err(|error| {
            Problem::bad_request(format!("the Idempotency-Key header must be a UUID: {error}"))
        })?;
        Ok(Self(Some(CommandId::from(uuid))))
    }
}

/// The longest id (account or transfer) the API takes, in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// Refuses an id no account or transfer may have: empty, longer than
/// [`MAX_ID_BYTES`], or holding control characters.
pub(super) fn check_id(field: &str, id: &str) -> Result<(), Problem> {
    if id.is_empty() {
        Err(Problem::invalid_field(field, "must not be empty"))
    } else if id.len() > MAX_ID_BYTES {
        Err(Problem::invalid_field(field, format!("must be at most {MAX_ID_BYTES} bytes long")))
    } else if id.chars().any(char::is_control) {
        Err(Problem::invalid_field(field, "must not contain control characters"))
    } else {
        Ok(())
    }
}
