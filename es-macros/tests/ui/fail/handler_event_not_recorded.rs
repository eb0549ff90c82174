use es_core::{event, event_handler, HandlerCtx, HandlerError};

#[event]
#[derive(Debug, Clone, PartialEq)]
struct AccountOpened {
    owner: String,
}

#[event_handler(name = "welcome-mail")]
async fn welcome(e: &AccountOpened, ctx: &HandlerCtx) -> Result<(), HandlerError> {
    let _ = (e, ctx);
    Ok(())
}

fn main() {}
