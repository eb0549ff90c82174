//! `bank serve` as a real process on a real socket: it answers over TCP,
//! reads its writes, logs a line per request, and stops cleanly on SIGTERM.

// A failure must fail the test at once.
#![allow(clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The server process, killed if the test fails before stopping it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection; returns status and body.
fn request(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("the server accepts connections");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("a timeout");
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body.as_bytes())).expect("sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("an answer");
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|error| panic!("not JSON ({error}): {body}"))
}

#[test]
fn the_service_answers_on_a_socket_and_stops_cleanly_on_sigterm() {
    let child = Command::new(env!("CARGO_BIN_EXE_bank"))
        .args(["--memory", "serve", "--addr", "127.0.0.1:0"])
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the bank binary starts");
    let mut server = Server(child);
    let (lines, logged) = mpsc::channel();
    let stdout = server.0.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let next = || logged.recv_timeout(Duration::from_secs(60)).expect("the server logs within a minute");
    let addr = loop {
        let line = next();
        if let Some((_, rest)) = line.split_once("serving on http://") {
            break rest.split_whitespace().next().expect("an address").to_owned();
        }
    };

    let (status, body) = request(&addr, "POST", "/accounts", Some(r#"{"account_id":"ada","owner":"Ada"}"#));
    assert_eq!(status, 201, "{body}");
    let (status, body) = request(&addr, "POST", "/accounts/ada/deposits", Some(r#"{"amount":250}"#));
    assert_eq!(status, 200, "{body}");
    let position = json(&body)["position"].as_u64().expect("a position");
    let (status, body) = request(&addr, "GET", &format!("/accounts/ada?after={position}"), None);
    assert_eq!((status, json(&body)["balance"].clone()), (200, serde_json::json!(250)), "{body}");
    let (status, body) = request(&addr, "POST", "/accounts/ada/deposits", Some("{"));
    assert_eq!(status, 400, "{body}");
    assert_eq!(json(&body)["status"], 400);
    let (status, body) = request(&addr, "GET", "/metrics", None);
    assert_eq!(status, 200);
    assert!(body.contains("es_commands_total{aggregate=\"account\",outcome=\"ok\"} 2"), "{body}");
    // The read side, sampled at the scrape: caught up after the read above.
    for gauge in ["es_subscription_lag_events", "es_subscription_lag_seconds", "es_subscription_failed"] {
        let line = format!("{gauge}{{subscription=\"account-summary\"}} 0");
        assert!(body.lines().any(|l| l == line), "no `{line}` in:\n{body}");
    }
    assert!(body.lines().any(|l| l == "es_held_back_seconds 0"), "{body}");

    // One log line per request, with its method, path and status.
    let mut requests = 0;
    while requests < 5 {
        let line = next();
        if line.contains("finished processing request") {
            assert!(line.contains("status="), "{line}");
            requests += 1;
        }
    }

    let pid = server.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
    assert!(killed.success());
    let mut stopped = false;
    while let Ok(line) = logged.recv_timeout(Duration::from_secs(30)) {
        stopped |= line.contains("stopped");
    }
    assert!(stopped, "the server did not say it stopped");
    let status = server.0.wait().expect("the server exits");
    assert!(status.success(), "{status}");
}
