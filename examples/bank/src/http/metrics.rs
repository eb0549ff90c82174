//! `/metrics`: the Prometheus text of everything recorded through the
//! `metrics` facade (the runtime's counters, see `es_core::runtime`'s
//! stats), plus the read side's state, sampled at each scrape:
//!
//! | metric | kind | what |
//! |---|---|---|
//! | `es_subscription_lag_events` | gauge | events a subscription has read and not handled yet (a lower bound when its last read filled a batch), by `subscription`; absent while it does not run on this node |
//! | `es_subscription_lag_seconds` | gauge | age of the oldest event a subscription has not handled yet (0 when caught up) |
//! | `es_subscription_failed` | gauge | 1 while a subscription is stopped on a failing event |
//! | `es_held_back_seconds` | gauge | how long a running transaction has hidden committed events from readers (Postgres; 0 when none) |

use es_core::readside::{Backlog, SubscriptionState};
use es_core::Es;
use metrics_exporter_prometheus::PrometheusHandle;

/// Samples the read side into gauges, then renders every metric.
pub(super) async fn render(es: &Es, handle: &PrometheusHandle) -> String {
    sample_read_side(es).await;
    handle.render()
}

async fn sample_read_side(es: &Es) {
    let store = es.event_store();
    match store.read_blocker().await {
        Ok(blocker) => {
            let hiding = blocker.map_or(0.0, |b| b.hiding_for.as_secs_f64());
            metrics::gauge!("es_held_back_seconds").set(hiding);
        }
        Err(error) => tracing::warn!(%error, "cannot ask the event store what holds readers back"),
    }
    let Some(read_side) = es.read_side() else { return };
    // Statuses come from memory: sampling them never waits on the database.
    for status in read_side.statuses() {
        let name = status.name.clone();
        if let Backlog::Exactly(events) | Backlog::AtLeast(events) = status.behind {
            metrics::gauge!("es_subscription_lag_events", "subscription" => name.clone()).set(events as f64);
        }
        let failed = matches!(status.state, SubscriptionState::Failed(_));
        metrics::gauge!("es_subscription_failed", "subscription" => name.clone())
            .set(f64::from(u8::from(failed)));
        metrics::gauge!("es_subscription_lag_seconds", "subscription" => name)
            .set(status.behind_for.as_secs_f64());
    }
}
