use es_core::{event, event_handler, HandlerCtx, HandlerError};

#[event]
#[derive(Debug, Clone, PartialEq)]
struct AccountOpened {
    owner: String,
}

#[event_handler(replay = "sometimes", consistency = "strong", colour = "red", group = "")]
fn welcome(e: &AccountOpened, ctx: &HandlerCtx) -> Result<(), HandlerError> {
    let _ = (e, ctx);
    Ok(())
}

fn main() {}
