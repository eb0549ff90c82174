//! Many callers racing on one counter: every command of a counter goes to
//! its one live actor, which handles them one at a time, so the count is
//! exact and no command conflicts or retries.

use es_core::Es;

use crate::{Counter, Create, Increment};

/// What a racing burst left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaceReport {
    /// How many increments of 1 were sent.
    pub sent: u64,
    /// The counter's value afterwards, read from the store.
    pub value: u64,
    /// Live actors after the burst (the application had none before).
    pub live_actors: usize,
    /// Actors started during the burst.
    pub actors_started: u64,
    /// Optimistic-concurrency conflicts the commands met.
    pub conflicts: u64,
}

/// Creates counter `id`, then runs `tasks` tasks at once, each sending
/// `per_task` increments of 1 to it, and reports what the runtime saw.
///
/// # Errors
/// If a command fails or a task panics.
pub async fn race(es: &Es, id: &str, tasks: u64, per_task: u64) -> anyhow::Result<RaceReport> {
    let before = es.stats();
    es.execute(Create { counter_id: id.to_owned() }).await?;
    let mut running = Vec::new();
    for _ in 0..tasks {
        let (es, id) = (es.clone(), id.to_owned());
        running.push(tokio::spawn(async move {
            for _ in 0..per_task {
                es.execute(Increment { counter_id: id.clone(), by: 1 }).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in running {
        task.await??;
    }
    let after = es.stats();
    let counter: Counter = es.load(id).await?;
    Ok(RaceReport {
        sent: tasks * per_task,
        value: counter.value,
        live_actors: after.live_actors,
        actors_started: after.actors_started - before.actors_started,
        conflicts: after.conflicts - before.conflicts,
    })
}
