//! Slowloris: clients that send a request head one byte a second hold nothing others
//! need. While 200 of them trickle (each reconnecting as soon as the server closes it, as
//! an attacker would, so the attack lasts as long as the test wants), normal requests are
//! served, and every slow connection is closed by `http.header_read_timeout` before its
//! head is complete.
//!
//! Embedded store only: what is under test is the accept loop and hyper's head timer
//! (`http::server`), which run before any handler or store; on Cassandra the same path
//! would run again with only the store's latency added.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::helpers::{Backend, TestAppBuilder};

const SLOW_CLIENTS: usize = 200;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);
const TRICKLE_INTERVAL: Duration = Duration::from_secs(1);
/// A hang guard only: nothing is timed against it.
const PATIENCE: Duration = Duration::from_secs(60);
/// At a byte a second, sending this whole takes over a minute.
const SLOW_HEAD: &[u8] = b"GET /health/live HTTP/1.1\r\nHost: x\r\nUser-Agent: slowloris\r\nX-Padding: aaaaaaaaaaaaaaaa\r\n\r\n";

/// What one slow connection saw before the server closed it.
struct Closed {
    client: usize,
    bytes_sent: usize,
    answer: Vec<u8>,
}

enum Report {
    /// The client's first connection is open and has sent its first byte.
    Started,
    Closed(Closed),
}

/// One attacker: sends `SLOW_HEAD` a byte a tick until the server closes the connection,
/// reports it, and connects again, until the task is aborted.
async fn slow_client(address: SocketAddr, client: usize, reports: mpsc::UnboundedSender<Report>) {
    let mut announce = true;
    loop {
        let stream = TcpStream::connect(address).await.expect("connects");
        let (bytes_sent, answer) = trickle(stream, || {
            if std::mem::take(&mut announce) {
                let _ = reports.send(Report::Started);
            }
        })
        .await;
        let closed = Closed {
            client,
            bytes_sent,
            answer,
        };
        if reports.send(Report::Closed(closed)).is_err() {
            return;
        }
    }
}

/// Trickles `SLOW_HEAD` until the server closes the connection: the bytes sent by then,
/// and whatever the server answered. `sent_first` runs once the first byte is out.
async fn trickle(mut stream: TcpStream, mut sent_first: impl FnMut()) -> (usize, Vec<u8>) {
    let mut ticks = tokio::time::interval(TRICKLE_INTERVAL);
    let (mut bytes_sent, mut answer, mut buffer) = (0, Vec::new(), [0u8; 1024]);
    loop {
        tokio::select! {
            read = stream.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return (bytes_sent, answer),
                Ok(count) => answer.extend_from_slice(&buffer[..count]),
            },
            _ = ticks.tick(), if bytes_sent < SLOW_HEAD.len() => {
                let next = &SLOW_HEAD[bytes_sent..=bytes_sent];
                if stream.write_all(next).await.is_err() {
                    return (bytes_sent, answer);
                }
                bytes_sent += 1;
                sent_first();
            }
        }
    }
}

async fn guarded<T>(what: &str, work: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, work)
        .await
        .unwrap_or_else(|_| panic!("{what}: no progress within {PATIENCE:?}"))
}

#[tokio::test]
async fn slow_clients_do_not_stop_others_from_being_served() {
    let app = TestAppBuilder::new(Backend::Embedded)
        .configure(|config| config.http.header_read_timeout = HEADER_READ_TIMEOUT)
        .spawn()
        .await;
    let tenant = app.tenant("acme").await;
    let (reports, mut received) = mpsc::unbounded_channel();
    let mut attackers = JoinSet::new();
    for client in 0..SLOW_CLIENTS {
        attackers.spawn(slow_client(app.address, client, reports.clone()));
    }
    drop(reports);
    let mut closures: Vec<Closed> = Vec::new();
    let mut started = 0;
    guarded("every slow client connects", async {
        while started < SLOW_CLIENTS {
            match received.recv().await.expect("the attackers run") {
                Report::Started => started += 1,
                Report::Closed(closed) => closures.push(closed),
            }
        }
    })
    .await;

    // The attack goes on until the attackers are aborted below: these run while it lasts.
    for round in 0..5 {
        let live = guarded("health while trickling", app.get("/health/live")).await;
        assert_eq!(live.status(), StatusCode::OK, "round {round}");
        let event = json!({
            "eventType": "page", "userId": format!("u{round}"), "subsystem": tenant.subsystem_code
        });
        let accepted = guarded(
            "an event while trickling",
            app.send_event(&tenant.key, &event),
        )
        .await;
        assert_eq!(accepted.status(), StatusCode::ACCEPTED, "round {round}");
    }

    let mut closed_clients = [false; SLOW_CLIENTS];
    closures
        .iter()
        .for_each(|closed| closed_clients[closed.client] = true);
    guarded("the server closes every slow connection", async {
        while closed_clients.contains(&false) {
            if let Report::Closed(closed) = received.recv().await.expect("the attackers run") {
                closed_clients[closed.client] = true;
                closures.push(closed);
            }
        }
    })
    .await;
    attackers.abort_all();
    for closed in &closures {
        assert!(
            closed.bytes_sent < SLOW_HEAD.len(),
            "client {} was closed only after its whole head",
            closed.client
        );
        let answer = String::from_utf8_lossy(&closed.answer);
        assert!(
            !answer.contains("200 OK"),
            "a half head was served: {answer}"
        );
    }
}
