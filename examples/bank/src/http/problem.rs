//! RFC 9457 problem details: every error the API answers with.
//!
//! | what went wrong | status | `type` ends with |
//! |---|---|---|
//! | a body that is not JSON, lacks a field, or has a field of the wrong type; a bad path, query or header | 400 | `bad-request` |
//! | an account or transfer that does not exist | 404 | `not-found` |
//! | the account or transfer refused the command (`reason` says why) | 409 | `refused` |
//! | an `Idempotency-Key` already used for another request | 409 | `idempotency-key-reused` |
//! | a command that breaks a validation rule (`errors` names each field), an id that is empty, too long or holds control characters, a value too large to store | 422 | `validation` |
//! | the store failed, the outcome is unknown, a read model did not catch up in time | 503 | `unavailable` |

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use es_core::error::{
    AppendError, ConsistencyError, ExecuteError, LoadError, ProjectionError, ReadSideError, StoreError,
    ValidationError,
};
use serde::Serialize;
use utoipa::ToSchema;

/// A problem type's URI: where the kind of problem is documented.
macro_rules! problem_type {
    ($kind:literal) => {
        concat!("https://es.example/problems/", $kind)
    };
}

/// An RFC 9457 problem document (`application/problem+json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Problem {
    /// Identifies the kind of problem.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// A short summary of the kind.
    pub title: &'static str,
    /// The HTTP status code.
    pub status: u16,
    /// What happened in this case.
    pub detail: String,
    /// The broken rules of a validation error, one per field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The domain's reason for a refusal, as a stable code (`insufficient_funds`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Whether the command's events were stored although the request failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored: Option<bool>,
    /// Seconds after which trying again makes sense (also as `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u32>,
}

/// One broken validation rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The JSON field, if the rule is about one.
    pub field: Option<String>,
    /// What is wrong with it.
    pub message: String,
}

impl Problem {
    fn new(status: StatusCode, kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            kind,
            title,
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            reason: None,
            stored: None,
            retry_after: None,
        }
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, problem_type!("bad-request"), "Bad request", detail)
    }

    /// 404: nothing at this address.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, problem_type!("not-found"), "Not found", detail)
    }

    /// 405: the address exists, the method does not.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            problem_type!("method-not-allowed"),
            "Method not allowed",
            "this address does not take this method",
        )
    }

    /// 409: the domain refused the command, for `reason`.
    pub fn refused(reason: &'static str, detail: impl Into<String>) -> Self {
        let mut problem =
            Self::new(StatusCode::CONFLICT, problem_type!("refused"), "Command refused", detail);
        problem.reason = Some(reason);
        problem
    }

    /// 422: a command broke validation rules.
    pub fn validation(error: &ValidationError) -> Self {
        let mut problem = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            problem_type!("validation"),
            "Invalid command",
            error.to_string(),
        );
        problem.errors = error
            .violations
            .iter()
            .map(|v| FieldError { field: v.field.map(str::to_owned), message: v.message.clone() })
            .collect();
        problem
    }

    /// 422: one field of a request is out of range.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut problem = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            problem_type!("validation"),
            "Invalid request",
            format!("`{field}` {message}"),
        );
        problem.errors = vec![FieldError { field: Some(field.to_owned()), message }];
        problem
    }

    /// 503: the store (or a read model) cannot answer now; `stored` says
    /// whether the command's events were stored anyway, when known.
    pub fn unavailable(detail: impl Into<String>, stored: Option<bool>) -> Self {
        let mut problem = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            problem_type!("unavailable"),
            "Service unavailable",
            detail,
        );
        problem.stored = stored;
        problem.retry_after = Some(1);
        problem
    }

    /// 500: a bug or corrupt data; the detail says which.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, problem_type!("internal"), "Internal error", detail)
    }

    /// 409: an `Idempotency-Key` already used for another request.
    pub fn key_reused() -> Self {
        let mut problem = Self::new(
            StatusCode::CONFLICT,
            problem_type!("idempotency-key-reused"),
            "Idempotency key reused",
            "this Idempotency-Key was already used for another request; nothing was stored",
        );
        problem.stored = Some(false);
        problem
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// A command's error, with `refusal` turning the aggregate's own error
    /// into a problem (404 for a missing aggregate, else 409).
    pub fn from_execute<E: std::error::Error>(
        error: ExecuteError<E>,
        refusal: impl FnOnce(&E) -> Self,
    ) -> Self {
        match error {
            ExecuteError::Validation(invalid) => Self::validation(&invalid),
            ExecuteError::Rejected(refused) => refusal(&refused),
            ExecuteError::Append(AppendError::DuplicateEventId { .. })
            | ExecuteError::CommandIdReused { .. } => Self::key_reused(),
            ExecuteError::Append(AppendError::Unstorable { reason, .. }) => {
                Self::invalid_field("body", format!("cannot be stored: {reason}"))
            }
            ExecuteError::Load(error) => Self::from(error),
            error @ (ExecuteError::ConsistencyTimeout { .. } | ExecuteError::ConsistencyFailed { .. }) => {
                Self::unavailable(error.to_string(), Some(true))
            }
            error @ ExecuteError::OutcomeUnknown { .. } => Self::unavailable(error.to_string(), None),
            error @ (ExecuteError::Conflict { .. }
            | ExecuteError::Append(_)
            | ExecuteError::Timeout { .. }
            | ExecuteError::Shutdown) => Self::unavailable(error.to_string(), Some(false)),
            // A bug in the aggregate's code or the store's adapter: a 500,
            // saying whether the command's events were stored before it.
            error @ ExecuteError::Panicked { appended, .. } => {
                let mut problem = Self::internal(describe(&error));
                problem.stored = Some(appended);
                problem
            }
            error => Self::internal(describe(&error)),
        }
    }
}

/// An error and its causes, on one line.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl From<LoadError> for Problem {
    fn from(error: LoadError) -> Self {
        match error {
            LoadError::NotFound { .. } => Self::not_found(error.to_string()),
            LoadError::Store(store) => Self::from(store),
            error => Self::internal(describe(&error)),
        }
    }
}

impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Backend(_) => Self::unavailable(describe(&error), None),
            error => Self::internal(describe(&error)),
        }
    }
}

impl From<ProjectionError> for Problem {
    fn from(error: ProjectionError) -> Self {
        match error {
            ProjectionError::Backend(_) => Self::unavailable(describe(&error), None),
            error => Self::internal(describe(&error)),
        }
    }
}

impl From<ReadSideError> for Problem {
    fn from(error: ReadSideError) -> Self {
        match error {
            ReadSideError::Store(store) => Self::from(store),
            error => Self::internal(describe(&error)),
        }
    }
}

impl From<ConsistencyError> for Problem {
    fn from(error: ConsistencyError) -> Self {
        Self::unavailable(describe(&error), None)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(status = self.status, detail = %self.detail, "request failed");
        }
        let retry_after = self.retry_after;
        let mut response = (status, axum::Json(self)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use es_core::error::ExecuteError;

    use super::Problem;

    #[test]
    fn a_panicked_command_is_a_500_that_says_whether_its_events_were_stored() {
        for appended in [false, true] {
            let error: ExecuteError<std::fmt::Error> =
                ExecuteError::Panicked { aggregate: "account", id: "a".into(), appended };
            let problem = Problem::from_execute(error, |_| Problem::internal("not a refusal"));
            assert_eq!(problem.status, 500);
            assert_eq!(problem.stored, Some(appended));
            assert!(problem.detail.contains("panicked"), "{}", problem.detail);
        }
    }
}
