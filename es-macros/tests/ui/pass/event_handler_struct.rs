//! `#[event_handler]` on a struct handling several event types, with state
//! built by `Default`.

use std::sync::atomic::{AtomicU64, Ordering};

use es_core::{event, event_handler, HandleEvent, HandlerCtx, HandlerError, Recorded};
use es_core::readside::Registry;

#[event]
#[derive(Debug, Clone, PartialEq)]
pub struct AccountOpened {}

#[event]
#[derive(Debug, Clone, PartialEq)]
pub struct AccountClosed {}

#[event_handler(name = "audit", events(AccountOpened, AccountClosed), group = "ops")]
#[derive(Default)]
pub struct Audit {
    seen: AtomicU64,
}

impl HandleEvent<AccountOpened> for Audit {
    async fn handle(&self, _: &Recorded<AccountOpened>, _: &HandlerCtx) -> Result<(), HandlerError> {
        self.seen.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl HandleEvent<AccountClosed> for Audit {
    async fn handle(&self, _: &Recorded<AccountClosed>, _: &HandlerCtx) -> Result<(), HandlerError> {
        self.seen.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn main() {
    let registry = Registry::from_inventory().unwrap();
    assert_eq!(Audit::NAME, "audit");
    assert_eq!(registry.get(Audit::NAME).unwrap().event_types(), ["AccountClosed", "AccountOpened"]);
}
