use es_core::{event, projection, HandlerError, Project, ProjectionTx, Recorded};

#[event]
#[derive(Debug, Clone, PartialEq)]
struct MoneyDeposited {
    amount: u64,
}

#[projection(name = "balances", events(MoneyDeposited), prefetch(MoneyDeposited))]
#[derive(Default)]
struct Balances;

impl Project<MoneyDeposited> for Balances {
    async fn project(&self, e: &Recorded<MoneyDeposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        Ok(tx.put("total", &e.amount)?)
    }
}

fn main() {}
