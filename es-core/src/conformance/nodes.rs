//! Several application nodes sharing one store: what the runtime promises
//! whichever adapter sits behind them.
//!
//! Each case builds two or more [`Es`] instances on clones of one store (so
//! they write the same streams, as nodes sharing a database do) and checks
//! one guarantee: no decision on stale state, conflicts resolved rather
//! than failed, commands of one process queued, and a command id executed
//! again answered with its original outcome. Stamp them with
//! [`nodes_conformance!`](crate::nodes_conformance).

use serde::{Deserialize, Serialize};

use super::join;
use crate::error::ExecuteError;
use crate::runtime::CommandPath;
use crate::store::EventStore;
use crate::{command, event, Aggregate, Apply, CommandId, Es, Events, Handle, StreamVersion};

/// How many commands each node runs in the contention cases.
const PER_NODE: u32 = 1_000;

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Opened;

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Deposited {
    amount: u64,
}

#[event]
#[derive(Debug, Clone, PartialEq)]
struct Withdrawn {
    amount: u64,
}

#[command(aggregate = Account)]
#[derive(Debug, Clone)]
struct Open {
    #[id]
    id: String,
}

#[command(aggregate = Account)]
#[derive(Debug, Clone)]
struct Deposit {
    #[id]
    id: String,
    amount: u64,
}

#[command(aggregate = Account)]
#[derive(Debug, Clone)]
struct Withdraw {
    #[id]
    id: String,
    amount: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Refused {
    #[error("balance {balance} cannot cover {requested}")]
    Insufficient { balance: u64, requested: u64 },
    #[error("the account is not open")]
    NotOpen,
}

#[derive(Aggregate, Debug, Default, Serialize, Deserialize)]
#[aggregate(name = "nodes_account", error = Refused, events(Opened, Deposited, Withdrawn), commands(Open, Deposit, Withdraw))]
struct Account {
    open: bool,
    balance: u64,
}

impl Handle<Open> for Account {
    fn handle(&self, _: Open) -> Result<Events<Self>, Refused> {
        Ok(if self.open { Events::none() } else { Events::one(Opened) })
    }
}

impl Handle<Deposit> for Account {
    fn handle(&self, cmd: Deposit) -> Result<Events<Self>, Refused> {
        if !self.open {
            return Err(Refused::NotOpen);
        }
        Ok(Events::one(Deposited { amount: cmd.amount }))
    }
}

impl Handle<Withdraw> for Account {
    fn handle(&self, cmd: Withdraw) -> Result<Events<Self>, Refused> {
        if !self.open {
            return Err(Refused::NotOpen);
        }
        if cmd.amount > self.balance {
            return Err(Refused::Insufficient { balance: self.balance, requested: cmd.amount });
        }
        Ok(Events::one(Withdrawn { amount: cmd.amount }))
    }
}

impl Apply<Opened> for Account {
    fn apply(&mut self, _: &Opened) {
        self.open = true;
    }
}

impl Apply<Deposited> for Account {
    fn apply(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }
}

impl Apply<Withdrawn> for Account {
    fn apply(&mut self, e: &Withdrawn) {
        self.balance -= e.amount;
    }
}

async fn node<S: EventStore + Clone>(store: &S, path: CommandPath) -> Es {
    Es::builder()
        .event_store(store.clone())
        .command_path(path)
        .build()
        .await
        .expect("conformance: building an Es")
}

fn deposit(id: &str, amount: u64) -> Deposit {
    Deposit { id: id.into(), amount }
}

fn withdraw(id: &str, amount: u64) -> Withdraw {
    Withdraw { id: id.into(), amount }
}

/// A node whose actor holds a stale state does not refuse a command that
/// the current state allows: the refusal is confirmed against the stream's
/// head, found stale, and decided again. A refusal the current state
/// supports stays a refusal.
pub async fn a_stale_actor_does_not_refuse_what_the_store_allows<S: EventStore + Clone>(store: S) {
    let (a, b) = (node(&store, CommandPath::Actors).await, node(&store, CommandPath::Actors).await);
    a.execute(Open { id: "x".into() }).await.expect("opening");
    b.execute(deposit("x", 9)).await.expect("b warms its actor at 9");
    a.execute(deposit("x", 30)).await.expect("a deposits 30 behind b's back");
    let outcome = b.execute(withdraw("x", 35)).await;
    assert!(outcome.is_ok(), "b must decide on the stored balance (39), not its stale 9: {outcome:?}");
    assert_eq!(b.load::<Account>("x").await.expect("loading").balance, 4);
    match b.execute(withdraw("x", 5)).await {
        Err(ExecuteError::Rejected(Refused::Insufficient { balance: 4, requested: 5 })) => {}
        other => panic!("a refusal the stored state supports must stay a refusal, got {other:?}"),
    }
    a.execute(deposit("x", 1)).await.expect("a deposits 1");
    assert!(b.execute(withdraw("x", 5)).await.is_ok(), "after a's deposit of 1 the balance is 5");
    assert!(b.stats().stale_decisions >= 1, "the stale refusal was counted");
}

/// Four nodes hammering one aggregate with alternating deposits and
/// withdrawals lose no command and fail none: conflicts are retried with
/// jittered backoff until they succeed.
pub async fn nodes_hammering_one_aggregate_lose_no_command<S: EventStore + Clone>(store: S) {
    let first = node(&store, CommandPath::Actors).await;
    first.execute(Open { id: "hot".into() }).await.expect("opening");
    let mut tasks = Vec::new();
    for n in 0..4 {
        let es = if n == 0 { first.clone() } else { node(&store, CommandPath::Actors).await };
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_NODE {
                let result = if i % 2 == 0 {
                    es.execute(deposit("hot", 2)).await.map(drop)
                } else {
                    es.execute(withdraw("hot", 1)).await.map(drop)
                };
                if let Err(error) = result {
                    panic!("node {n}, command {i} failed: {error}");
                }
            }
            es.stats()
        }));
    }
    let mut conflicts = 0;
    for task in tasks {
        conflicts += join(task).await.conflicts;
    }
    let account = first.load::<Account>("hot").await.expect("loading");
    assert_eq!(account.balance, u64::from(PER_NODE) * 2, "every command applied exactly once");
    let version =
        store.stream_version(&crate::StreamId::for_aggregate("nodes_account", "hot")).await.expect("version");
    assert_eq!(version, Some(StreamVersion(1 + 4 * u64::from(PER_NODE))));
    tracing::info!(conflicts, "four nodes on one aggregate");
}

/// A node that is also busy with many other aggregates still gets its
/// commands on a shared aggregate through while another node competes for
/// it: backoff spreads the retries, nobody starves.
pub async fn a_busy_node_still_gets_its_commands_through<S: EventStore + Clone>(store: S) {
    let (busy, quiet) = (node(&store, CommandPath::Actors).await, node(&store, CommandPath::Actors).await);
    busy.execute(Open { id: "shared".into() }).await.expect("opening");
    let per_node = PER_NODE / 4;
    let mut background = Vec::new();
    for n in 0..32 {
        let es = busy.clone();
        background.push(tokio::spawn(async move {
            let id = format!("other-{n}");
            es.execute(Open { id: id.clone() }).await.expect("opening another");
            for _ in 0..per_node / 4 {
                es.execute(deposit(&id, 1)).await.expect("a deposit elsewhere");
            }
        }));
    }
    let contenders = [busy.clone(), quiet.clone()].map(|es| {
        tokio::spawn(async move {
            for i in 0..per_node {
                if let Err(error) = es.execute(deposit("shared", 1)).await {
                    panic!("command {i} on the shared aggregate failed: {error}");
                }
            }
        })
    });
    for task in contenders {
        join(task).await;
    }
    for task in background {
        join(task).await;
    }
    assert_eq!(busy.load::<Account>("shared").await.expect("loading").balance, u64::from(per_node) * 2);
}

/// Within one process, the reload path queues the commands of one
/// aggregate: many concurrent deposits, no conflict.
pub async fn the_reload_path_queues_commands_of_one_aggregate<S: EventStore + Clone>(store: S) {
    let es = node(&store, CommandPath::Reload).await;
    es.execute(Open { id: "r".into() }).await.expect("opening");
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let es = es.clone();
            tokio::spawn(async move { es.execute(deposit("r", 1)).await.map(drop) })
        })
        .collect();
    for task in tasks {
        join(task).await.expect("a queued deposit");
    }
    assert_eq!(es.load::<Account>("r").await.expect("loading").balance, 40);
    assert_eq!(es.stats().conflicts, 0, "commands of one process never race each other");
}

/// A command id executed again (after an unknown outcome, say) returns the
/// original outcome and stores nothing, on both command paths and on
/// another node, also after other commands changed the aggregate and when
/// deciding again would now be refused.
pub async fn a_command_id_executed_again_returns_its_original_outcome<S: EventStore + Clone>(store: S) {
    for path in [CommandPath::Actors, CommandPath::Reload] {
        let id = format!("again-{path:?}");
        let (a, b) = (node(&store, path).await, node(&store, path).await);
        a.execute(Open { id: id.clone() }).await.expect("opening");
        a.execute(deposit(&id, 10)).await.expect("depositing");
        let command = CommandId::new();
        let first = a.execute(withdraw(&id, 10)).id(command).await.expect("withdrawing");
        let again =
            a.execute(withdraw(&id, 10)).id(command).await.expect("the same command id on the same node");
        assert_eq!(again.committed, first.committed, "{path:?}: the original placement");
        assert_eq!(again.events, first.events, "{path:?}: the original events");
        let elsewhere =
            b.execute(withdraw(&id, 10)).id(command).await.expect("the same command id on another node");
        assert_eq!(elsewhere.committed, first.committed, "{path:?}: another node answers the same");
        b.execute(deposit(&id, 3)).await.expect("a later deposit");
        let late =
            a.execute(withdraw(&id, 10)).id(command).await.expect("the same id after the aggregate moved on");
        assert_eq!(late.committed, first.committed, "{path:?}: still the original outcome");
        assert_eq!(a.load::<Account>(&id).await.expect("loading").balance, 3, "{path:?}: withdrawn once");
    }
}

/// Events carry the command id as causation and, when the caller gave no
/// correlation id, as correlation too.
pub async fn events_are_caused_by_their_command<S: EventStore + Clone>(store: S) {
    let es = node(&store, CommandPath::Actors).await;
    let opened = es.execute(Open { id: "c".into() }).await.expect("opening");
    let stream = crate::StreamId::for_aggregate("nodes_account", "c");
    let stored = store
        .read_stream(&stream, StreamVersion::FIRST, crate::store::Direction::Forward, 10)
        .await
        .expect("reading");
    let command = Some(opened.command_id.as_uuid());
    assert_eq!(stored[0].metadata.causation_id, command);
    assert_eq!(stored[0].metadata.correlation_id, command);
    let chain = uuid::Uuid::now_v7();
    let deposited = es
        .execute(deposit("c", 1))
        .metadata(crate::Metadata::new().with_correlation_id(chain))
        .await
        .expect("depositing");
    let stored = store.events_by_id(&[deposited.committed[0].event_id]).await.expect("reading by id");
    assert_eq!(stored[0].metadata.correlation_id, Some(chain));
    assert_eq!(stored[0].metadata.causation_id, Some(deposited.command_id.as_uuid()));
}
