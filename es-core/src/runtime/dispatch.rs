//! Routes a validated command to its aggregate: through the aggregate's
//! actor ([`CommandPath::Actors`](super::CommandPath::Actors)) or by
//! loading the aggregate for it ([`CommandPath::Reload`](super::CommandPath::Reload)).

use std::sync::Arc;

use tracing::Instrument;

use super::config::CommandPath;
use super::es::Shared;
use super::outcome::CommandOutcome;
use super::request::Request;
use super::{actor, reload};
use crate::aggregate::Aggregate;
use crate::error::ExecuteError;

/// Executes `request` on aggregate `A` with id `id`, inside `span`.
pub(crate) async fn execute<A: Aggregate>(
    shared: &Arc<Shared>,
    id: String,
    request: Request<A>,
    span: tracing::Span,
) -> Result<CommandOutcome<A>, ExecuteError<A::Error>> {
    match shared.config.command_path {
        CommandPath::Actors => actor::execute::<A>(shared, id, request).instrument(span).await,
        CommandPath::Reload => reload::execute::<A>(shared, id, request).instrument(span).await,
    }
}
