//! The exact-retry rule: what an append whose event ids are already stored
//! means. This is the one place es-redis decides it.
//!
//! An append that reuses stored ids is an **exact retry** (as after a lost
//! reply) when every id of the batch is stored, in the same stream, at
//! consecutive versions in batch order, with the same content (aggregate
//! type, event type, schema version, payload compared as a JSON value so key
//! order and spacing do not matter, and metadata), and its expectation
//! admitted the original placement (`Any`, or an expectation that accepts
//! the version the stream had before the first of them). It then succeeds
//! with the original versions and positions. Any other reuse of a stored id
//! is [`AppendError::DuplicateEventId`] naming the first stored id of the
//! batch and the stream appended to.

use es_core::{AppendError, Committed, ExpectedVersion, NewEvent, RecordedEvent, StreamId, StreamVersion};

/// Whether `expected` accepts a stream at `actual` (`None`: no stream).
/// `Exact(StreamVersion(0))` means "no stream": no stream is ever at
/// version 0.
pub(crate) fn admits(expected: ExpectedVersion, actual: Option<StreamVersion>) -> bool {
    match expected {
        ExpectedVersion::Exact(StreamVersion(0)) => actual.is_none(),
        other => other.accepts(actual),
    }
}

/// Classifies an append of `batch` to `stream` under `expected` whose ids
/// are (partly) stored: `stored[i]` is the stored event with the id of
/// `batch[i]`, if any. `Ok`: an exact retry, with the original placement.
///
/// # Errors
/// [`AppendError::DuplicateEventId`] for any other reuse.
pub(crate) fn classify(
    stream: &StreamId,
    expected: ExpectedVersion,
    batch: &[NewEvent],
    stored: &[Option<RecordedEvent>],
) -> Result<Vec<Committed>, AppendError> {
    let duplicate = || {
        let event_id = batch
            .iter()
            .zip(stored)
            .find_map(|(event, found)| found.as_ref().map(|_| event.event_id))
            .or_else(|| batch.first().map(|e| e.event_id))
            .unwrap_or_default();
        AppendError::DuplicateEventId { event_id, stream: stream.clone() }
    };
    if batch.is_empty() || batch.len() != stored.len() {
        return Err(duplicate());
    }
    let Some(all) = stored.iter().map(Option::as_ref).collect::<Option<Vec<&RecordedEvent>>>() else {
        return Err(duplicate());
    };
    let first = all[0].stream_version.get();
    let before = Some(first - 1).filter(|v| *v > 0).map(StreamVersion);
    let placed_in_order = all
        .iter()
        .enumerate()
        .all(|(i, e)| &e.stream_id == stream && e.stream_version.get() == first + i as u64);
    let same_content = batch.iter().zip(&all).all(|(new, old)| same_event(new, old));
    let admitted = expected == ExpectedVersion::Any || admits(expected, before);
    if !(placed_in_order && same_content && admitted) {
        return Err(duplicate());
    }
    Ok(all
        .iter()
        .map(|e| Committed {
            event_id: e.event_id,
            stream_version: e.stream_version,
            global_position: e.global_position,
        })
        .collect())
}

/// Whether a stored event holds what `new` would store.
fn same_event(new: &NewEvent, old: &RecordedEvent) -> bool {
    new.event_id == old.event_id
        && new.aggregate_type == old.aggregate_type
        && new.event_type == old.event_type
        && new.schema_version == old.schema_version
        && new.metadata == old.metadata
        // Payload equality compares JSON values when the texts differ.
        && new.payload == old.payload
}

#[cfg(test)]
mod tests {
    use es_core::{GlobalPosition, Metadata, Payload, Timestamp};
    use serde_json::json;

    use super::*;

    fn stored(new: &NewEvent, stream: &str, version: u64, position: u64) -> RecordedEvent {
        RecordedEvent {
            event_id: new.event_id,
            stream_id: StreamId::new(stream),
            aggregate_type: new.aggregate_type.clone(),
            stream_version: StreamVersion(version),
            global_position: GlobalPosition(position),
            event_type: new.event_type.clone(),
            schema_version: new.schema_version,
            payload: new.payload.clone(),
            metadata: new.metadata.clone(),
            recorded_at: Timestamp(0),
        }
    }

    fn batch() -> Vec<NewEvent> {
        vec![
            NewEvent::new("order", "Placed", 1, json!({"a": 1, "b": [1, 2]})),
            NewEvent::new("order", "Paid", 2, json!(5))
                .with_metadata(Metadata::new().with_field("user", "ada")),
        ]
    }

    fn placed(batch: &[NewEvent]) -> Vec<Option<RecordedEvent>> {
        vec![Some(stored(&batch[0], "order-1", 3, 10)), Some(stored(&batch[1], "order-1", 4, 11))]
    }

    #[test]
    fn an_exact_retry_returns_the_original_placement() {
        let stream = StreamId::new("order-1");
        let batch = batch();
        for expected in
            [ExpectedVersion::Any, ExpectedVersion::StreamExists, ExpectedVersion::Exact(StreamVersion(2))]
        {
            let committed = classify(&stream, expected, &batch, &placed(&batch)).unwrap();
            let at: Vec<(u64, u64)> =
                committed.iter().map(|c| (c.stream_version.get(), c.global_position.get())).collect();
            assert_eq!(at, vec![(3, 10), (4, 11)], "{expected:?}");
        }
    }

    #[test]
    fn a_payload_with_other_key_order_is_the_same_payload() {
        let stream = StreamId::new("order-1");
        let batch = batch();
        let mut stored = placed(&batch);
        if let Some(first) = stored[0].as_mut() {
            first.payload = Payload::from_json(r#"{ "b": [1, 2], "a": 1 }"#).unwrap();
        }
        assert!(classify(&stream, ExpectedVersion::Any, &batch, &stored).is_ok());
    }

    #[test]
    fn any_other_reuse_is_a_duplicate_naming_the_first_stored_id() {
        let stream = StreamId::new("order-1");
        let batch = batch();
        let expect_duplicate =
            |stored: Vec<Option<RecordedEvent>>, expected: ExpectedVersion, what: &str| match classify(
                &stream, expected, &batch, &stored,
            ) {
                Err(AppendError::DuplicateEventId { event_id, stream: s }) => {
                    let first_stored =
                        batch.iter().zip(&stored).find(|(_, s)| s.is_some()).map(|(e, _)| e.event_id);
                    assert_eq!(Some(event_id), first_stored, "{what}");
                    assert_eq!(s, stream, "{what}");
                }
                other => panic!("{what}: expected DuplicateEventId, got {other:?}"),
            };
        let mut changed = placed(&batch);
        if let Some(e) = changed[1].as_mut() {
            e.payload = Payload::from(json!(6));
        }
        expect_duplicate(changed, ExpectedVersion::Any, "another payload");
        let mut changed = placed(&batch);
        if let Some(e) = changed[0].as_mut() {
            e.metadata = Metadata::new().with_field("user", "bob");
        }
        expect_duplicate(changed, ExpectedVersion::Any, "other metadata");
        let mut changed = placed(&batch);
        if let Some(e) = changed[0].as_mut() {
            e.schema_version = 9;
        }
        expect_duplicate(changed, ExpectedVersion::Any, "another schema version");
        let mut changed = placed(&batch);
        if let Some(e) = changed[0].as_mut() {
            e.event_type = "Cancelled".to_owned();
        }
        expect_duplicate(changed, ExpectedVersion::Any, "another event type");
        let mut changed = placed(&batch);
        if let Some(e) = changed[0].as_mut() {
            e.aggregate_type = "invoice".to_owned();
        }
        expect_duplicate(changed, ExpectedVersion::Any, "another aggregate type");
        expect_duplicate(vec![None, placed(&batch)[1].clone()], ExpectedVersion::Any, "only some ids stored");
        let elsewhere =
            vec![Some(stored(&batch[0], "order-2", 3, 10)), Some(stored(&batch[1], "order-2", 4, 11))];
        expect_duplicate(elsewhere, ExpectedVersion::Any, "another stream");
        let apart =
            vec![Some(stored(&batch[0], "order-1", 3, 10)), Some(stored(&batch[1], "order-1", 5, 12))];
        expect_duplicate(apart, ExpectedVersion::Any, "not consecutive");
        let swapped =
            vec![Some(stored(&batch[0], "order-1", 4, 11)), Some(stored(&batch[1], "order-1", 3, 10))];
        expect_duplicate(swapped, ExpectedVersion::Any, "another order");
        expect_duplicate(placed(&batch), ExpectedVersion::NoStream, "an expectation that did not admit it");
        expect_duplicate(
            placed(&batch),
            ExpectedVersion::Exact(StreamVersion(3)),
            "Exact(3) for a batch at 3",
        );
    }

    #[test]
    fn exact_zero_means_no_stream() {
        assert!(admits(ExpectedVersion::Exact(StreamVersion(0)), None));
        assert!(!admits(ExpectedVersion::Exact(StreamVersion(0)), Some(StreamVersion(1))));
        let stream = StreamId::new("order-1");
        let batch = batch();
        let at_start =
            vec![Some(stored(&batch[0], "order-1", 1, 1)), Some(stored(&batch[1], "order-1", 2, 2))];
        assert!(classify(&stream, ExpectedVersion::Exact(StreamVersion(0)), &batch, &at_start).is_ok());
        assert!(classify(&stream, ExpectedVersion::NoStream, &batch, &at_start).is_ok());
    }
}
