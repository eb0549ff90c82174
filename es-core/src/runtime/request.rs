//! A command on its way to its aggregate: the command, its id, its metadata
//! and, when the caller set a deadline, the progress the caller watches.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use crate::aggregate::Aggregate;
use crate::envelope::Metadata;
use crate::version::CommandId;

/// A command in flight. Kept small: a mailbox allocates its slots in blocks,
/// so the message size is most of an idle actor's memory.
pub(crate) struct Request<A: Aggregate> {
    pub(crate) command: A::Command,
    pub(crate) id: CommandId,
    /// The caller gave the id (or it was derived for a handler): it may
    /// have been executed before, so a refusal or a duplicate is checked
    /// against what that id already stored.
    pub(crate) repeatable: bool,
    /// Absent when empty, the common case.
    pub(crate) metadata: Option<Box<Metadata>>,
    /// Present when the caller set a deadline.
    pub(crate) progress: Option<Arc<Progress>>,
}

impl<A: Aggregate> Request<A> {
    /// Whether the command may run: false once the caller gave up on it
    /// before it started. Marks it running.
    pub(crate) fn start(&self) -> bool {
        self.progress.as_ref().is_none_or(|p| p.advance(Progress::QUEUED, Progress::RUNNING))
    }

    /// Whether the append may be sent: false once the caller gave up.
    pub(crate) fn appending(&self) -> bool {
        self.progress.as_ref().is_none_or(|p| p.advance(Progress::RUNNING, Progress::APPENDING))
    }

    /// The append was answered and stored nothing: the command runs on
    /// (it decides again) and may still be cancelled before its next
    /// append. After an append that stored or may have stored, the command
    /// stays `APPENDING`, so a caller who gives up hears that the outcome
    /// is unknown to it.
    pub(crate) fn appended(&self) {
        if let Some(progress) = &self.progress {
            progress.advance(Progress::APPENDING, Progress::RUNNING);
        }
    }

    /// Puts a started command back in line, to be started again by
    /// whichever actor handles it next (one that was handed back, or one
    /// a refused batch runs on its own). False if its caller gave up
    /// meanwhile: then nothing of it is stored, and it is dropped.
    pub(crate) fn requeue(&self) -> bool {
        self.progress.as_ref().is_none_or(|p| p.requeue())
    }
}

/// How far a command with a deadline got, shared by the caller and the
/// code running the command, so that a caller who gives up knows whether
/// anything may have been stored.
#[derive(Debug, Default)]
pub(crate) struct Progress(AtomicU8);

/// What a caller whose deadline passed can say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GaveUp {
    /// The command had not sent an append: it never will.
    NothingStored,
    /// An append may be in flight, or the command finished: its outcome is
    /// unknown to the caller.
    Unknown,
}

impl Progress {
    const QUEUED: u8 = 0;
    const RUNNING: u8 = 1;
    const APPENDING: u8 = 2;
    const CANCELLED: u8 = 3;

    fn advance(&self, from: u8, to: u8) -> bool {
        self.0.compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Back to `QUEUED` from wherever the command got, unless its caller
    /// gave up (then false).
    fn requeue(&self) -> bool {
        self.advance(Self::RUNNING, Self::QUEUED)
            || self.advance(Self::APPENDING, Self::QUEUED)
            || self.0.load(Ordering::Acquire) == Self::QUEUED
    }

    /// Called by a caller whose deadline passed: cancels the command unless
    /// its append is under way.
    pub(crate) fn give_up(&self) -> GaveUp {
        for from in [Self::QUEUED, Self::RUNNING] {
            if self.advance(from, Self::CANCELLED) {
                return GaveUp::NothingStored;
            }
        }
        if self.0.load(Ordering::Acquire) == Self::CANCELLED {
            return GaveUp::NothingStored;
        }
        GaveUp::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn giving_up_cancels_until_the_append_is_sent() {
        let queued = Progress::default();
        assert_eq!(queued.give_up(), GaveUp::NothingStored);
        assert!(!queued.advance(Progress::QUEUED, Progress::RUNNING), "a cancelled command never starts");

        let appending = Progress::default();
        assert!(appending.advance(Progress::QUEUED, Progress::RUNNING));
        assert!(appending.advance(Progress::RUNNING, Progress::APPENDING));
        assert_eq!(appending.give_up(), GaveUp::Unknown);

        let between = Progress::default();
        assert!(between.advance(Progress::QUEUED, Progress::RUNNING));
        assert_eq!(between.give_up(), GaveUp::NothingStored);
        assert!(!between.advance(Progress::RUNNING, Progress::APPENDING), "no append after giving up");
    }

    #[test]
    fn a_requeued_command_starts_again_unless_its_caller_gave_up() {
        for reached in [Progress::QUEUED, Progress::RUNNING, Progress::APPENDING] {
            let progress = Progress(AtomicU8::new(reached));
            assert!(progress.requeue(), "from {reached}");
            assert!(progress.advance(Progress::QUEUED, Progress::RUNNING), "starts again from {reached}");
        }
        let cancelled = Progress::default();
        assert_eq!(cancelled.give_up(), GaveUp::NothingStored);
        assert!(!cancelled.requeue(), "a cancelled command is not put back in line");
    }
}
