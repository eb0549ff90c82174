use es_core::{event, event_handler, HandlerCtx, HandlerError, Recorded};

#[event]
#[derive(Debug, Clone, PartialEq)]
struct AccountOpened {
    owner: String,
}

#[event_handler(name = "welcome-mail")]
async fn welcome<E: es_core::Event>(e: &Recorded<E>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
    let _ = (e, ctx);
    Ok(())
}

fn main() {}
