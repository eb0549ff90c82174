//! The exact-retry rule, written once for every adapter.
//!
//! An append whose reply was lost is retried with the same events. The store
//! must tell that retry from a mistake: an **exact retry** is one whose event
//! ids are all stored, in the batch's order, as consecutive versions of the
//! same stream, each with the same content (aggregate type, event type,
//! schema version, payload as a JSON value, metadata), under an expectation
//! that admitted the original placement. It succeeds and returns the
//! original versions and positions; it stores nothing. Any other reuse of a
//! stored id (another stream, another order, a subset, or the same id with
//! different content) is [`AppendError::DuplicateEventId`].
//!
//! An adapter that finds some of a batch's ids already stored (a unique
//! violation, or a look-up before writing) reads those stored events and asks
//! [`classify_stored`]; it never decides this itself, so every adapter agrees.

use std::borrow::Borrow;
use std::collections::HashMap;

use crate::envelope::{Committed, NewEvent, RecordedEvent};
use crate::error::AppendError;
use crate::version::{EventId, ExpectedVersion, StreamId, StreamVersion};

/// Classifies an append some of whose event ids are stored.
///
/// `stored` holds the stored events whose ids appear in `batch`, in any
/// order (events with other ids are ignored).
///
/// Returns `Ok(None)` when none of the batch's ids is stored (the append may
/// go ahead), `Ok(Some(placement))` for an exact retry (the original
/// placement of each event, in batch order).
///
/// # Errors
/// [`AppendError::DuplicateEventId`] naming the batch's first stored id and
/// the stream appended to, when the batch reuses stored ids in any way other
/// than an exact retry.
///
/// ```
/// use es_core::store::{classify_stored, NewEvent};
/// use es_core::store::ExpectedVersion;
/// use es_core::StreamId;
///
/// let batch = vec![NewEvent::new("account", "Opened", 1, serde_json::json!({"owner": "ada"}))];
/// let nothing_stored: [es_core::store::RecordedEvent; 0] = [];
/// let verdict = classify_stored(&StreamId::new("account-1"), ExpectedVersion::NoStream, &batch, &nothing_stored);
/// assert!(matches!(verdict, Ok(None)));
/// ```
pub fn classify_stored<R: Borrow<RecordedEvent>>(
    stream: &StreamId,
    expected: ExpectedVersion,
    batch: &[NewEvent],
    stored: &[R],
) -> Result<Option<Vec<Committed>>, AppendError> {
    let by_id: HashMap<EventId, &RecordedEvent> =
        stored.iter().map(Borrow::borrow).map(|s| (s.event_id, s)).collect();
    let found: Vec<Option<&RecordedEvent>> = batch.iter().map(|e| by_id.get(&e.event_id).copied()).collect();
    let Some(first_stored) = batch.iter().zip(&found).find_map(|(e, f)| f.map(|_| e.event_id)) else {
        return Ok(None);
    };
    let duplicate = || AppendError::DuplicateEventId { event_id: first_stored, stream: stream.clone() };
    let Some(found) = found.into_iter().collect::<Option<Vec<&RecordedEvent>>>() else {
        return Err(duplicate());
    };
    let first = found[0].stream_version.get();
    let in_place = found.iter().zip(0u64..).all(|(s, i)| {
        &s.stream_id == stream && first.checked_add(i).is_some_and(|v| s.stream_version.get() == v)
    });
    let same_content = batch.iter().zip(&found).all(|(new, old)| same_content(new, old));
    let before = Some(first - 1).filter(|v| *v > 0).map(StreamVersion);
    let admitted = expected == ExpectedVersion::Any || expected.accepts(before);
    if !(in_place && same_content && admitted) {
        return Err(duplicate());
    }
    Ok(Some(
        found
            .iter()
            .map(|s| Committed {
                event_id: s.event_id,
                stream_version: s.stream_version,
                global_position: s.global_position,
            })
            .collect(),
    ))
}

/// Whether a stored event holds what `new` would store.
fn same_content(new: &NewEvent, stored: &RecordedEvent) -> bool {
    new.aggregate_type == stored.aggregate_type
        && new.event_type == stored.event_type
        && new.schema_version == stored.schema_version
        && new.payload == stored.payload
        && new.metadata == stored.metadata
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::envelope::{Metadata, Timestamp};
    use crate::version::GlobalPosition;

    fn stored(event: &NewEvent, stream: &str, version: u64) -> RecordedEvent {
        RecordedEvent {
            event_id: event.event_id,
            stream_id: StreamId::new(stream),
            aggregate_type: event.aggregate_type.clone(),
            stream_version: StreamVersion(version),
            global_position: GlobalPosition(version * 10),
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            payload: event.payload.clone(),
            metadata: event.metadata.clone(),
            recorded_at: Timestamp(0),
        }
    }

    fn batch() -> Vec<NewEvent> {
        vec![
            NewEvent::new("account", "Opened", 1, json!({"owner": "ada"})),
            NewEvent::new("account", "Deposited", 1, json!({"amount": 5})),
        ]
    }

    #[test]
    fn nothing_stored_lets_the_append_go_ahead() {
        let none: [RecordedEvent; 0] = [];
        let verdict = classify_stored(&StreamId::new("a-1"), ExpectedVersion::NoStream, &batch(), &none);
        assert!(matches!(verdict, Ok(None)));
    }

    #[test]
    fn the_same_events_in_place_are_an_exact_retry() {
        let batch = batch();
        let rows = [stored(&batch[1], "a-1", 2), stored(&batch[0], "a-1", 1)];
        for expected in
            [ExpectedVersion::NoStream, ExpectedVersion::Any, ExpectedVersion::Exact(StreamVersion(0))]
        {
            let placement = classify_stored(&StreamId::new("a-1"), expected, &batch, &rows).unwrap().unwrap();
            let versions: Vec<u64> = placement.iter().map(|c| c.stream_version.get()).collect();
            assert_eq!(versions, [1, 2], "{expected:?}");
        }
    }

    #[test]
    fn other_content_under_a_stored_id_is_a_duplicate() {
        let batch = batch();
        let mut changed = batch.clone();
        changed[1].payload = json!({"amount": 6}).into();
        let rows = [stored(&batch[0], "a-1", 1), stored(&batch[1], "a-1", 2)];
        let verdict = classify_stored(&StreamId::new("a-1"), ExpectedVersion::NoStream, &changed, &rows);
        assert!(
            matches!(verdict, Err(AppendError::DuplicateEventId { event_id, .. }) if event_id == batch[0].event_id)
        );
        let mut other_metadata = batch.clone();
        other_metadata[0].metadata = Metadata::new().with_field("user", "bob");
        let verdict =
            classify_stored(&StreamId::new("a-1"), ExpectedVersion::NoStream, &other_metadata, &rows);
        assert!(verdict.is_err(), "metadata is content too");
    }

    #[test]
    fn payloads_compare_as_json_values() {
        let batch = batch();
        let mut rows = [stored(&batch[0], "a-1", 1), stored(&batch[1], "a-1", 2)];
        rows[0].payload = crate::envelope::Payload::from_json(r#"{ "owner" : "ada" }"#).unwrap();
        assert!(classify_stored(&StreamId::new("a-1"), ExpectedVersion::Any, &batch, &rows)
            .unwrap()
            .is_some());
    }

    #[test]
    fn another_stream_a_subset_or_a_refused_expectation_is_a_duplicate() {
        let batch = batch();
        let elsewhere = [stored(&batch[0], "a-2", 1), stored(&batch[1], "a-2", 2)];
        assert!(classify_stored(&StreamId::new("a-1"), ExpectedVersion::Any, &batch, &elsewhere).is_err());
        let subset = [stored(&batch[0], "a-1", 1)];
        assert!(classify_stored(&StreamId::new("a-1"), ExpectedVersion::Any, &batch, &subset).is_err());
        let later = [stored(&batch[0], "a-1", 4), stored(&batch[1], "a-1", 5)];
        let exact = ExpectedVersion::Exact(StreamVersion(3));
        assert!(classify_stored(&StreamId::new("a-1"), exact, &batch, &later).unwrap().is_some());
        assert!(classify_stored(&StreamId::new("a-1"), ExpectedVersion::NoStream, &batch, &later).is_err());
        let swapped = [stored(&batch[0], "a-1", 2), stored(&batch[1], "a-1", 1)];
        assert!(classify_stored(&StreamId::new("a-1"), ExpectedVersion::Any, &batch, &swapped).is_err());
    }
}
