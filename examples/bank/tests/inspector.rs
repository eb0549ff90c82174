//! The inspector mounted in the bank service, through its JSON endpoints:
//! streams, events, time travel, the log, subscriptions and a rebuild, and
//! the token guard.

mod support;

use std::time::Duration;

use axum::http::Method;
use bank::http::ServiceConfig;
use bank::{AccountSummaries, TransactionHistories, TransferProcess};
use serde_json::json;
use support::{memory_bank, send, verified_account};

#[tokio::test]
async fn the_inspector_lists_streams_events_states_and_subscriptions() {
    let es = memory_bank().await;
    let app =
        bank::http::router(es.clone(), ServiceConfig::default().inspector(bank::http::inspector(es.clone())));
    verified_account(&app, "ada", 700).await;
    verified_account(&app, "adam", 1).await;
    verified_account(&app, "bob", 1).await;

    let page = send(&app, Method::GET, "/inspector", None, &[]).await;
    assert!(page.ok(200).as_str().is_some_and(|html| html.contains("es inspector")), "{page:?}");
    let streams = send(&app, Method::GET, "/inspector/api/streams?prefix=account-ada", None, &[]).await;
    assert_eq!(
        streams.ok(200),
        &json!([{"stream_id": "account-ada", "version": 3}, {"stream_id": "account-adam", "version": 3}])
    );
    let events = send(&app, Method::GET, "/inspector/api/streams/account-ada/events", None, &[]).await;
    let events = events.ok(200).as_array().expect("events").clone();
    assert_eq!(events.len(), 3);
    assert_eq!(events[2]["payload"], json!({"amount": 700}));
    let then = send(&app, Method::GET, "/inspector/api/streams/account-ada/state?version=2", None, &[]).await;
    let then = then.ok(200);
    assert_eq!((then["version"].clone(), then["head"].clone()), (json!(2), json!(3)));
    assert_eq!(
        (then["state"]["verified"].clone(), then["state"]["balance"].clone()),
        (json!(true), json!(0))
    );
    let unregistered = send(&app, Method::GET, "/inspector/api/streams/mail-1/state", None, &[]).await;
    assert_eq!(unregistered.status.as_u16(), 404);
    let tail = send(&app, Method::GET, "/inspector/api/log/tail?count=2", None, &[]).await;
    let tail = tail.ok(200).as_array().expect("events").clone();
    assert_eq!(tail.len(), 2);
    assert_eq!(tail[1]["stream_id"], "account-bob");

    let head = es.event_store().head_position().await.expect("a head").get();
    let subscriptions = send(&app, Method::GET, "/inspector/api/subscriptions", None, &[]).await;
    let names: Vec<_> =
        subscriptions.ok(200).as_array().expect("a list").iter().map(|s| s["name"].clone()).collect();
    assert_eq!(
        names,
        [
            json!(AccountSummaries::NAME),
            json!(TransactionHistories::NAME),
            json!(TransferProcess::NAME),
            json!("welcome-mail")
        ]
    );

    let rebuild =
        send(&app, Method::POST, "/inspector/api/subscriptions/account-summary/rebuild", None, &[]).await;
    assert_eq!(rebuild.ok(200)["target"], head);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let all = send(&app, Method::GET, "/inspector/api/subscriptions", None, &[]).await;
        let summary = all.ok(200)[0].clone();
        if summary["rebuild"]["done"] == true {
            assert_eq!(summary["position"], head);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the rebuild did not finish: {summary}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let summary = send(&app, Method::GET, &format!("/accounts/ada?after={head}"), None, &[]).await;
    assert_eq!(summary.ok(200)["balance"], 700, "rebuilt from the events");

    let stopped = send(&app, Method::POST, "/inspector/api/subscriptions/welcome-mail/stop", None, &[]).await;
    assert_eq!(stopped.ok(200)["state"], "Stopped");
    let started =
        send(&app, Method::POST, "/inspector/api/subscriptions/welcome-mail/start", None, &[]).await;
    assert_ne!(started.ok(200)["state"], "Stopped");
    let unknown = send(&app, Method::POST, "/inspector/api/subscriptions/nope/rebuild", None, &[]).await;
    assert_eq!(unknown.status.as_u16(), 404);
    es.shutdown().await;
}

#[tokio::test]
async fn a_guarded_inspector_answers_only_with_its_token() {
    let es = memory_bank().await;
    let inspector = bank::http::inspector(es.clone()).token("s3cret");
    let app = bank::http::router(es.clone(), ServiceConfig::default().inspector(inspector));
    let without = send(&app, Method::GET, "/inspector/api/subscriptions", None, &[]).await;
    assert_eq!(without.status.as_u16(), 401);
    let wrong = send(&app, Method::GET, "/inspector", None, &[("Authorization", "Bearer nope")]).await;
    assert_eq!(wrong.status.as_u16(), 401);
    let bearer =
        send(&app, Method::GET, "/inspector/api/subscriptions", None, &[("Authorization", "Bearer s3cret")])
            .await;
    bearer.ok(200);
    let queried = send(&app, Method::GET, "/inspector?token=s3cret", None, &[]).await;
    queried.ok(200);
    let unmounted = send(&support::router(&es), Method::GET, "/inspector", None, &[]).await;
    assert_eq!(unmounted.status.as_u16(), 404, "off unless mounted");
    es.shutdown().await;
}

#[tokio::test]
async fn a_malformed_inspector_query_is_a_problem_document_naming_the_parameter() {
    let es = memory_bank().await;
    let app =
        bank::http::router(es.clone(), ServiceConfig::default().inspector(bank::http::inspector(es.clone())));
    for uri in [
        "/inspector/api/streams?limit=many",
        "/inspector/api/log?after=-1",
        "/inspector/api/log/tail?count=x",
    ] {
        let answer = send(&app, Method::GET, uri, None, &[]).await;
        assert_eq!(answer.status.as_u16(), 400, "{uri}: {answer:?}");
        assert_eq!(answer.content_type, "application/problem+json", "{uri}: {answer:?}");
        let detail = answer.body["detail"].as_str().unwrap_or_default();
        let parameter = uri.split(['?', '=']).nth(1).unwrap_or_default();
        assert!(detail.contains(parameter), "{uri}: the detail names `{parameter}`: {detail}");
    }
    es.shutdown().await;
}
