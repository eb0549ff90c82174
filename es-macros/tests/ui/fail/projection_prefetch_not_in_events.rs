use es_core::{event, projection, DocumentIds, HandlerError, Prefetch, Project, ProjectionTx, Recorded};

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

#[projection(name = "balances", events(MoneyDeposited), prefetch(MoneyWithdrawn))]
#[derive(Default)]
struct Balances;

impl Project<MoneyDeposited> for Balances {
    async fn project(&self, e: &Recorded<MoneyDeposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        Ok(tx.put("total", &e.amount)?)
    }
}

impl Project<MoneyWithdrawn> for Balances {
    async fn project(&self, e: &Recorded<MoneyWithdrawn>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        Ok(tx.put("total", &e.amount)?)
    }
}

impl Prefetch<MoneyWithdrawn> for Balances {
    fn documents(&self, _: &Recorded<MoneyWithdrawn>, ids: &mut DocumentIds) {
        ids.add("total");
    }
}

fn main() {}
