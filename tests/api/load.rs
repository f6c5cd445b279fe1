//! The drills' load generator: closed-loop senders spread over one or more instances (a
//! load balancer's view), a tally of every answer, and the check that every event
//! answered 202 is stored exactly once. Used by `tests/drills.rs` and
//! `tests/cluster_drill.rs`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::helpers::{self, Tenant, TestApp};

/// How long waiting for acknowledgements may take before the drill fails (a hang guard).
const ACKNOWLEDGE_TIMEOUT: Duration = Duration::from_secs(60);
pub const BATCH_EVENTS: usize = 50;

/// What the load senders saw.
#[derive(Default)]
pub struct Tally {
    /// Ids of the events answered 202 (client-chosen for batches, server-made for singles).
    pub acknowledged: Mutex<Vec<String>>,
    acknowledged_count: AtomicUsize,
    statuses: Mutex<BTreeMap<u16, usize>>,
    /// 503 answers without a `Retry-After` header.
    pub unavailable_without_retry_after: AtomicUsize,
    /// The distinct `detail`s of the 503 answers.
    pub unavailable_details: Mutex<BTreeSet<String>>,
    /// Requests without an answer (the connection failed or closed).
    pub unanswered: AtomicUsize,
    /// Requests sent again after an answer other than 2xx, or none (`ResendingLoad`).
    pub resends: AtomicUsize,
    stop: AtomicBool,
}

impl Tally {
    pub fn acknowledged(&self) -> usize {
        self.acknowledged_count.load(Ordering::Relaxed)
    }

    /// Waits until `events` more events have been acknowledged than now.
    pub async fn acknowledges(&self, events: usize) {
        let target = self.acknowledged() + events;
        helpers::wait_until(
            &format!("{target} events are acknowledged"),
            ACKNOWLEDGE_TIMEOUT,
            || async { self.acknowledged() >= target },
        )
        .await;
    }

    pub fn statuses(&self) -> BTreeMap<u16, usize> {
        self.statuses.lock().unwrap().clone()
    }

    /// Fails unless every answer was one of `allowed`.
    pub fn assert_only(&self, allowed: &[u16]) {
        let statuses = self.statuses();
        assert!(
            statuses.keys().all(|status| allowed.contains(status)),
            "answers {statuses:?}, allowed only {allowed:?}"
        );
    }
}

/// Senders that post in a closed loop until stopped, sender `i` to instance
/// `i % instances`: even ones batches of `BATCH_EVENTS` with client-chosen ids, odd ones
/// single events with server-made ids.
pub struct Load {
    pub tally: Arc<Tally>,
    senders: Vec<JoinHandle<()>>,
}

impl Load {
    /// As fast as the instances answer.
    pub fn start(
        instances: &[SocketAddr],
        tenant: &Tenant,
        senders: usize,
        properties: Value,
    ) -> Load {
        Load::paced(instances, tenant, senders, properties, Duration::ZERO)
    }

    /// Each sender waits `pause` after every acknowledged request: a steady load that
    /// leaves the machine room for what the drill does beside it.
    pub fn paced(
        instances: &[SocketAddr],
        tenant: &Tenant,
        senders: usize,
        properties: Value,
        pause: Duration,
    ) -> Load {
        let tally = Arc::new(Tally::default());
        let senders = (0..senders)
            .map(|sender| {
                tokio::spawn(send_load(
                    instances[sender % instances.len()],
                    tenant.key.clone(),
                    tenant.subsystem_code.clone(),
                    properties.clone(),
                    Sender {
                        number: sender,
                        pause,
                    },
                    Arc::clone(&tally),
                ))
            })
            .collect();
        Load { tally, senders }
    }

    /// Waits until `events` more events have been acknowledged than now.
    pub async fn acknowledges(&self, events: usize) {
        self.tally.acknowledges(events).await;
    }

    pub async fn stop(self) -> Arc<Tally> {
        self.tally.stop.store(true, Ordering::Relaxed);
        for sender in self.senders {
            sender.await.expect("a load sender panicked");
        }
        self.tally
    }
}

struct Sender {
    number: usize,
    pause: Duration,
}

async fn send_load(
    address: SocketAddr,
    key: String,
    subsystem: String,
    properties: Value,
    sender: Sender,
    tally: Arc<Tally>,
) {
    let Sender {
        number: sender,
        pause,
    } = sender;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut request_number = 0usize;
    while !tally.stop.load(Ordering::Relaxed) {
        request_number += 1;
        let single = sender % 2 == 1;
        let (path, body, ids) = if single {
            let event = json!({"eventType": "drill", "userId": format!("u{sender}"), "subsystem": subsystem, "properties": properties});
            ("/api/v1/events", event, Vec::new())
        } else {
            let ids: Vec<String> = (0..BATCH_EVENTS)
                .map(|i| format!("d{sender}-{request_number}-{i}"))
                .collect();
            let events: Vec<Value> = ids
                .iter()
                .map(|id| json!({"eventType": "drill", "eventId": id, "userId": format!("u{sender}"), "subsystem": subsystem, "properties": properties}))
                .collect();
            ("/api/v1/events/batch", json!({ "events": events }), ids)
        };
        let sent = client
            .post(format!("http://{address}{path}"))
            .header("x-api-key", &key)
            .json(&body)
            .send()
            .await;
        let Ok(response) = sent else {
            tally.unanswered.fetch_add(1, Ordering::Relaxed);
            // The service is down or restarting: don't spin on refused connections.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let status = response.status();
        *tally
            .statuses
            .lock()
            .unwrap()
            .entry(status.as_u16())
            .or_default() += 1;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            if !response.headers().contains_key("retry-after") {
                tally
                    .unavailable_without_retry_after
                    .fetch_add(1, Ordering::Relaxed);
            }
            let problem: Value = response.json().await.unwrap_or_default();
            if let Some(detail) = problem["detail"].as_str() {
                tally
                    .unavailable_details
                    .lock()
                    .unwrap()
                    .insert(detail.to_string());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        if status != StatusCode::ACCEPTED {
            // Back off briefly, as a client honouring Retry-After would (shortened).
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let ids = if single {
            match response.json::<Value>().await {
                Ok(answer) => vec![answer["eventId"].as_str().unwrap().to_string()],
                Err(_) => {
                    tally.unanswered.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
        } else {
            ids
        };
        tally
            .acknowledged_count
            .fetch_add(ids.len(), Ordering::Relaxed);
        tally.acknowledged.lock().unwrap().extend(ids);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}

/// Every acknowledged event is stored, and no stored event more than once. Returns how
/// many events are stored.
pub async fn assert_stored_exactly_once(app: &TestApp, tenant: &Tenant, tally: &Tally) -> usize {
    assert_stored_exactly_once_in(app, tenant, tally, "").await
}

/// The same for the listing narrowed by `scope` (e.g. `&subsystemId=…`, which reads the
/// by-subsystem table).
pub async fn assert_stored_exactly_once_in(
    app: &TestApp,
    tenant: &Tenant,
    tally: &Tally,
    scope: &str,
) -> usize {
    let query = format!("from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z&limit=1000{scope}");
    let mut stored = HashSet::new();
    for event in app.all_events(&tenant.key, &query).await {
        let id = event["eventId"].as_str().unwrap().to_string();
        assert!(
            stored.insert(id.clone()),
            "event {id} is stored twice ({scope})"
        );
    }
    let acknowledged = tally.acknowledged.lock().unwrap();
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events are not stored ({scope}), e.g. {:?}",
        missing.len(),
        acknowledged.len(),
        &missing[..missing.len().min(5)]
    );
    eprintln!(
        "{} events acknowledged, {} stored{scope} (the rest had no answer), answers {:?}, {} unanswered requests, {} resends",
        acknowledged.len(),
        stored.len(),
        tally.statuses(),
        tally.unanswered.load(Ordering::Relaxed),
        tally.resends.load(Ordering::Relaxed)
    );
    stored.len()
}

/// How a resending sender builds its requests.
#[derive(Clone, Copy)]
enum ResendingKind {
    /// A native batch whose events carry their own id and time.
    NativeTimed,
    /// A native batch whose events carry their own id but no time (the service's clock
    /// stamps them, so a resend has another time than the first attempt).
    NativeUntimed,
    /// A Segment batch (`messageId`, `timestamp`, a fresh `sentAt` on every attempt, as
    /// the libraries send it), Basic auth with a key pinned to the subsystem.
    Segment,
}

/// Clients that choose every event's id and send each request again until it is answered
/// 2xx, as Segment's libraries do: the load under which a crash between an id's claim and
/// its rows would lose acknowledged events. Senders reach the instance at `address`,
/// which may be killed and started again on the same address.
pub struct ResendingLoad {
    pub tally: Arc<Tally>,
    senders: Vec<JoinHandle<()>>,
}

pub const RESENDING_BATCH_EVENTS: usize = 20;

impl ResendingLoad {
    /// `segment_key`: an ingest key pinned to the tenant's subsystem.
    pub fn start(
        address: SocketAddr,
        tenant: &Tenant,
        segment_key: &str,
        senders: usize,
    ) -> ResendingLoad {
        let tally = Arc::new(Tally::default());
        let kinds = [
            ResendingKind::NativeTimed,
            ResendingKind::NativeUntimed,
            ResendingKind::Segment,
        ];
        let senders = (0..senders)
            .map(|sender| {
                let kind = kinds[sender % kinds.len()];
                let key = match kind {
                    ResendingKind::Segment => segment_key.to_string(),
                    _ => tenant.key.clone(),
                };
                tokio::spawn(resend_until_acknowledged(
                    address,
                    key,
                    tenant.subsystem_code.clone(),
                    (sender, kind),
                    Arc::clone(&tally),
                ))
            })
            .collect();
        ResendingLoad { tally, senders }
    }

    /// Waits until `events` more events have been acknowledged than now.
    pub async fn acknowledges(&self, events: usize) {
        self.tally.acknowledges(events).await;
    }

    /// Stops making new requests; each sender first gets its last one acknowledged.
    pub async fn stop(self) -> Arc<Tally> {
        self.tally.stop.store(true, Ordering::Relaxed);
        for sender in self.senders {
            tokio::time::timeout(ACKNOWLEDGE_TIMEOUT, sender)
                .await
                .expect("the last request of a sender is acknowledged")
                .expect("a load sender panicked");
        }
        self.tally
    }
}

async fn resend_until_acknowledged(
    address: SocketAddr,
    key: String,
    subsystem: String,
    (sender, kind): (usize, ResendingKind),
    tally: Arc<Tally>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut request_number = 0usize;
    while !tally.stop.load(Ordering::Relaxed) {
        request_number += 1;
        let ids: Vec<String> = (0..RESENDING_BATCH_EVENTS)
            .map(|i| format!("r{sender}-{request_number}-{i}"))
            .collect();
        let now = chrono::Utc::now();
        let events: Vec<Value> = ids
            .iter()
            .map(|id| match kind {
                ResendingKind::NativeTimed => json!({"eventType": "drill", "eventId": id, "timestamp": now, "userId": format!("u{sender}"), "subsystem": subsystem}),
                ResendingKind::NativeUntimed => json!({"eventType": "drill", "eventId": id, "userId": format!("u{sender}"), "subsystem": subsystem}),
                ResendingKind::Segment => json!({"type": "track", "event": "drill", "messageId": id, "timestamp": now, "userId": format!("u{sender}")}),
            })
            .collect();
        let mut attempt = 0usize;
        loop {
            attempt += 1;
            if attempt > 1 {
                tally.resends.fetch_add(1, Ordering::Relaxed);
            }
            let request = match kind {
                ResendingKind::Segment => client
                    .post(format!("http://{address}/v1/batch"))
                    .basic_auth(&key, Some(""))
                    .json(&json!({"batch": events, "sentAt": chrono::Utc::now()})),
                _ => client
                    .post(format!("http://{address}/api/v1/events/batch"))
                    .header("x-api-key", &key)
                    .json(&json!({ "events": events })),
            };
            let Ok(response) = request.send().await else {
                tally.unanswered.fetch_add(1, Ordering::Relaxed);
                // Down or restarting: don't spin on refused connections.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let status = response.status();
            *tally
                .statuses
                .lock()
                .unwrap()
                .entry(status.as_u16())
                .or_default() += 1;
            if !status.is_success() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            let answer: Value = response.json().await.unwrap_or_default();
            if let ResendingKind::NativeTimed | ResendingKind::NativeUntimed = kind {
                assert_eq!(answer["accepted"], RESENDING_BATCH_EVENTS, "{answer}");
            }
            break;
        }
        tally
            .acknowledged_count
            .fetch_add(ids.len(), Ordering::Relaxed);
        tally.acknowledged.lock().unwrap().extend(ids);
    }
}
