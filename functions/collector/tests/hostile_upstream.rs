//! A hostile upstream, through the collector's real HTTP adapter and walk: a redirect to
//! another listener (the token must not arrive there), one to the same host under another
//! scheme, a redirect loop, a slow one, a same-host redirect (followed, the token attached
//! again, for header and query auth), a 1 GB body served fast (a counted failure the
//! breaker sees, and memory stays bounded), a `Content-Length` larger than any cap, a
//! `Content-Length` lie, and a body dripped slowly past the timeout.
//!
//! One test in its own binary, so the process's peak memory is this test's.

use collector::adapters::memory::{MemoryHostState, MemorySecrets, MemorySink};
use collector::breaker::BreakerStore;
use collector::{Collector, HttpUpstreams};
use pricewire_pipeline::adapters::memory::MemoryArchive;
use pricewire_pipeline::backoff::RetryPolicy;
use pricewire_pipeline::job::Job;
use pricewire_pipeline::sources::settings::Sources;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "tok-secret-123";
const GIB: usize = 1 << 30;

/// The requests a listener received: (path, the request head).
type Seen = Arc<Mutex<Vec<(String, String)>>>;

async fn head(socket: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") && buf.len() < 16 * 1024 {
        match socket.read(&mut byte).await {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A listener that answers by the request path's first segment; every request is kept.
async fn hostile(other: String) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let own = base.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let other = other.clone();
            let own = own.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let head = head(&mut socket).await;
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                log.lock().unwrap().push((path.clone(), head.clone()));
                let ok_body = json!({"success": true, "data": [
                    {"price": 4830, "departure_at": "2026-12-05", "airline": "SU", "flight_number": 1}]})
                .to_string();
                let segment = path
                    .trim_start_matches('/')
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .to_string();
                match segment.as_str() {
                    "away" => {
                        let _ = socket
                            .write_all(format!("HTTP/1.1 302 Found\r\nlocation: {other}/steal\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes())
                            .await;
                    }
                    "scheme" => {
                        // Same host and port, another scheme.
                        let to = own.replace("http://", "https://");
                        let _ = socket
                            .write_all(format!("HTTP/1.1 302 Found\r\nlocation: {to}/steal\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes())
                            .await;
                    }
                    "loop" | "slowloop" => {
                        if segment == "slowloop" {
                            tokio::time::sleep(Duration::from_millis(600)).await;
                        }
                        let _ = socket
                            .write_all(format!("HTTP/1.1 302 Found\r\nlocation: {path}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes())
                            .await;
                    }
                    "qsame" if !path.contains("/moved/") => {
                        // The redirect names its own value for the secret's parameter.
                        let _ = socket
                            .write_all(b"HTTP/1.1 301 Moved\r\nlocation: /qsame/moved/?token=evil&x=1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await;
                    }
                    "same" if !path.contains("/moved/") => {
                        let to = path.replacen("/same/", "/same/moved/", 1);
                        let _ = socket
                            .write_all(format!("HTTP/1.1 301 Moved\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes())
                            .await;
                    }
                    "huge" => {
                        // A gigabyte as fast as the socket takes it, no Content-Length.
                        let _ = socket
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n")
                            .await;
                        let chunk = vec![b' '; 64 * 1024];
                        let mut sent = 0;
                        while sent < GIB {
                            if socket.write_all(&chunk).await.is_err() {
                                break;
                            }
                            sent += chunk.len();
                        }
                    }
                    "declared" => {
                        let _ = socket
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2147483648\r\nconnection: close\r\n\r\n{")
                            .await;
                    }
                    "lie" => {
                        let _ = socket
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\nconnection: close\r\n\r\n{\"success\":true")
                            .await;
                    }
                    "drip" => {
                        let _ = socket
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\nconnection: close\r\n\r\n")
                            .await;
                        for _ in 0..1000 {
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            if socket.write_all(b" ").await.is_err() {
                                break;
                            }
                        }
                    }
                    _ => {
                        let _ = socket
                            .write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{ok_body}", ok_body.len()).as_bytes())
                            .await;
                    }
                }
            });
        }
    });
    (base, seen)
}

/// The requests a listener received under `prefix`: (path, head).
fn requests_to(seen: &Seen, prefix: &str) -> Vec<(String, String)> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|(path, _)| path.starts_with(prefix))
        .cloned()
        .collect()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

struct Parts {
    collector: Collector,
    state: Arc<MemoryHostState>,
    sink: Arc<MemorySink>,
}

fn collector(base: &str) -> Parts {
    collector_with(base, json!({"style": "header", "name": "X-Access-Token"}))
}

fn collector_with(base: &str, auth: serde_json::Value) -> Parts {
    let sources = json!({
        "travelpayouts": {"base_url": base, "secret_parameter": "/t", "concurrency": 1, "auth": auth,
            "max_body_bytes": 1 << 20, "breaker": {"failure_threshold": 100}}
    });
    let secrets = MemorySecrets(HashMap::from([("/t".to_string(), TOKEN.to_string())]));
    let state = Arc::new(MemoryHostState::default());
    let sink = Arc::new(MemorySink::default());
    let collector = Collector {
        sources: Sources::parse(&sources.to_string()).unwrap(),
        upstreams: Arc::new(HttpUpstreams::new(
            Arc::new(secrets),
            Duration::from_secs(1),
        )),
        archive: Arc::new(MemoryArchive::default()),
        sink: sink.clone(),
        state: state.clone(),
        http_policy: RetryPolicy::new(2, Duration::from_millis(10), Duration::from_millis(20)),
        http_timeout: Duration::from_secs(1),
    };
    Parts {
        collector,
        state,
        sink,
    }
}

fn job() -> Job {
    Job::from_value(&json!({"job": "led-kzn", "source": "travelpayouts",
        "params": {"origin": "LED", "destination": "KZN", "departure_at": "2026-12", "page": "1"}}))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_leaks_nothing_dies_nothing_hangs() {
    let (thief, stolen) = hostile("http://127.0.0.1:1".into()).await;
    let (upstream, seen) = hostile(thief.clone()).await;
    let host = upstream.trim_start_matches("http://").to_string();

    // A redirect to another listener: not followed, the token never arrives there.
    let p = collector(&format!("{upstream}/away"));
    let err = p.collector.run(&job(), None).await.unwrap_err().to_string();
    assert!(
        err.contains("redirect to") && err.contains("not followed"),
        "{err}"
    );
    assert!(
        stolen.lock().unwrap().is_empty(),
        "the other host got {:?}",
        stolen.lock().unwrap()
    );
    assert!(!err.contains(TOKEN));

    // The same host and port under another scheme: not the same origin, not followed.
    let p = collector(&format!("{upstream}/scheme"));
    let err = p.collector.run(&job(), None).await.unwrap_err().to_string();
    assert!(
        err.contains("redirect to https://") && err.contains("not followed"),
        "{err}"
    );

    // A redirect loop ends after 3 hops; a slow one ends at the request's one timeout, not
    // at 4 of them (the walk reserved one timeout before the deadline).
    let p = collector(&format!("{upstream}/loop"));
    let err = p.collector.run(&job(), None).await.unwrap_err().to_string();
    assert!(err.contains("more than 3 redirects"), "{err}");
    let p = collector(&format!("{upstream}/slowloop"));
    let t0 = Instant::now();
    let err = p.collector.run(&job(), None).await.unwrap_err().to_string();
    assert!(err.contains("timed out"), "{err}");
    assert!(
        t0.elapsed() < Duration::from_millis(2600),
        "2 attempts of 1 s: {:?}",
        t0.elapsed()
    );

    // Query auth through a redirect that names its own token: the source's secret goes,
    // once, and never the upstream's value.
    let p = collector_with(
        &format!("{upstream}/qsame"),
        json!({"style": "query", "name": "token"}),
    );
    let s = p.collector.run(&job(), None).await.unwrap();
    assert_eq!(s.put, 1, "{s:?}");
    let moved: Vec<String> = requests_to(&seen, "/qsame/moved/")
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(moved[0].matches("token=").count(), 1, "{}", moved[0]);
    assert!(
        moved[0].contains(&format!("token={TOKEN}")) && moved[0].contains("x=1"),
        "{}",
        moved[0]
    );

    // A same-host redirect: followed, the token attached again by the adapter.
    let p = collector(&format!("{upstream}/same"));
    let s = p.collector.run(&job(), None).await.unwrap();
    assert_eq!(s.put, 1, "{s:?}");
    let moved: Vec<String> = requests_to(&seen, "/same/moved/")
        .into_iter()
        .map(|(_, head)| head.to_ascii_lowercase())
        .collect();
    assert_eq!(moved.len(), 1);
    assert!(
        moved[0].contains(&format!("x-access-token: {}", TOKEN.to_ascii_lowercase())),
        "{}",
        moved[0]
    );

    // A gigabyte served fast: a counted failure the breaker sees; memory stays bounded.
    let before = peak_rss_kib();
    let p = collector(&format!("{upstream}/huge"));
    let t0 = Instant::now();
    let err = p.collector.run(&job(), None).await.unwrap_err().to_string();
    assert!(err.contains("over the 1048576-byte cap"), "{err}");
    let grown_mib = (peak_rss_kib().saturating_sub(before)) / 1024;
    assert!(
        grown_mib < 64,
        "peak memory grew by {grown_mib} MiB reading a 1 GB body"
    );
    assert!(t0.elapsed() < Duration::from_secs(10));
    let breaker = p.state.load_breaker(&host).await.unwrap().unwrap();
    assert_eq!(breaker.failures, 1, "the breaker counted it: {breaker:?}");
    assert!(p.sink.records().is_empty());

    // A Content-Length over any cap: refused before a byte of the body is read.
    let p = collector(&format!("{upstream}/declared"));
    let err = p.collector.run(&job(), None).await.unwrap_err().to_string();
    assert!(
        err.contains("Content-Length 2147483648 is over the 1048576-byte body cap"),
        "{err}"
    );

    // A Content-Length lie (5000 declared, 15 sent): a transport failure, retried, no records.
    let p = collector(&format!("{upstream}/lie"));
    let err = p.collector.run(&job(), None).await.unwrap_err().to_string();
    assert!(err.contains("gave up after 2 attempts"), "{err}");
    assert!(p.sink.records().is_empty());

    // A body dripped past the timeout: each attempt ends at the 1 s timeout.
    let p = collector(&format!("{upstream}/drip"));
    let t0 = Instant::now();
    let err = p.collector.run(&job(), None).await.unwrap_err().to_string();
    assert!(err.contains("timed out"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());

    // And no URL carried the token but those of query auth, which puts it there.
    for (path, _) in seen.lock().unwrap().iter() {
        assert!(
            path.starts_with("/qsame/") || !path.contains(TOKEN),
            "the token went into a URL: {path}"
        );
    }
}
