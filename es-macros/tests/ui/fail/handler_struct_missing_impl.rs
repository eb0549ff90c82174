use es_core::{event, event_handler, HandleEvent, HandlerCtx, HandlerError, Recorded};

#[event]
#[derive(Debug, Clone, PartialEq)]
struct AccountOpened {}

#[event]
#[derive(Debug, Clone, PartialEq)]
struct AccountClosed {}

#[event_handler(name = "audit", events(AccountOpened, AccountClosed))]
#[derive(Default)]
struct Audit;

impl HandleEvent<AccountOpened> for Audit {
    async fn handle(&self, _: &Recorded<AccountOpened>, _: &HandlerCtx) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn main() {}
