//! The inspector in a real headless Chromium, driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`; scripts/test.sh installs
//! them): the page shows a stream's events, a new event appears in the
//! live log after a command, a rebuild's progress reaches the end, and a
//! screenshot is kept at `target/inspector.png`.
//!
//! Without `chromedriver` the test says so and passes, unless `CI=true`,
//! where it fails.

// A failure must fail the test at once.
#![allow(clippy::expect_used)]

mod support;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::http::Method;
use bank::http::ServiceConfig;
use fantoccini::{ClientBuilder, Locator};
use serde_json::json;
use support::{memory_bank, send, verified_account};

/// chromedriver, stopped when the test ends.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `chromedriver` from `CHROMEDRIVER` or the `PATH`.
fn find_chromedriver() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMEDRIVER") {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("chromedriver"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_shows_events_live_and_a_rebuild_to_its_end_in_chromium() {
    let Some(chromedriver) = find_chromedriver() else {
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            panic!("chromedriver is missing: install Debian's chromium and chromium-driver (scripts/test.sh does)");
        }
        eprintln!("SKIPPED: no chromedriver on PATH (apt-get install chromium chromium-driver); the inspector was not tested in a browser");
        return;
    };
    let port = free_port();
    let driver = Driver(
        Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "chromedriver did not listen within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let es = memory_bank().await;
    let inspector = bank::http::inspector(es.clone()).token("t0ken");
    let app = bank::http::router(es.clone(), ServiceConfig::default().inspector(inspector));
    verified_account(&app, "ada", 12_345).await;
    verified_account(&app, "bob", 1).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a listener");
    let addr = listener.local_addr().expect("an address");
    let server = tokio::spawn(std::future::IntoFuture::into_future(axum::serve(listener, app.clone())));

    let mut capabilities = serde_json::Map::new();
    let mut chrome = json!({"args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1100"]});
    if std::path::Path::new("/usr/bin/chromium").exists() {
        chrome["binary"] = json!("/usr/bin/chromium");
    }
    capabilities.insert("goog:chromeOptions".to_owned(), chrome);
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a browser session");
    let wait = Duration::from_secs(30);

    client.goto(&format!("http://{addr}/inspector?token=t0ken")).await.expect("the page loads");
    // The stream list, then one stream's events with payload and metadata.
    let stream = client
        .wait()
        .at_most(wait)
        .for_element(Locator::Css(r#"a.stream[data-stream="account-ada"]"#))
        .await
        .expect("account-ada is listed");
    stream.click().await.expect("a click");
    client
        .wait()
        .at_most(wait)
        .for_element(Locator::Css("#events tr.event:nth-child(3)"))
        .await
        .expect("three events");
    let events = client.find(Locator::Css("#events")).await.expect("the table").text().await.expect("text");
    assert!(events.contains("AccountOpened") && events.contains("MoneyDeposited"), "{events}");
    assert!(events.contains("12345") && events.contains("causation_id"), "{events}");
    let state = client.find(Locator::Css("#state")).await.expect("the state").text().await.expect("text");
    assert!(state.contains("\"balance\": 12345"), "{state}");

    // A command, then its event in the live log.
    let deposit = send(&app, Method::POST, "/accounts/bob/deposits", Some(json!({"amount": 777})), &[]).await;
    let position = deposit.ok(200)["position"].as_u64().expect("a position");
    let live = client
        .wait()
        .at_most(wait)
        .for_element(Locator::Css(&format!(r#"#log-rows tr.log-event[data-position="{position}"]"#)))
        .await
        .expect("the new event shows up live");
    let row = live.text().await.expect("text");
    assert!(row.contains("account-bob") && row.contains("777"), "{row}");

    // A rebuild, and its progress to the end.
    client
        .find(Locator::Css(r#"tr[data-name="account-summary"] button.rebuild"#))
        .await
        .expect("a rebuild button")
        .click()
        .await
        .expect("a click");
    let deadline = std::time::Instant::now() + wait;
    loop {
        let progress = client.find(Locator::Css(r#"tr[data-name="account-summary"] .progress-text"#)).await;
        if let Ok(progress) = progress {
            if progress.text().await.is_ok_and(|t| t.trim() == "done") {
                break;
            }
        }
        assert!(std::time::Instant::now() < deadline, "the rebuild did not reach its end on the page");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let png = client.screenshot().await.expect("a screenshot");
    let path = target_dir().join("inspector.png");
    std::fs::create_dir_all(target_dir()).expect("the target directory");
    std::fs::write(&path, png).expect("the screenshot is saved");
    eprintln!("screenshot: {}", path.display());

    client.close().await.expect("the session closes");
    drop(driver);
    server.abort();
    es.shutdown().await;
}
