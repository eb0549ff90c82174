//! How a read side runs with an application: [`EsBuilder::read_side`]
//! attaches it, [`Es::read_side`] finds it again, and the runtime waits on
//! it through the narrow `Attached` interface, knowing nothing else of it.

use std::any::Any;
use std::time::Duration;

use async_trait::async_trait;

use super::builder::ReadSideBuilder;
use super::read_side::ReadSide;
use crate::error::ConsistencyError;
use crate::runtime::attached::Attached;
use crate::runtime::EsBuilder;
use crate::version::GlobalPosition;
use crate::Es;

impl EsBuilder {
    /// Runs a read side (event handlers and projections) with this
    /// application: it reads this application's event store, writes to its
    /// projection store, and its handlers dispatch commands here. Strong
    /// subscribers ([`Consistency::Strong`](crate::readside::Consistency::Strong))
    /// then run before [`Es::execute`] returns.
    #[must_use]
    pub fn read_side(self, read_side: ReadSideBuilder) -> Self {
        self.attach_read_side(Box::new(move |es: &Es| {
            let started = read_side.owned_by(es).start()?;
            Ok(Box::new(started) as Box<dyn Attached>)
        }))
    }
}

impl Es {
    /// The read side this application runs, if the builder was given one.
    pub fn read_side(&self) -> Option<&ReadSide> {
        self.shared.read_side.get()?.as_any().downcast_ref::<ReadSide>()
    }
}

#[async_trait]
impl Attached for ReadSide {
    fn strong_consumes(&self, event_types: &[&str]) -> bool {
        ReadSide::strong_consumes(self, event_types)
    }

    async fn wait_for_strong(
        &self,
        position: GlobalPosition,
        timeout: Duration,
        event_types: Option<&[&str]>,
    ) -> Result<(), ConsistencyError> {
        self.wait_for_strong_consumers(position, timeout, event_types).await
    }

    async fn shutdown(&self) {
        ReadSide::shutdown(self).await;
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
