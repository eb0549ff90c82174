//! Why an upcaster could not turn an older event payload into the current one.

use crate::error::BoxError;

/// What an upcaster ([`Event::upcast`](crate::Event::upcast)) reports when an
/// older payload cannot become the current schema. Decoding fails with it as
/// the cause ([`DecodeErrorKind::Upcast`](crate::error::DecodeErrorKind::Upcast));
/// the stored event is left as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpcastError {
    /// The upcaster knows no way from this schema version.
    #[error("no upcaster from schema version {from}")]
    UnsupportedVersion {
        /// The stored schema version.
        from: u32,
    },
    /// The old payload lacks a field the upcaster needs.
    #[error("the old payload has no field `{field}`")]
    MissingField {
        /// The field's name.
        field: &'static str,
    },
    /// The old payload is not of the shape the upcaster expects.
    #[error("the old payload is not the expected shape: expected {expected}")]
    UnexpectedShape {
        /// What the upcaster expected, e.g. "a JSON object".
        expected: &'static str,
    },
    /// Anything else, with its cause.
    #[error("upcaster failed")]
    Other(#[source] BoxError),
}

impl UpcastError {
    /// Wraps any error as the cause of a failed upcast.
    pub fn other(error: impl Into<BoxError>) -> Self {
        Self::Other(error.into())
    }
}

impl From<serde_json::Error> for UpcastError {
    fn from(error: serde_json::Error) -> Self {
        Self::Other(Box::new(error))
    }
}
