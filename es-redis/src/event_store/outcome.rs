//! Which driver errors leave an append's outcome unknown.
//!
//! An append is one script call (`EVALSHA`, after a `SCRIPT LOAD` when the
//! server does not know the script yet). Redis runs a script whole or
//! refuses it, and `append.lua` makes every check that can fail (the
//! expectation, stored ids, the type of each key it writes) before its
//! first write, so an error reply from the server means nothing was
//! written. Once the call was sent, only its reply says whether it ran. So,
//! per kind of [`redis::RedisError`]:
//!
//! | driver error | when | the append |
//! |---|---|---|
//! | an error reply from the server (`ERR`, `WRONGTYPE`, `NOSCRIPT`, `BUSY`, `LOADING`, `READONLY`, `OOM`, `NOPERM`, ...) | the server refused the script, or the script stopped at one of its checks, before writing | [`AppendError::Backend`]: nothing was written |
//! | a refused connection, failed authentication, a client-side error (`Client`, `InvalidClientConfig`) | before the call was sent | `Backend`: nothing was written |
//! | any other I/O error: a reset or closed connection, an EOF, a reply that did not come within the connection's reply timeout or the store's call bound ([`RedisConnection::with_call_timeout`](crate::RedisConnection::with_call_timeout)) | the call may have reached the server and run | [`AppendError::OutcomeUnknown`] |
//! | `Parse`, `UnexpectedReturnType`, and a reply of a shape the script never sends | a reply came but could not be read: the script ran | `OutcomeUnknown` |
//! | anything else | | `OutcomeUnknown` (the safe answer: a retry with the same ids is an exact retry) |
//!
//! A connection that breaks while the manager reconnects may fail a call
//! that never left: it is reported as unknown too, since the error cannot
//! tell the two apart, and a retry with the same event ids is safe either
//! way.

use es_core::error::AppendError;
use es_core::StreamId;
use redis::{ErrorKind, RedisError};

/// The error of an append script call that failed with `error`: its
/// outcome is unknown unless the error proves the script did not write.
pub(super) fn call_failed(stream: &StreamId, error: RedisError) -> AppendError {
    let stream = stream.clone();
    if nothing_written(&error) {
        AppendError::Backend { stream, source: Box::new(error) }
    } else {
        AppendError::OutcomeUnknown { stream, source: Box::new(error) }
    }
}

/// Whether `error` proves that the append script wrote nothing.
fn nothing_written(error: &RedisError) -> bool {
    match error.kind() {
        // The server answered with an error: the script was refused or
        // stopped at a check before its first write.
        ErrorKind::Server(_) | ErrorKind::Extension => true,
        ErrorKind::AuthenticationFailed | ErrorKind::InvalidClientConfig | ErrorKind::Client => true,
        ErrorKind::Io => error.is_connection_refusal(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    fn classify(error: RedisError) -> &'static str {
        match call_failed(&StreamId::new("s"), error) {
            AppendError::OutcomeUnknown { .. } => "unknown",
            AppendError::Backend { .. } => "nothing written",
            other => panic!("{other:?}"),
        }
    }

    fn io(kind: io::ErrorKind) -> RedisError {
        RedisError::from(io::Error::from(kind))
    }

    #[test]
    fn a_connection_lost_in_flight_is_an_unknown_outcome() {
        for kind in [
            io::ErrorKind::UnexpectedEof,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::TimedOut,
        ] {
            assert_eq!(classify(io(kind)), "unknown", "{kind:?}");
        }
        let unreadable = RedisError::from((ErrorKind::UnexpectedReturnType, "not an array"));
        assert_eq!(classify(unreadable), "unknown");
        assert_eq!(classify(RedisError::from((ErrorKind::Parse, "bad reply"))), "unknown");
    }

    #[test]
    fn errors_before_the_call_was_sent_or_replies_refusing_it_wrote_nothing() {
        assert_eq!(classify(io(io::ErrorKind::ConnectionRefused)), "nothing written");
        assert_eq!(classify(RedisError::from((ErrorKind::Client, "bad argument"))), "nothing written");
        assert_eq!(classify(RedisError::from((ErrorKind::AuthenticationFailed, "wrong"))), "nothing written");
        let refused = RedisError::from((ErrorKind::Server(redis::ServerErrorKind::ReadOnly), "replica"));
        assert_eq!(classify(refused), "nothing written");
        let script =
            RedisError::from((ErrorKind::Server(redis::ServerErrorKind::ResponseError), "WRONGTYPE"));
        assert_eq!(classify(script), "nothing written");
    }
}
