use es_core::{event, event_handler, HandlerCtx, HandlerError, Recorded};

#[event]
#[derive(Debug, Clone, PartialEq)]
struct AccountOpened {
    owner: String,
}

#[event_handler(name = "welcome-mail", consistency = "immediate")]
async fn welcome(e: &Recorded<AccountOpened>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
    let _ = (e, ctx);
    Ok(())
}

fn main() {}
