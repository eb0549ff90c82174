//! The bank's projections and welcome mail run by the read-side test kit
//! over given events: the summary and history documents, the outbox, and
//! on Postgres the `account_summaries` table, read with plain SQL.

// Helpers outside `#[test]` fns: a failed expectation must panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bank::{
    Account, AccountClosed, AccountEvent, AccountOpened, AccountSummary, AccountVerified, HistoryEntry,
    MoneyDeposited, MoneyWithdrawn, Outbox, SummaryTable, TransactionHistory, TransactionKind,
    ACCOUNT_SUMMARY, TRANSACTION_HISTORY,
};
use es_core::store::ProjectionStore;
use es_core::testkit::ReadSideTest;
use es_memory::{InMemoryEventStore, InMemoryProjectionStore};
use es_postgres::{PgEventStore, PgProjectionStore, PgSchema};

fn opened(id: &str, owner: &str) -> AccountEvent {
    AccountOpened {
        account_id: id.into(),
        owner: owner.into(),
        account_number: format!("{id}-number"),
        verification_code: "123456".into(),
    }
    .into()
}

/// Ada: opened, verified, 100.00 in, 30.00 out. Bob: opened, closed.
fn history() -> Vec<(&'static str, Vec<AccountEvent>)> {
    vec![
        (
            "ada",
            vec![
                opened("ada", "Ada Lovelace"),
                AccountVerified {}.into(),
                MoneyDeposited { amount: 10_000 }.into(),
                MoneyWithdrawn { amount: 3_000, reference: Some("rent".into()) }.into(),
            ],
        ),
        ("bob", vec![opened("bob", "Bob"), AccountClosed {}.into()]),
    ]
}

fn expected() -> [AccountSummary; 2] {
    [
        AccountSummary {
            account_id: "ada".into(),
            owner: "Ada Lovelace".into(),
            account_number: "ada-number".into(),
            balance: 7_000,
            verified: true,
            closed: false,
            transactions: 2,
        },
        AccountSummary {
            account_id: "bob".into(),
            owner: "Bob".into(),
            account_number: "bob-number".into(),
            balance: 0,
            verified: false,
            closed: true,
            transactions: 0,
        },
    ]
}

#[tokio::test]
async fn the_summary_and_history_documents_fold_the_account_events() {
    let mut test = ReadSideTest::new(InMemoryEventStore::new(), InMemoryProjectionStore::new())
        .registered(ACCOUNT_SUMMARY)
        .registered(TRANSACTION_HISTORY);
    for (id, events) in history() {
        test.given::<Account>(id, events).await;
    }
    test.settle().await;

    let summaries = test.documents::<AccountSummary>(ACCOUNT_SUMMARY);
    let all: Vec<AccountSummary> = summaries.list().await.unwrap().into_iter().map(|(_, s)| s).collect();
    assert_eq!(all, expected());
    let closed = summaries.containing(&serde_json::json!({ "closed": true })).await.unwrap();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].0, "bob");

    let entries = test.documents::<HistoryEntry>(TRANSACTION_HISTORY);
    let ada = TransactionHistory::load(&entries, "ada").await.unwrap();
    let kinds: Vec<_> = ada.transactions.iter().map(|t| (t.kind, t.amount)).collect();
    assert_eq!(kinds, [(TransactionKind::Deposit, 10_000), (TransactionKind::Withdrawal, 3_000)]);
    assert_eq!(ada.transactions[1].reference.as_deref(), Some("rent"));
    test.finish().await;
}

#[tokio::test]
async fn the_welcome_mail_goes_to_the_outbox_it_is_given() {
    let documents: Arc<dyn ProjectionStore> = Arc::new(InMemoryProjectionStore::new());
    let outbox = Outbox::new(Arc::clone(&documents));
    let mut test = ReadSideTest::new(InMemoryEventStore::new(), documents)
        .registered("welcome-mail")
        .state(outbox.clone());
    for (id, events) in history() {
        test.given::<Account>(id, events).await;
    }
    test.settle().await;
    let mails = outbox.mails().await.unwrap();
    let mut to: Vec<_> = mails.iter().map(|mail| (mail.to.as_str(), mail.account_id.as_str())).collect();
    to.sort_unstable();
    assert_eq!(to, [("Ada Lovelace", "ada"), ("Bob", "bob")]);
    assert!(mails.iter().all(|mail| mail.body.contains("123456")), "the code is in the mail");
    test.finish().await;
}

/// The account summaries as a Postgres table in a fresh schema, built
/// from the same events, equal to the documents and read with plain SQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_the_summary_is_a_table_of_the_banks_own() {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(&url).await.expect(
        "Postgres at DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres): run scripts/test.sh",
    );
    let schema = PgSchema::new(format!("bank_test_{}", uuid::Uuid::now_v7().simple())).unwrap();
    es_postgres::migrate(&pool, &schema).await.unwrap();
    let table = SummaryTable::new(pool.clone(), &schema);
    table.migrate().await.unwrap();
    let events = PgEventStore::with_schema(pool.clone(), schema.clone());
    let projections = PgProjectionStore::with_schema(pool.clone(), schema.clone());

    let mut test = ReadSideTest::new(events, projections).subscriber(ACCOUNT_SUMMARY, table.subscriber());
    for (id, events) in history() {
        test.given::<Account>(id, events).await;
    }
    test.settle().await;
    assert_eq!(table.all().await.unwrap(), expected());
    let row: (i64, bool, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT balance, verified, transactions FROM \"{schema}\".account_summaries WHERE account_id = 'ada'"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(row, (7_000, true, 2));

    // More events later are added to the rows, not written over them.
    test.given::<Account>("ada", [MoneyDeposited { amount: 500 }.into()]).await;
    test.settle().await;
    assert_eq!(table.get("ada").await.unwrap().map(|s| (s.balance, s.transactions)), Some((7_500, 3)));
    test.finish().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
        .execute(&pool)
        .await
        .unwrap();
}
