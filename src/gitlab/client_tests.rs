//! Client edge cases against a scripted HTTP server: `Retry-After` of 0 or of years, and a
//! token echoed across the error-message cut (each found in review, each fixed).
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::{ApiCounters, Client, ClientOptions, endpoint};

/// A tiny HTTP/1.1 server answering every request with `respond(n)` (n = 0-based request count).
fn server(respond: impl Fn(usize) -> String + Send + Sync + 'static) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let respond = Arc::new(respond);
    let c = Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (c, respond) = (Arc::clone(&c), Arc::clone(&respond));
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    // The request line and headers, up to the blank line.
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let n = c.fetch_add(1, Ordering::SeqCst);
                    if stream.write_all(respond(n).as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, count)
}

fn answer(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    )
}

fn client(url: &str) -> Client {
    Client::new(
        ClientOptions {
            base_url: url.to_owned(),
            token: None,
            concurrency: 4,
            request_timeout: Duration::from_secs(5),
            max_requests_per_second: 0.0,
            ca_certs: Vec::new(),
        },
        ApiCounters::default(),
    )
}

/// `Retry-After: 0` on every answer: the call backs off as if none was given (it once retried
/// in a tight loop, forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_zero_does_not_hammer() {
    let (url, count) = server(|_| answer("429 Too Many Requests", "Retry-After: 0\r\n", "{}"));
    let client = client(&url);
    let call = client.get::<serde_json::Value>(endpoint::PROJECTS, "/projects".to_owned(), vec![]);
    let r = tokio::time::timeout(Duration::from_secs(2), call).await;
    let n = count.load(Ordering::SeqCst);
    let _ = r;
    assert!(
        n < 20,
        "hammered GitLab with {n} requests in 2 s and never gave up"
    );
}

/// `Retry-After: 3600`: each pause is capped at 300 s, and the call gives up after 15 minutes
/// of 429s (it once counted 3600 s and gave up after one pause).
#[tokio::test(start_paused = true)]
async fn long_retry_after_is_waited_for_15_minutes() {
    let (url, count) = server(|_| answer("429 Too Many Requests", "Retry-After: 3600\r\n", "{}"));
    let client = client(&url);
    let t0 = tokio::time::Instant::now();
    let r = client
        .get::<serde_json::Value>(endpoint::PROJECTS, "/projects".to_owned(), vec![])
        .await;
    let n = count.load(Ordering::SeqCst);
    assert!(r.is_err() && n >= 2, "{n} requests");
    assert!(
        t0.elapsed() >= Duration::from_secs(900),
        "gave up after {:?}",
        t0.elapsed()
    );
}

/// A body echoing the token across the 200-character cut of error messages: the body is
/// scrubbed before the cut, so no part of the token is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_cut_by_the_message_limit_is_still_scrubbed() {
    const TOKEN: &str = "glpat-AbCdEfGhIjKlMnOpQrSt";
    let (url, _) = server(|_| {
        let body = format!(
            r#"{{"message":"{}PRIVATE-TOKEN: {TOKEN}"}}"#,
            "x".repeat(170)
        );
        answer("400 Bad Request", "", &body)
    });
    let client = Client::new(
        ClientOptions {
            base_url: url,
            token: Some(crate::redact::Secret::new(TOKEN)),
            concurrency: 1,
            request_timeout: Duration::from_secs(5),
            max_requests_per_second: 0.0,
            ca_certs: Vec::new(),
        },
        ApiCounters::default(),
    );
    let err = client
        .get::<serde_json::Value>(endpoint::PROJECTS, "/projects".to_owned(), vec![])
        .await
        .unwrap_err()
        .to_string();
    assert!(!err.contains(&TOKEN[..12]), "token prefix leaked: {err}");
}

/// A 429 without Retry-After, then one with a huge Retry-After: no `Duration` overflow (it once
/// panicked, in release builds too, failing the whole collection task).
#[tokio::test(start_paused = true)]
async fn huge_retry_after_does_not_panic() {
    let (url, _) = server(|n| match n {
        0 => answer("429 Too Many Requests", "", "{}"),
        _ => answer(
            "429 Too Many Requests",
            "Retry-After: 18446744073709551615\r\n",
            "{}",
        ),
    });
    let client = client(&url);
    let task = tokio::spawn(async move {
        client
            .get::<serde_json::Value>(endpoint::PROJECTS, "/projects".to_owned(), vec![])
            .await
            .map(|_| ())
    });
    let r = task.await;
    assert!(r.is_ok(), "the call panicked: {:?}", r.err());
}
