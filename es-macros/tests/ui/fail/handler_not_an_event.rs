use es_core::{event_handler, HandlerCtx, HandlerError, Recorded};

struct AccountOpened;

#[event_handler(name = "welcome-mail")]
async fn welcome(e: &Recorded<AccountOpened>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
    let _ = (e, ctx);
    Ok(())
}

fn main() {}
