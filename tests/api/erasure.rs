//! Erasure over real HTTP, on both stores (API.md, "Data lifecycle"): a user's erasure
//! takes their events and their joined anonymous ids' from the listing, the export, the
//! person lookup and every report, with a receipt that counts them; `rollups verify`
//! agrees afterwards (counts, sketches, breakdown cells); an anonymous id's erasure with
//! `suppress` drops its later events (counted); bad requests name the field; every step
//! is in the audit log. A job interrupted after some of its days (a crash) is resumed at
//! the next start and counts each event once.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use volcanion::config::Config;
use volcanion::model::{Erasure, ErasureStatus, ErasureSubject, Event};
use volcanion::rollups::Hour;
use volcanion::store::Store;

use crate::helpers::{
    Backend, TestApp, TestAppBuilder, assert_problem, error_fields, metric, stored_event,
    stored_partner, wait_until,
};

const FROM: &str = "2026-11-20T00:00:00Z";
const TO: &str = "2026-11-23T00:00:00Z";

/// One event as sent: (user, anonymous id, type, time).
type Sent = (
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
    DateTime<Utc>,
);

/// Three days: u1 signs in on a1 on the second day (a1's earlier events become u1's),
/// a2 stays anonymous, a1 is later seen with u9 too (a conflict: that event is u9's), and
/// u2 and u3 carry on beside them.
fn story() -> Vec<Sent> {
    let day0 = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
    let mut sent = Vec::new();
    for n in 0..72i64 {
        let at = day0 + chrono::Duration::minutes(n * 59 + 7);
        let kind = if n % 3 == 0 { "click" } else { "page_view" };
        let who: [(Option<&'static str>, Option<&'static str>); 5] = [
            (Some("u1"), None),
            (None, Some("a1")),
            (None, Some("a2")),
            (Some("u2"), None),
            (Some("u3"), Some("a3")),
        ];
        let (user, anonymous) = who[(n % 5) as usize];
        sent.push((user, anonymous, kind, at));
    }
    sent.push((
        Some("u1"),
        Some("a1"),
        "identify",
        day0 + chrono::Duration::hours(30),
    ));
    sent.push((
        Some("u9"),
        Some("a1"),
        "identify",
        day0 + chrono::Duration::hours(50),
    ));
    sent
}

fn json_of((user, anonymous, kind, at): &Sent, subsystem: &str) -> Value {
    let mut event = json!({
        "eventType": kind,
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "subsystem": subsystem,
        "context": {"page": {"path": "/"}},
    });
    if let Some(user) = user {
        event["userId"] = json!(user);
    }
    if let Some(anonymous) = anonymous {
        event["anonymousId"] = json!(anonymous);
    }
    event
}

/// Whether u1's erasure takes the event: u1's own, and a1's without a user id.
fn is_u1s((user, anonymous, ..): &Sent) -> bool {
    *user == Some("u1") || (user.is_none() && *anonymous == Some("a1"))
}

fn range() -> String {
    format!("from={FROM}&to={TO}")
}

async fn admin_get(app: &TestApp, path: &str) -> reqwest::Response {
    app.admin(reqwest::Method::GET, path).send().await.unwrap()
}

/// The actions of the partner's audit log, oldest first.
async fn audit_actions(app: &TestApp, partner: &str) -> Vec<String> {
    let log: Value = admin_get(app, &format!("/api/v1/audit?partnerId={partner}"))
        .await
        .json()
        .await
        .unwrap();
    let entries = log["items"].as_array().unwrap();
    entries
        .iter()
        .map(|entry| entry["action"].as_str().unwrap().to_string())
        .collect()
}

async fn erase(app: &TestApp, partner: &str, body: Value) -> reqwest::Response {
    let path = format!("/api/v1/partners/{partner}/erasures");
    app.admin(reqwest::Method::POST, &path)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Polls the erasure until it is done, returning it.
async fn await_done(app: &TestApp, partner: &str, id: &str) -> Value {
    let path = format!("/api/v1/partners/{partner}/erasures/{id}");
    let done = Arc::new(Mutex::new(Value::Null));
    wait_until("the erasure is done", Duration::from_secs(60), || {
        let (done, request) = (
            Arc::clone(&done),
            app.admin(reqwest::Method::GET, &path).send(),
        );
        async move {
            let erasure: Value = request.await.unwrap().json().await.unwrap();
            assert_ne!(erasure["status"], "failed", "{erasure}");
            let finished = erasure["status"] == "done";
            *done.lock().unwrap() = erasure;
            finished
        }
    })
    .await;
    done.lock().unwrap().clone()
}

/// Hours counted by each store's verify: none may differ from a recount.
async fn assert_verified(store: &dyn Store, partner: Uuid) {
    let (from, to) = (
        Hour::of(FROM.parse().unwrap()),
        Hour::of(TO.parse().unwrap()),
    );
    let rollups = store.verify_rollups(partner, from, to).await.unwrap();
    assert!(rollups.is_empty(), "rollups differ: {rollups:?}");
    let cells = store.verify_breakdowns(partner, from, to).await.unwrap();
    assert!(cells.is_empty(), "breakdown cells differ: {cells:?}");
}

/// The distinct people of the events of `kind` (any, with `None`) among `sent`, each
/// event as its person: its user, else the user its anonymous id was first seen with.
fn people_of(sent: &[Sent], kind: Option<&str>) -> u64 {
    let mut joins: HashMap<&str, &str> = HashMap::new();
    for (user, anonymous, ..) in sent {
        if let (Some(user), Some(anonymous)) = (user, anonymous) {
            joins.entry(anonymous).or_insert(user);
        }
    }
    let people: BTreeSet<&str> = sent
        .iter()
        .filter(|event| kind.is_none_or(|kind| event.2 == kind))
        .filter_map(|(user, anonymous, ..)| {
            user.or_else(|| anonymous.map(|id| *joins.get(id).unwrap_or(&id)))
        })
        .collect();
    people.len() as u64
}

async fn a_users_erasure_leaves_no_trace_and_a_receipt(backend: Backend) {
    let (app, store) = TestAppBuilder::new(backend).spawn_keeping_store().await;
    let tenant = app.tenant("erasure").await;
    let sent = story();
    let events: Vec<Value> = sent
        .iter()
        .map(|e| json_of(e, &tenant.subsystem_code))
        .collect();
    assert_eq!(
        app.send_batch(&tenant.key, &events).await.status(),
        StatusCode::ACCEPTED
    );
    let listing = format!("{}&limit=1000", range());
    app.await_events(&tenant.key, &listing, sent.len()).await;
    let hours: BTreeSet<i64> = sent.iter().map(|e| e.3.timestamp() / 3_600).collect();
    app.await_folded(hours.len() as f64).await;
    let partner: Uuid = tenant.partner_id.parse().unwrap();
    let person = admin_get(&app, &format!("/api/v1/people/u1?partnerId={partner}")).await;
    assert_eq!(person.status(), StatusCode::OK, "u1 is there before");

    let response = erase(&app, &tenant.partner_id, json!({"userId": "u1"})).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let asked: Value = response.json().await.unwrap();
    assert_eq!(asked["subject"], json!({"userId": "u1"}));
    assert!(["pending", "running", "done"].contains(&asked["status"].as_str().unwrap()));
    let done = await_done(&app, &tenant.partner_id, asked["id"].as_str().unwrap()).await;

    let erased: Vec<&Sent> = sent.iter().filter(|e| is_u1s(e)).collect();
    let erased_hours: BTreeSet<i64> = erased.iter().map(|e| e.3.timestamp() / 3_600).collect();
    assert_eq!(done["eventsDeleted"], json!(erased.len()), "{done}");
    assert_eq!(done["hoursRecounted"], json!(erased_hours.len()), "{done}");
    assert!(done["completedAt"].is_string());
    assert_eq!(done["anonymousIds"], json!(["a1"]));

    let left: Vec<Sent> = sent.iter().filter(|e| !is_u1s(e)).cloned().collect();
    let listed = app.all_events(&tenant.key, &listing).await;
    assert_eq!(listed.len(), left.len());
    assert!(
        listed
            .iter()
            .all(|e| e["userId"] != "u1" && !(e["userId"].is_null() && e["anonymousId"] == "a1")),
        "no event of u1 is listed"
    );
    let u9s = listed.iter().filter(|e| e["userId"] == "u9").count();
    assert_eq!(
        u9s, 1,
        "a1's event with another user is that user's, and kept"
    );
    let person = admin_get(&app, &format!("/api/v1/people/u1?partnerId={partner}")).await;
    assert_eq!(
        person.status(),
        StatusCode::NOT_FOUND,
        "no events, no joined ids"
    );
    let export = admin_get(
        &app,
        &format!("/api/v1/export?partnerId={partner}&{}&userId=u1", range()),
    )
    .await;
    assert_eq!(export.text().await.unwrap(), "", "u1's export is empty");

    let summary = app.summary(&tenant.key, &range()).await;
    assert_eq!(summary["totalEvents"], json!(left.len()), "{summary}");
    assert_eq!(
        summary["uniqueUsers"],
        json!(people_of(&left, None)),
        "{summary}"
    );
    let funnel = app
        .funnel(
            &tenant.key,
            &format!("{}&steps=page_view&steps=click&window=1d", range()),
        )
        .await;
    let viewers = people_of(&left, Some("page_view"));
    assert_eq!(funnel["steps"][0]["users"], json!(viewers), "{funnel}");
    assert_verified(store.as_ref(), partner).await;

    suppressed_anonymous_ids_are_erased_and_dropped_at_ingest(&app, &tenant, &left).await;
    bad_erasures_are_refused(&app, &tenant).await;
    the_audit_log_has_every_step(&app, &tenant.partner_id).await;
}

async fn suppressed_anonymous_ids_are_erased_and_dropped_at_ingest(
    app: &TestApp,
    tenant: &crate::helpers::Tenant,
    left: &[Sent],
) {
    let body = json!({"anonymousId": "a2", "suppress": true});
    let asked: Value = erase(app, &tenant.partner_id, body)
        .await
        .json()
        .await
        .unwrap();
    let done = await_done(app, &tenant.partner_id, asked["id"].as_str().unwrap()).await;
    let a2s = left.iter().filter(|e| e.1 == Some("a2")).count();
    assert_eq!(done["eventsDeleted"], json!(a2s));
    let late =
        json!({"eventType": "click", "anonymousId": "a2", "subsystem": tenant.subsystem_code});
    assert_eq!(
        app.send_event(&tenant.key, &late).await.status(),
        StatusCode::ACCEPTED
    );
    let marker = json!({"eventType": "marker", "userId": "u2", "subsystem": tenant.subsystem_code});
    assert_eq!(
        app.send_event(&tenant.key, &marker).await.status(),
        StatusCode::ACCEPTED
    );
    let recent = "from=2026-11-20T00:00:00Z&limit=1000";
    let kept = left.len() - a2s + 1;
    let listed = app.await_events(&tenant.key, recent, kept).await;
    assert!(
        listed.iter().all(|e| e["anonymousId"] != "a2"),
        "a2's new event is dropped"
    );
    let suppressed = metric(&app.metrics().await, "volcanion_events_suppressed_total");
    assert_eq!(suppressed, Some(1.0));
    let listing: Value = admin_get(
        app,
        &format!("/api/v1/partners/{}/erasures", tenant.partner_id),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(listing["items"].as_array().unwrap().len(), 2);
}

async fn bad_erasures_are_refused(app: &TestApp, tenant: &crate::helpers::Tenant) {
    for body in [
        json!({}),
        json!({"userId": "u2", "anonymousId": "a3"}),
        json!({"userId": ""}),
    ] {
        let problem = assert_problem(
            erase(app, &tenant.partner_id, body).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(error_fields(&problem), ["userId"]);
    }
    let unknown = erase(app, &Uuid::now_v7().to_string(), json!({"userId": "u2"})).await;
    assert_problem(unknown, StatusCode::NOT_FOUND).await;
    let path = format!(
        "/api/v1/partners/{}/erasures/{}",
        tenant.partner_id,
        Uuid::now_v7()
    );
    assert_problem(admin_get(app, &path).await, StatusCode::NOT_FOUND).await;
    let path = format!("/api/v1/partners/{}/erasures", tenant.partner_id);
    let with_key = app
        .with_key(reqwest::Method::POST, &path, &tenant.key)
        .json(&json!({"userId": "u2"}))
        .send()
        .await
        .unwrap();
    assert!(with_key.status().is_client_error(), "admin token only");
}

async fn the_audit_log_has_every_step(app: &TestApp, partner: &str) {
    for days in [json!(30), Value::Null] {
        let patched = app
            .patch_partner(partner, &json!({"retentionDays": days}))
            .await;
        assert_eq!(patched.status(), StatusCode::OK);
        assert_eq!(
            patched.json::<Value>().await.unwrap()["retentionDays"],
            days
        );
    }
    assert_eq!(
        audit_actions(app, partner).await,
        [
            "erasureRequested",
            "erasureCompleted",
            "export",
            "erasureRequested",
            "erasureCompleted",
            "retentionChanged",
            "retentionChanged",
        ]
    );
    let first_page: Value = admin_get(app, &format!("/api/v1/audit?partnerId={partner}&limit=4"))
        .await
        .json()
        .await
        .unwrap();
    let cursor = first_page["nextCursor"].as_str().expect("more entries");
    let rest: Value = admin_get(
        app,
        &format!("/api/v1/audit?partnerId={partner}&cursor={cursor}"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(rest["items"].as_array().unwrap().len(), 3);
    assert_eq!(
        rest["items"][2]["details"]["retentionDays"]["to"],
        Value::Null
    );
}

/// A job that erased its first day and then stopped (the process died) is resumed at the
/// next start: the second day is erased, and the receipt counts every event once.
async fn an_erasure_cut_short_resumes_at_start_and_counts_each_event_once(backend: Backend) {
    let dir = tempfile::TempDir::new().unwrap();
    let mut config = Config::defaults();
    backend.apply(&mut config);
    config.store.data_dir = dir.path().to_path_buf();
    let day0 = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
    let store = volcanion::open_store(&config).await.unwrap();
    let partner = stored_partner(store.as_ref(), "cut-short", &["page_view"]).await;
    let events: Vec<Event> = (0..48i64)
        .map(|n| {
            let at = day0 + chrono::Duration::minutes(n * 61);
            let user = if n % 2 == 0 { "gone" } else { "kept" };
            stored_event(partner, &format!("e{n}"), "page_view", at, user)
        })
        .collect();
    let mut erasure = Erasure::new(partner, ErasureSubject::UserId("gone".into()), false);
    erasure.status = ErasureStatus::Running;
    {
        store.write_events(&events).await.unwrap();
        store.put_erasure(&erasure).await.unwrap();
        let first_day: Vec<Hour> = (0..24).map(|h| Hour(Hour::of(day0).0 + h)).collect();
        let erased = store.erase_hours(&erasure, &first_day).await.unwrap();
        assert_eq!(erased.events, 12, "the first day's half, before the crash");
        drop(store);
    }
    let builder = TestAppBuilder::new(backend)
        .configure(|c| c.store.data_dir = config.store.data_dir.clone());
    let (_app, store) = builder.spawn_keeping_store().await;
    let stored = Arc::new(Mutex::new(None));
    wait_until(
        "the job resumes and finishes",
        Duration::from_secs(60),
        || {
            let (store, stored) = (Arc::clone(&store), Arc::clone(&stored));
            async move {
                let found = store.erasure(partner, erasure.id).await.unwrap().unwrap();
                let done = found.status == ErasureStatus::Done;
                *stored.lock().unwrap() = Some(found);
                done
            }
        },
    )
    .await;
    let done = stored.lock().unwrap().take().unwrap();
    assert_eq!(
        done.events_deleted, 24,
        "every event of the user, once: {done:?}"
    );
    assert_eq!(done.hours_recounted, 24);
    assert_verified(store.as_ref(), partner).await;
}

/// A purge: the partner is deactivated at once, then every event of it and everything
/// counted from them goes; another partner's data is untouched.
async fn a_purge_erases_the_partner_and_leaves_others_alone(backend: Backend) {
    let (app, store) = TestAppBuilder::new(backend).spawn_keeping_store().await;
    let (gone, kept) = (app.tenant("purged").await, app.tenant("neighbour").await);
    let sent = story();
    for tenant in [&gone, &kept] {
        let events: Vec<Value> = sent
            .iter()
            .map(|e| json_of(e, &tenant.subsystem_code))
            .collect();
        let response = app.send_batch(&tenant.key, &events).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let listing = format!("{}&limit=1000", range());
        app.await_events(&tenant.key, &listing, sent.len()).await;
    }
    let path = format!("/api/v1/partners/{}", gone.partner_id);
    let bad = app
        .admin(reqwest::Method::DELETE, &format!("{path}?purge=maybe"))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(bad, StatusCode::BAD_REQUEST).await;
    assert_eq!(error_fields(&problem), ["purge"]);
    let response = app
        .admin(reqwest::Method::DELETE, &format!("{path}?purge=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let job: Value = response.json().await.unwrap();
    assert_eq!(job["subject"], json!({"partnerId": gone.partner_id}));
    let refused = app
        .send_event(&gone.key, &json_of(&sent[0], &gone.subsystem_code))
        .await;
    assert!(refused.status().is_client_error(), "its keys stop at once");
    let done = await_done(&app, &gone.partner_id, job["id"].as_str().unwrap()).await;
    assert_eq!(done["eventsDeleted"], json!(sent.len()), "{done}");

    let partner: Uuid = gone.partner_id.parse().unwrap();
    let record = app.partner(&gone.partner_id).await;
    assert_eq!(record["status"], "inactive");
    let (from, to) = (FROM.parse().unwrap(), TO.parse().unwrap());
    let left = store
        .query_events(&volcanion::store::EventQuery {
            scope: volcanion::store::EventScope::Partner(partner),
            from,
            to,
            filter: Default::default(),
            limit: 10,
            cursor: None,
            with_payload: false,
        })
        .await
        .unwrap();
    assert!(
        left.items.is_empty(),
        "no event of the purged partner is left"
    );
    assert!(store.event_types(partner).await.unwrap().is_empty());
    let joins = store.anonymous_ids_of(partner, "u1".into()).await.unwrap();
    assert!(joins.is_empty(), "its people's joins are gone");
    assert_verified(store.as_ref(), partner).await;
    let summary = app.summary(&kept.key, &range()).await;
    assert_eq!(
        summary["totalEvents"],
        json!(sent.len()),
        "the neighbour keeps its events"
    );
    assert_verified(store.as_ref(), kept.partner_id.parse().unwrap()).await;
    assert_eq!(
        audit_actions(&app, &partner.to_string()).await,
        ["purgeRequested", "erasureCompleted"]
    );
}

crate::backend_tests!(
    a_users_erasure_leaves_no_trace_and_a_receipt,
    an_erasure_cut_short_resumes_at_start_and_counts_each_event_once,
    a_purge_erases_the_partner_and_leaves_others_alone
);
