//! Errors of es-postgres that the es-core error enums carry as sources.

/// An append was refused because one transaction would hold more events than
/// its range of global positions has room for.
///
/// Global positions are `(transaction id << 20) | index`, so one transaction
/// can append at most [`MAX_EVENTS_PER_TRANSACTION`](crate::MAX_EVENTS_PER_TRANSACTION)
/// events (over all its appends). Carried as the source of
/// [`AppendError::Backend`](es_core::error::AppendError::Backend); nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("one transaction can append at most {max} events; this append would make it {requested} or more")]
pub struct BatchTooLarge {
    /// How many events the transaction would hold at least.
    pub requested: u64,
    /// The limit.
    pub max: u64,
}
