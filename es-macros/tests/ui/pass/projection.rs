//! `#[projection]` with every key, on a struct with fields.

use es_core::{event, projection, DocumentIds, HandlerError, Prefetch, Project, ProjectionTx, Recorded};
use es_core::readside::{Consistency, Registry};

#[event]
#[derive(Debug, Clone, PartialEq)]
pub struct MoneyDeposited {
    pub amount: u64,
}

#[event]
#[derive(Debug, Clone, PartialEq)]
pub struct MoneyWithdrawn {
    pub amount: u64,
}

#[projection(
    name = "balances",
    events(MoneyDeposited, MoneyWithdrawn),
    prefetch(MoneyDeposited),
    group = "reports",
    consistency = "strong"
)]
#[derive(Default)]
pub struct Balances {
    prefix: String,
}

impl Project<MoneyDeposited> for Balances {
    async fn project(&self, e: &Recorded<MoneyDeposited>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let id = format!("{}{}", self.prefix, e.stream_id);
        let balance: u64 = tx.get(&id).await?.unwrap_or(0);
        Ok(tx.put(id, &(balance + e.amount))?)
    }
}

impl Prefetch<MoneyDeposited> for Balances {
    fn documents(&self, e: &Recorded<MoneyDeposited>, ids: &mut DocumentIds) {
        ids.add(format!("{}{}", self.prefix, e.stream_id));
    }
}

impl Project<MoneyWithdrawn> for Balances {
    async fn project(&self, e: &Recorded<MoneyWithdrawn>, tx: &mut ProjectionTx) -> Result<(), HandlerError> {
        let id = format!("{}{}", self.prefix, e.stream_id);
        let balance: u64 = tx.get(&id).await?.unwrap_or(0);
        Ok(tx.put(id, &balance.saturating_sub(e.amount))?)
    }
}

fn main() {
    let registry = Registry::from_inventory().unwrap();
    assert_eq!(Balances::NAME, "balances");
    let balances = registry.get(Balances::NAME).unwrap();
    assert_eq!(balances.event_types(), ["MoneyDeposited", "MoneyWithdrawn"]);
    assert_eq!(balances.consistency_level(), Consistency::Strong);
    assert_eq!(balances.group(), Some("reports"));
}
