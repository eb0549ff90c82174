use es_core::{event, projection, HandlerError, Project, ProjectionTx, Recorded};

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
#[derive(Default)]
struct Balances<T>(T);

impl<T: Send + Sync + 'static> Project<MoneyDeposited> for Balances<T> {
    async fn project(&self, e: &Recorded<MoneyDeposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        Ok(tx.put("total", &e.amount)?)
    }
}

fn main() {}
