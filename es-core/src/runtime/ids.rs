//! Ids derived from other ids, so that doing the same thing again names the
//! same things.
//!
//! A command's events get ids derived from its [`CommandId`] and their
//! index: executing a command id again produces the same event ids, and the
//! store recognizes an exact retry. A command a handler dispatches gets an
//! id derived from the triggering event, the handler's name and a step
//! number: a redelivered event re-sends the same command.
//!
//! Derived ids are UUID v7 in shape (version 7, RFC 4122 variant) and keep
//! the time of the id they come from in their first 48 bits, so they sort
//! with the ids around them; the other 74 bits mix everything they are
//! derived from. The mix is fixed here for good (ids derived by one release
//! must match the next one's, or a retry across an upgrade would store
//! twice) and cheap: it runs for every event on the command path.

use uuid::Uuid;

use crate::version::{CommandId, EventId};

/// A 64-bit finalizer (splitmix64's): every input bit affects every output
/// bit.
const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A v7-shaped id: `from`'s 48-bit timestamp, then a mix of `from` and
/// `salt`.
fn derive(from: Uuid, salt: u64) -> Uuid {
    let bits = from.as_u128();
    let (high, low) = ((bits >> 64) as u64, bits as u64);
    let first = mix(low ^ mix(high ^ mix(salt)));
    let second = mix(high ^ mix(first ^ 0xd6e8_feb8_6659_fd93));
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&from.as_bytes()[..6]);
    bytes[6..14].copy_from_slice(&first.to_be_bytes());
    bytes[14..].copy_from_slice(&second.to_be_bytes()[..2]);
    bytes[6] = (bytes[6] & 0x0f) | 0x70;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes)
}

/// FNV-1a over `bytes`: a fixed, stable hash of a handler's name.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

/// The id of event number `index` (0-based) of command `command`.
pub(crate) fn event_id(command: CommandId, index: usize) -> EventId {
    EventId(derive(command.as_uuid(), 0x6576_656e_7400_0000 ^ index as u64))
}

/// The id of the command a handler named `handler` dispatches as its step
/// number `step` (0-based) for the event `event`.
pub(crate) fn command_id(event: EventId, handler: &str, step: u32) -> CommandId {
    let salt = mix(fnv1a(handler.as_bytes())) ^ (u64::from(step) << 1 | 1);
    CommandId(derive(event.as_uuid(), salt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_distinct_and_v7_shaped() {
        let command = CommandId::new();
        let first = event_id(command, 0);
        assert_eq!(first, event_id(command, 0), "the same input gives the same id");
        assert_ne!(first, event_id(command, 1));
        assert_ne!(first, event_id(CommandId::new(), 0));
        assert_eq!(first.as_uuid().get_version_num(), 7);
        assert_eq!(first.as_uuid().get_variant(), uuid::Variant::RFC4122);
        assert_eq!(
            first.as_uuid().as_bytes()[..6],
            command.as_uuid().as_bytes()[..6],
            "keeps the command's time"
        );
    }

    #[test]
    fn the_mix_is_fixed_for_good() {
        let command = CommandId(Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0001));
        assert_eq!(event_id(command, 0).to_string(), event_id(command, 0).to_string());
        // Pinned: a change here changes every derived id, and a retry across
        // the upgrade would store twice.
        assert_eq!(event_id(command, 0).as_uuid().as_bytes()[..6], [0x01, 0x92, 0, 0, 0, 0]);
        assert_eq!(format!("{}", event_id(command, 3)), PINNED_EVENT_3);
    }

    const PINNED_EVENT_3: &str = "01920000-0000-7ec0-9e42-06a0b72dfba1";

    #[test]
    fn handler_commands_depend_on_event_handler_and_step() {
        let event = EventId::new();
        let id = command_id(event, "transfer", 0);
        assert_eq!(id, command_id(event, "transfer", 0));
        assert_ne!(id, command_id(event, "transfer", 1));
        assert_ne!(id, command_id(event, "refund", 0));
        assert_ne!(id, command_id(EventId::new(), "transfer", 0));
        assert_eq!(id.as_uuid().get_version_num(), 7);
    }
}
