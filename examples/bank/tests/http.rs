//! The HTTP API in process (`tower::ServiceExt::oneshot`): every endpoint's
//! success and error statuses, read your writes, idempotency keys.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use es_core::store::ProjectionStore;
use es_core::testkit::TestStore;
use es_core::{Es, ReadSide};
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
use serde_json::json;
use support::{memory_bank, router, send, send_raw, verified_account};

#[tokio::test]
async fn an_account_is_opened_verified_credited_debited_and_closed() {
    let es = memory_bank().await;
    let app = router(&es);
    let opened =
        send(&app, Method::POST, "/accounts", Some(json!({"account_id": "ada", "owner": "Ada"})), &[]).await;
    let opened = opened.ok(201);
    assert_eq!(opened["aggregate_id"], "ada");
    assert_eq!(opened["version"], 1);
    assert_eq!(opened["events"], json!(["AccountOpened"]));
    assert!(opened["position"].as_u64().is_some(), "{opened}");

    let again =
        send(&app, Method::POST, "/accounts", Some(json!({"account_id": "ada", "owner": "Eve"})), &[]).await;
    assert_eq!(again.problem(409)["reason"], "already_open");

    let wrong =
        send(&app, Method::POST, "/accounts/ada/verification", Some(json!({"code": "nope"})), &[]).await;
    assert_eq!(wrong.problem(409)["reason"], "wrong_verification_code");
    let early = json!({"amount": 1});
    let refused = send(&app, Method::POST, "/accounts/ada/withdrawals", Some(early), &[]).await;
    assert_eq!(refused.problem(409)["reason"], "not_verified");

    verified_account(&app, "bob", 10_000).await;
    let too_much = json!({"amount": 50_000, "reference": "car"});
    let refused = send(&app, Method::POST, "/accounts/bob/withdrawals", Some(too_much), &[]).await;
    let problem = refused.problem(409);
    assert_eq!(problem["reason"], "insufficient_funds");
    assert!(problem["detail"].as_str().is_some_and(|d| d.contains("balance 10000")), "{problem}");
    let withdrawn = send(
        &app,
        Method::POST,
        "/accounts/bob/withdrawals",
        Some(json!({"amount": 10_000, "reference": "rent"})),
        &[],
    )
    .await;
    assert_eq!(withdrawn.ok(200)["events"], json!(["MoneyWithdrawn"]));
    let closed = send(&app, Method::POST, "/accounts/bob/closure", None, &[]).await;
    assert_eq!(closed.ok(200)["events"], json!(["AccountClosed"]));
    let after_close =
        send(&app, Method::POST, "/accounts/bob/deposits", Some(json!({"amount": 5})), &[]).await;
    assert_eq!(after_close.problem(409)["reason"], "closed");
    es.shutdown().await;
}

#[tokio::test]
async fn a_query_given_a_commands_position_reads_that_write() {
    let es = memory_bank().await;
    let app = router(&es);
    let mut position = verified_account(&app, "ada", 1_000).await;
    for amount in 1..=20 {
        let deposit =
            send(&app, Method::POST, "/accounts/ada/deposits", Some(json!({"amount": amount})), &[]).await;
        position = deposit.ok(200)["position"].as_u64().expect("a position");
        // Every write is seen by the read that names its position.
        let summary = send(&app, Method::GET, &format!("/accounts/ada?after={position}"), None, &[]).await;
        let expected: u64 = 1_000 + (1..=amount).sum::<u64>();
        assert_eq!(summary.ok(200)["balance"], expected, "after deposit {amount}");
    }
    let history =
        send(&app, Method::GET, &format!("/accounts/ada/transactions?after={position}"), None, &[]).await;
    let transactions = history.ok(200)["transactions"].as_array().expect("transactions").clone();
    assert_eq!(transactions.len(), 21);
    assert_eq!(transactions[20]["amount"], 20);
    assert_eq!(transactions[20]["kind"], "deposit");
    es.shutdown().await;
}

#[tokio::test]
async fn an_accounts_events_and_its_state_at_any_version() {
    let es = memory_bank().await;
    let app = router(&es);
    verified_account(&app, "ada", 500).await;
    let events = send(&app, Method::GET, "/accounts/ada/events", None, &[]).await;
    let events = events.ok(200).as_array().expect("a list").clone();
    let types: Vec<_> = events.iter().map(|e| e["event_type"].as_str().unwrap_or_default()).collect();
    assert_eq!(types, ["AccountOpened", "AccountVerified", "MoneyDeposited"]);
    assert_eq!(events[2]["payload"], json!({"amount": 500}));
    assert!(events[2]["metadata"]["causation_id"].is_string(), "{}", events[2]);
    let page = send(&app, Method::GET, "/accounts/ada/events?from=2&limit=1", None, &[]).await;
    assert_eq!(page.ok(200).as_array().map(|p| p[0]["version"].clone()), Some(json!(2)));

    let then = send(&app, Method::GET, "/accounts/ada/state?version=1", None, &[]).await;
    let then = then.ok(200);
    assert_eq!((then["version"].clone(), then["state"]["verified"].clone()), (json!(1), json!(false)));
    let now = send(&app, Method::GET, "/accounts/ada/state", None, &[]).await;
    assert_eq!(now.ok(200)["state"]["balance"], 500);

    for (uri, field) in [
        ("/accounts/ada/state?version=0", "version"),
        ("/accounts/ada/events?from=0", "from"),
        ("/accounts/ada/events?limit=0", "limit"),
        ("/accounts/ada/events?limit=100000", "limit"),
    ] {
        let invalid = send(&app, Method::GET, uri, None, &[]).await;
        assert_eq!(invalid.problem(422)["errors"][0]["field"], field, "{uri}");
    }
    es.shutdown().await;
}

#[tokio::test]
async fn a_transfer_moves_money_and_reports_where_it_stands() {
    let es = memory_bank().await;
    let app = router(&es);
    verified_account(&app, "ada", 10_000).await;
    let opened = json!({"account_id": "bob", "owner": "Bob"});
    send(&app, Method::POST, "/accounts", Some(opened), &[]).await.ok(201);
    let transfer = json!({"transfer_id": "t1", "from": "ada", "to": "bob", "amount": 2_500});
    let started = send(&app, Method::POST, "/transfers", Some(transfer.clone()), &[]).await;
    let position = started.ok(201)["position"].as_u64().expect("a position");
    let status = send(&app, Method::GET, "/transfers/t1", None, &[]).await;
    assert_eq!(status.ok(200)["state"]["status"], "Completed");
    let head = es.event_store().head_position().await.expect("a head").get();
    let bob = send(&app, Method::GET, &format!("/accounts/bob?after={head}"), None, &[]).await;
    assert_eq!(bob.ok(200)["balance"], 2_500, "position {position}, head {head}");

    let reused = send(&app, Method::POST, "/transfers", Some(transfer), &[]).await;
    assert_eq!(reused.problem(409)["reason"], "already_started");
    let same = json!({"transfer_id": "t2", "from": "ada", "to": "ada", "amount": 1});
    let same = send(&app, Method::POST, "/transfers", Some(same), &[]).await;
    assert_eq!(same.problem(422)["errors"][0]["field"], "to");
    let to_nobody = json!({"transfer_id": "t3", "from": "ada", "to": "nobody", "amount": 100});
    send(&app, Method::POST, "/transfers", Some(to_nobody), &[]).await.ok(201);
    let refunded = send(&app, Method::GET, "/transfers/t3", None, &[]).await;
    let refunded = refunded.ok(200);
    assert_eq!(refunded["state"]["status"], "Refunded");
    assert_eq!(refunded["state"]["reason"], "account does not exist");
    let unknown = send(&app, Method::GET, "/transfers/t404", None, &[]).await;
    unknown.problem(404);
    es.shutdown().await;
}

#[tokio::test]
async fn an_unknown_account_is_a_404_on_every_endpoint() {
    let es = memory_bank().await;
    let app = router(&es);
    for (method, uri, body) in [
        (Method::GET, "/accounts/ghost", None),
        (Method::GET, "/accounts/ghost/transactions", None),
        (Method::GET, "/accounts/ghost/events", None),
        (Method::GET, "/accounts/ghost/state", None),
        (Method::POST, "/accounts/ghost/deposits", Some(json!({"amount": 1}))),
        (Method::POST, "/accounts/ghost/withdrawals", Some(json!({"amount": 1}))),
        (Method::POST, "/accounts/ghost/verification", Some(json!({"code": "1"}))),
        (Method::POST, "/accounts/ghost/closure", None),
        (Method::GET, "/nowhere", None),
    ] {
        let answer = send(&app, method.clone(), uri, body, &[]).await;
        answer.problem(404);
    }
    let wrong_method = send(&app, Method::DELETE, "/accounts/ghost", None, &[]).await;
    wrong_method.problem(405);
    es.shutdown().await;
}

#[tokio::test]
async fn a_malformed_request_is_a_400_that_says_what_is_wrong_and_a_broken_rule_a_422_naming_the_field() {
    let es = memory_bank().await;
    let app = router(&es);
    verified_account(&app, "ada", 100).await;
    let cases = [
        ("/accounts", Some("not json"), "parse the request body as JSON"),
        ("/accounts", Some(r#"{"account_id": "x"}"#), "owner"),
        ("/accounts/ada/deposits", Some(r#"{"amount": "ten"}"#), "amount"),
        ("/accounts/ada/deposits", Some(r#"{"amount": -5}"#), "amount"),
        ("/accounts/ada/deposits", Some("[]"), "DepositRequest"),
        ("/accounts/ada/deposits", None, "Content-Type"),
    ];
    for (uri, raw, says) in cases {
        let answer = send_raw(&app, Method::POST, uri, raw, &[]).await;
        let detail = answer.problem(400)["detail"].as_str().unwrap_or_default().to_owned();
        assert!(detail.contains(says), "{uri} {raw:?}: {detail}");
    }
    let bad_query = send(&app, Method::GET, "/accounts/ada?after=soon", None, &[]).await;
    bad_query.problem(400);

    let zero = send(&app, Method::POST, "/accounts/ada/deposits", Some(json!({"amount": 0})), &[]).await;
    assert_eq!(zero.problem(422)["errors"][0]["field"], "amount");
    let long = "x".repeat(141);
    let withdraw = json!({"amount": 1, "reference": long});
    let long = send(&app, Method::POST, "/accounts/ada/withdrawals", Some(withdraw), &[]).await;
    assert_eq!(long.problem(422)["errors"][0]["field"], "reference");
    let empty =
        send(&app, Method::POST, "/accounts", Some(json!({"account_id": "", "owner": "A"})), &[]).await;
    assert_eq!(empty.problem(422)["errors"][0]["field"], "account_id");
    let control = send(&app, Method::GET, "/accounts/a%00b", None, &[]).await;
    assert_eq!(control.problem(422)["errors"][0]["field"], "account_id");
    let huge_owner = json!({"account_id": "big", "owner": "o".repeat(2 << 20)});
    let huge = send(&app, Method::POST, "/accounts", Some(huge_owner), &[]).await;
    assert!(huge.status.is_client_error(), "{huge:?}");
    let past_head = send(&app, Method::GET, "/accounts/ada?after=999999", None, &[]).await;
    assert_eq!(past_head.problem(422)["errors"][0]["field"], "after");
    es.shutdown().await;
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_first_outcome_and_stores_once() {
    let es = memory_bank().await;
    let app = router(&es);
    verified_account(&app, "ada", 100).await;
    let key = uuid::Uuid::now_v7().to_string();
    let headers = [("Idempotency-Key", key.as_str())];
    let first =
        send(&app, Method::POST, "/accounts/ada/deposits", Some(json!({"amount": 40})), &headers).await;
    let first = first.ok(200).clone();
    assert_eq!(first["command_id"], key);
    let again =
        send(&app, Method::POST, "/accounts/ada/deposits", Some(json!({"amount": 40})), &headers).await;
    assert_eq!(again.ok(200), &first, "the first outcome, position and all");
    let position = first["position"].as_u64().expect("a position");
    let summary = send(&app, Method::GET, &format!("/accounts/ada?after={position}"), None, &[]).await;
    assert_eq!(summary.ok(200)["balance"], 140, "deposited once");

    verified_account(&app, "bob", 1).await;
    let elsewhere =
        send(&app, Method::POST, "/accounts/bob/deposits", Some(json!({"amount": 40})), &headers).await;
    let problem = elsewhere.problem(409);
    assert!(problem["type"].as_str().is_some_and(|t| t.ends_with("idempotency-key-reused")), "{problem}");
    assert_eq!(problem["stored"], false);
    let not_uuid = send(
        &app,
        Method::POST,
        "/accounts/ada/deposits",
        Some(json!({"amount": 1})),
        &[("Idempotency-Key", "abc")],
    )
    .await;
    not_uuid.problem(400);
    es.shutdown().await;
}

#[tokio::test]
async fn the_openapi_document_lists_every_endpoint() {
    let es = memory_bank().await;
    let app = router(&es);
    let document = send(&app, Method::GET, "/openapi.json", None, &[]).await;
    let paths = document.ok(200)["paths"].as_object().expect("paths").clone();
    let mut listed: Vec<_> = paths.keys().cloned().collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            "/accounts",
            "/accounts/{account_id}",
            "/accounts/{account_id}/closure",
            "/accounts/{account_id}/deposits",
            "/accounts/{account_id}/events",
            "/accounts/{account_id}/state",
            "/accounts/{account_id}/transactions",
            "/accounts/{account_id}/verification",
            "/accounts/{account_id}/withdrawals",
            "/transfers",
            "/transfers/{transfer_id}",
        ]
    );
    es.shutdown().await;
}

#[tokio::test]
async fn store_trouble_is_a_503_that_says_nothing_was_stored() {
    let store = TestStore::new(InMemoryEventStore::new());
    let documents: Arc<dyn ProjectionStore> = Arc::new(InMemoryProjectionStore::new());
    let es = Es::builder()
        .event_store(store.clone())
        .projection_store(Arc::clone(&documents))
        .read_side(ReadSide::builder().state(bank::Outbox::new(documents)))
        .build()
        .await
        .expect("the bank starts");
    let app = bank::http::router(
        es.clone(),
        bank::http::ServiceConfig::default().command_timeout(Duration::from_secs(5)),
    );
    verified_account(&app, "ada", 100).await;
    store.outage(true);
    let deposit = send(&app, Method::POST, "/accounts/ada/deposits", Some(json!({"amount": 1})), &[]).await;
    assert_eq!(deposit.problem(503)["stored"], false);
    let opened =
        send(&app, Method::POST, "/accounts", Some(json!({"account_id": "new", "owner": "N"})), &[]).await;
    opened.problem(503);
    for uri in ["/accounts/ada/events", "/accounts/ada/state", "/accounts/ada?after=1"] {
        let answer = send(&app, Method::GET, uri, None, &[]).await;
        answer.problem(503);
    }
    store.outage(false);
    let back = send(&app, Method::POST, "/accounts/ada/deposits", Some(json!({"amount": 1})), &[]).await;
    back.ok(200);
    es.shutdown().await;
}
