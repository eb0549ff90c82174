//! What every store can keep: the checks an adapter runs before anything
//! else, so that every adapter refuses the same appends.

use serde_json::Value;

use crate::envelope::NewEvent;
use crate::error::AppendError;
use crate::version::StreamId;

/// Refuses an append that some store could not keep: a NUL character in
/// the stream id, an aggregate or event type, a payload or the metadata
/// (Postgres stores none in text or JSONB). Adapters call it before
/// anything else, so every store refuses the same appends.
///
/// # Errors
/// [`AppendError::Unstorable`] naming the first offending field.
pub fn check_storable(stream: &StreamId, events: &[NewEvent]) -> Result<(), AppendError> {
    let refuse = |reason: String| Err(AppendError::Unstorable { stream: stream.clone(), reason });
    if stream.as_str().contains('\0') {
        return refuse("the stream id contains a NUL character".to_owned());
    }
    for (n, event) in events.iter().enumerate() {
        let which = || format!("event {n} of the batch ({:?})", event.event_type);
        if event.aggregate_type.contains('\0') {
            return refuse(format!("the aggregate type of {} contains a NUL character", which()));
        }
        if event.event_type.contains('\0') {
            return refuse(format!("the event type of {} contains a NUL character", which()));
        }
        if event.payload.contains_nul() {
            return refuse(format!("a string in the payload of {} contains a NUL character", which()));
        }
        if event.metadata.fields.iter().any(|(key, value)| key.contains('\0') || value_contains_nul(value)) {
            return refuse(format!("a field of the metadata of {} contains a NUL character", which()));
        }
    }
    Ok(())
}

fn value_contains_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(value_contains_nul),
        Value::Object(map) => map.iter().any(|(key, value)| key.contains('\0') || value_contains_nul(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}
