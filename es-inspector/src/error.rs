//! What can go wrong when inspecting.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use es_core::error::{LoadError, ReadSideError, StoreError};

/// An inspection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InspectorError {
    /// No stream, subscription or aggregate type by that name.
    #[error("{0}")]
    NotFound(String),
    /// A parameter is out of range.
    #[error("{0}")]
    BadRequest(String),
    /// The application runs no read side.
    #[error("the application runs no read side")]
    NoReadSide,
    /// The store failed.
    #[error("the event store failed: {0}")]
    Store(#[from] StoreError),
    /// Folding the aggregate failed.
    #[error(transparent)]
    Load(LoadError),
    /// The read side refused.
    #[error(transparent)]
    ReadSide(ReadSideError),
    /// The request lacks the inspector's token.
    #[error("this inspector needs its token (Authorization: Bearer TOKEN, or ?token=TOKEN)")]
    Unauthorized,
}

impl From<LoadError> for InspectorError {
    fn from(error: LoadError) -> Self {
        match error {
            LoadError::NotFound { .. } => Self::NotFound(error.to_string()),
            error => Self::Load(error),
        }
    }
}

impl From<ReadSideError> for InspectorError {
    fn from(error: ReadSideError) -> Self {
        match error {
            ReadSideError::UnknownSubscription { name } => {
                Self::NotFound(format!("no subscription `{name}`"))
            }
            ReadSideError::Store(store) => Self::Store(store),
            error => Self::ReadSide(error),
        }
    }
}

impl InspectorError {
    fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) | Self::NoReadSide => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Load(_) | Self::ReadSide(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
        }
    }
}

/// Answered as a problem document (RFC 9457).
impl IntoResponse for InspectorError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": self.to_string(),
        });
        let mut response = (status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}
