//! The exact-retry rule: what an append means when some of its event ids
//! are already stored.
//!
//! An append is an **exact retry** of an earlier, committed one (as after a
//! lost reply) when every event id of the batch is stored, in the batch's
//! order at consecutive versions of the same stream, each with the same
//! content (aggregate type, event type, schema version, payload as a JSON
//! value, metadata), and the append's expectation admitted the stream as it
//! was just before the first of them. An exact retry succeeds and returns
//! the original versions and positions. Any other reuse of a stored id is
//! [`AppendError::DuplicateEventId`], naming the id and the stream.
//!
//! The whole rule is [`classify`]: one pure function over the stored rows,
//! so every path of the append (refused expectation, unique violation)
//! decides alike.

use es_core::{AppendError, Committed, ExpectedVersion, NewEvent, RecordedEvent, StreamId, StreamVersion};

/// Whether `expected` admits a stream at `actual` (`None`: no stream).
/// `Exact(StreamVersion(0))` means "no stream", like `NoStream`.
pub(crate) fn admits(expected: ExpectedVersion, actual: Option<StreamVersion>) -> bool {
    match expected {
        ExpectedVersion::Exact(StreamVersion(0)) => actual.is_none(),
        other => other.accepts(actual),
    }
}

/// Classifies `events` against `stored`, the event stored under each one's
/// id (`None`: not stored), in batch order.
///
/// `Ok(None)`: no id is stored, append as usual. `Ok(Some(committed))`: an
/// exact retry, with the original placements. `Err`: a reused id.
pub(crate) fn classify(
    stream: &StreamId,
    expected: ExpectedVersion,
    events: &[NewEvent],
    stored: &[Option<RecordedEvent>],
) -> Result<Option<Vec<Committed>>, AppendError> {
    let Some(first_stored) = events.iter().zip(stored).find_map(|(e, s)| s.as_ref().map(|_| e.event_id))
    else {
        return Ok(None);
    };
    let duplicate = |event_id| Err(AppendError::DuplicateEventId { event_id, stream: stream.clone() });
    let Some(found) = stored.iter().map(Option::as_ref).collect::<Option<Vec<&RecordedEvent>>>() else {
        // Part of the batch is new, part stored: not a retry of one append.
        return duplicate(first_stored);
    };
    let Some(first) = found.first() else { return Ok(None) };
    let first_version = first.stream_version.get();
    for ((event, original), offset) in events.iter().zip(&found).zip(0u64..) {
        let same_place =
            original.stream_id == *stream && original.stream_version.get() == first_version + offset;
        if !same_place || !same_content(event, original) {
            return duplicate(event.event_id);
        }
    }
    let before = Some(first_version - 1).filter(|v| *v > 0).map(StreamVersion);
    if !admits(expected, before) {
        return duplicate(first.event_id);
    }
    Ok(Some(
        found
            .iter()
            .map(|e| Committed {
                event_id: e.event_id,
                stream_version: e.stream_version,
                global_position: e.global_position,
            })
            .collect(),
    ))
}

/// Whether `event` carries what `original` stored: payloads compare as JSON
/// values, so spacing and key order do not matter.
fn same_content(event: &NewEvent, original: &RecordedEvent) -> bool {
    event.aggregate_type == original.aggregate_type
        && event.event_type == original.event_type
        && event.schema_version == original.schema_version
        && event.payload == original.payload
        && event.metadata == original.metadata
}

#[cfg(test)]
mod tests {
    use es_core::{EventId, GlobalPosition, Metadata, Payload, Timestamp};
    use serde_json::json;

    use super::*;

    fn event(n: u64) -> NewEvent {
        NewEvent::new("t", "T", 1, json!({ "n": n, "k": "v" }))
    }

    fn stored_at(event: &NewEvent, stream: &str, version: u64, position: u64) -> RecordedEvent {
        RecordedEvent {
            event_id: event.event_id,
            stream_id: StreamId::new(stream),
            aggregate_type: event.aggregate_type.clone(),
            stream_version: StreamVersion(version),
            global_position: GlobalPosition(position),
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            payload: event.payload.clone(),
            metadata: event.metadata.clone(),
            recorded_at: Timestamp(0),
        }
    }

    fn s() -> StreamId {
        StreamId::new("s")
    }

    #[test]
    fn exact_zero_means_no_stream() {
        assert!(admits(ExpectedVersion::Exact(StreamVersion(0)), None));
        assert!(!admits(ExpectedVersion::Exact(StreamVersion(0)), Some(StreamVersion(1))));
        assert!(admits(ExpectedVersion::Exact(StreamVersion(2)), Some(StreamVersion(2))));
        assert!(!admits(ExpectedVersion::NoStream, Some(StreamVersion(2))));
    }

    #[test]
    fn nothing_stored_is_a_plain_append() {
        let batch = [event(1), event(2)];
        assert!(matches!(classify(&s(), ExpectedVersion::Any, &batch, &[None, None]), Ok(None)));
    }

    #[test]
    fn the_same_batch_at_its_place_is_an_exact_retry() {
        let batch = [event(1), event(2)];
        let stored = [Some(stored_at(&batch[0], "s", 3, 10)), Some(stored_at(&batch[1], "s", 4, 11))];
        for expected in
            [ExpectedVersion::Any, ExpectedVersion::StreamExists, ExpectedVersion::Exact(StreamVersion(2))]
        {
            let committed = classify(&s(), expected, &batch, &stored).unwrap().unwrap();
            assert_eq!(committed.iter().map(|c| c.global_position.get()).collect::<Vec<_>>(), vec![10, 11]);
            assert_eq!(committed[1].stream_version, StreamVersion(4));
        }
    }

    #[test]
    fn a_first_append_retried_with_no_stream_or_exact_zero_is_exact() {
        let batch = [event(1)];
        let stored = [Some(stored_at(&batch[0], "s", 1, 1))];
        for expected in [ExpectedVersion::NoStream, ExpectedVersion::Exact(StreamVersion(0))] {
            assert!(classify(&s(), expected, &batch, &stored).unwrap().is_some(), "{expected:?}");
        }
        let refused = classify(&s(), ExpectedVersion::StreamExists, &batch, &stored);
        assert!(matches!(refused, Err(AppendError::DuplicateEventId { .. })));
    }

    #[test]
    fn payloads_compare_as_json_values() {
        let batch = [event(1)];
        let mut original = stored_at(&batch[0], "s", 1, 1);
        original.payload = Payload::from_json(r#"{ "k" : "v", "n" : 1 }"#).unwrap();
        assert!(classify(&s(), ExpectedVersion::Any, &batch, &[Some(original)]).unwrap().is_some());
    }

    fn assert_duplicate(result: Result<Option<Vec<Committed>>, AppendError>, id: EventId) {
        match result {
            Err(AppendError::DuplicateEventId { event_id, stream }) => {
                assert_eq!(event_id, id);
                assert_eq!(stream, s());
            }
            other => panic!("expected DuplicateEventId, got {other:?}"),
        }
    }

    #[test]
    fn any_difference_in_content_is_a_duplicate_naming_that_event() {
        let batch = [event(1), event(2)];
        let changes: [fn(&mut RecordedEvent); 5] = [
            |e| e.aggregate_type = "other".into(),
            |e| e.event_type = "Other".into(),
            |e| e.schema_version = 2,
            |e| e.payload = json!({ "n": 99 }).into(),
            |e| e.metadata = Metadata::new().with_field("user", "ada"),
        ];
        for change in changes {
            let mut second = stored_at(&batch[1], "s", 2, 2);
            change(&mut second);
            let stored = [Some(stored_at(&batch[0], "s", 1, 1)), Some(second)];
            assert_duplicate(classify(&s(), ExpectedVersion::Any, &batch, &stored), batch[1].event_id);
        }
    }

    #[test]
    fn another_stream_a_gap_another_order_or_a_partial_batch_is_a_duplicate() {
        let batch = [event(1), event(2)];
        let elsewhere = [Some(stored_at(&batch[0], "t", 1, 1)), Some(stored_at(&batch[1], "t", 2, 2))];
        assert_duplicate(classify(&s(), ExpectedVersion::Any, &batch, &elsewhere), batch[0].event_id);
        let gap = [Some(stored_at(&batch[0], "s", 1, 1)), Some(stored_at(&batch[1], "s", 3, 3))];
        assert_duplicate(classify(&s(), ExpectedVersion::Any, &batch, &gap), batch[1].event_id);
        let swapped = [Some(stored_at(&batch[0], "s", 2, 2)), Some(stored_at(&batch[1], "s", 1, 1))];
        assert_duplicate(classify(&s(), ExpectedVersion::Any, &batch, &swapped), batch[1].event_id);
        let partial = [None, Some(stored_at(&batch[1], "s", 1, 1))];
        assert_duplicate(classify(&s(), ExpectedVersion::Any, &batch, &partial), batch[1].event_id);
    }

    #[test]
    fn an_expectation_that_did_not_admit_the_original_placement_is_a_duplicate() {
        let batch = [event(1)];
        let stored = [Some(stored_at(&batch[0], "s", 3, 3))];
        assert_duplicate(classify(&s(), ExpectedVersion::NoStream, &batch, &stored), batch[0].event_id);
        assert_duplicate(
            classify(&s(), ExpectedVersion::Exact(StreamVersion(1)), &batch, &stored),
            batch[0].event_id,
        );
    }
}
