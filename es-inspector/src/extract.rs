//! Path and query extractors whose rejections are the inspector's problem
//! documents (400), never axum's plain text.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::InspectorError;

/// Query parameters; a malformed one is a 400 problem naming it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Query<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = InspectorError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, InspectorError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(InspectorError::BadRequest(rejection.body_text())),
        }
    }
}

/// Path parameters; a malformed one is a 400 problem naming it.
#[derive(Debug, Clone)]
pub(crate) struct Path<T>(pub(crate) T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = InspectorError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, InspectorError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(InspectorError::BadRequest(rejection.body_text())),
        }
    }
}
