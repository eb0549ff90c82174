use es_core::{event, projection, HandlerError, ProjectionTx, Recorded};

#[event]
#[derive(Debug, Clone, PartialEq)]
struct MoneyDeposited {
    amount: u64,
}

#[event]
#[derive(Debug, Clone, PartialEq)]
struct MoneyWithdrawn {
    amount: u64,
}

#[projection(name = "balances", events(MoneyDeposited))]
async fn balances(e: &Recorded<MoneyDeposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
    Ok(tx.put("total", &e.amount)?)
}

fn main() {}
