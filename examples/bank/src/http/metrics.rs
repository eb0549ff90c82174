//! `/metrics`: the Prometheus text of everything recorded through the
//! `metrics` facade (the runtime's counters, see `es_core::runtime`'s
//! stats), plus the read side's state, sampled at each scrape:
//!
//! | metric | kind | what |
//! |---|---|---|
//! | `es_subscription_lag_events` | gauge | positions between a subscription and the head (an upper bound on events), by `subscription` |
//! | `es_subscription_lag_seconds` | gauge | age of the oldest event a subscription has not handled yet (0 when caught up) |
//! | `es_subscription_failed` | gauge | 1 while a subscription is stopped on a failing event |
//! | `es_held_back_seconds` | gauge | how long a running transaction has hidden committed events from readers (Postgres; 0 when none) |

use std::time::SystemTime;

use es_core::readside::SubscriptionState;
use es_core::store::EventStore;
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
    let statuses = match read_side.statuses().await {
        Ok(statuses) => statuses,
        Err(error) => {
            tracing::warn!(%error, "cannot read the subscriptions' status for /metrics");
            return;
        }
    };
    for status in statuses {
        let name = status.name.clone();
        metrics::gauge!("es_subscription_lag_events", "subscription" => name.clone()).set(status.lag as f64);
        let failed = matches!(status.state, SubscriptionState::Failed(_));
        metrics::gauge!("es_subscription_failed", "subscription" => name.clone())
            .set(f64::from(u8::from(failed)));
        let seconds = if status.lag == 0 {
            Ok(0.0)
        } else {
            oldest_unhandled_age(store.as_ref(), status.position).await
        };
        match seconds {
            Ok(seconds) => {
                metrics::gauge!("es_subscription_lag_seconds", "subscription" => name).set(seconds)
            }
            Err(error) => {
                tracing::warn!(subscription = %name, %error, "cannot read the oldest unhandled event")
            }
        }
    }
}

/// Seconds since the first event after `position` was recorded (0 if none).
async fn oldest_unhandled_age(
    store: &dyn EventStore,
    position: es_core::GlobalPosition,
) -> Result<f64, es_core::error::StoreError> {
    let next = store.read_all(position, 1).await?;
    Ok(next.first().map_or(0.0, |event| {
        SystemTime::now().duration_since(event.recorded_at.to_system_time()).unwrap_or_default().as_secs_f64()
    }))
}
