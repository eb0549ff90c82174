use es_core::{event, event_handler, HandlerCtx, HandlerError, Recorded};

#[event]
#[derive(Debug, Clone, PartialEq)]
struct MoneyDeposited {
    amount: u64,
}

#[event_handler(name = "deposit-mail", prefetch(MoneyDeposited))]
async fn mail(e: &Recorded<MoneyDeposited>, ctx: &HandlerCtx) -> Result<(), HandlerError> {
    let _ = (e, ctx);
    Ok(())
}

fn main() {}
