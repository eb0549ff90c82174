use es_core::{event, event_handler, HandlerError};

#[event]
#[derive(Debug, Clone, PartialEq)]
struct AccountOpened {
    owner: String,
}

#[event_handler(name = "welcome-mail")]
async fn welcome() -> Result<(), HandlerError> {
    Ok(())
}

fn main() {}
