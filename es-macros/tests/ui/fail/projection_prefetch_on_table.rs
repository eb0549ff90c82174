use es_core::{event, projection, HandlerError, ProjectRows, Recorded, TableProjection, TableTx};

#[event]
#[derive(Debug, Clone, PartialEq)]
struct MoneyDeposited {
    amount: u64,
}

#[projection(name = "balances", table, events(MoneyDeposited), prefetch(MoneyDeposited))]
#[derive(Default)]
struct Balances;

impl TableProjection for Balances {
    type Transaction = ();
    type Batch = ();

    async fn reset(&self, _: &mut TableTx<Self>) -> Result<(), HandlerError> {
        Ok(())
    }
}

impl ProjectRows<MoneyDeposited> for Balances {
    async fn project(&self, _: &Recorded<MoneyDeposited>, _: &mut TableTx<Self>) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn main() {}
