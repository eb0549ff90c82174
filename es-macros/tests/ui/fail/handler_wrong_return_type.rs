use es_core::{event, event_handler, HandlerCtx, Recorded};

#[event]
#[derive(Debug, Clone, PartialEq)]
struct AccountOpened {
    owner: String,
}

#[event_handler(name = "welcome-mail")]
async fn welcome(e: &Recorded<AccountOpened>, ctx: &HandlerCtx) -> Result<(), String> {
    let _ = (e, ctx);
    Ok(())
}

fn main() {}
