//! Every key of `#[event_handler]` on an async fn, and the signatures it
//! accepts: a qualified `Recorded`, named lifetimes, a public fn.

use es_core::{event, event_handler, HandlerCtx, HandlerError, Recorded};
use es_core::readside::{Consistency, Registry, Replay};

#[event]
#[derive(Debug, Clone, PartialEq)]
pub struct AccountOpened {
    pub owner: String,
}

#[event]
#[derive(Debug, Clone, PartialEq)]
pub struct AccountClosed {}

#[event_handler(name = "welcome-mail", replay = "skip", consistency = "strong", group = "mail")]
pub async fn welcome(e: &Recorded<AccountOpened>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
    let _ = (&e.owner, ctx.name());
    Ok(())
}

#[event_handler(name = "farewell", replay = "run", consistency = "eventual")]
async fn farewell<'e, 'c>(
    e: &'e es_core::Recorded<AccountClosed>,
    ctx: &'c es_core::HandlerCtx,
) -> es_core::__private::Result<(), es_core::HandlerError> {
    let _ = (e, ctx);
    Ok(())
}

fn main() {
    let registry = Registry::from_inventory().unwrap();
    let welcome = registry.get("welcome-mail").unwrap();
    assert_eq!(welcome.replay_mode(), Replay::Skip);
    assert_eq!(welcome.consistency_level(), Consistency::Strong);
    assert_eq!(welcome.group(), Some("mail"));
    let farewell = registry.get("farewell").unwrap();
    assert_eq!(farewell.event_types(), ["AccountClosed"]);
    assert_eq!(farewell.group(), None);
}
