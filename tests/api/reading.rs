use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, Report, Tenant, TestApp, assert_problem, event, spawn_app};

const DAY: &str = "from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z";

/// 250 events spread over the day, several sharing a timestamp, in batches.
async fn seed_events(app: &TestApp, tenant: &Tenant) -> Vec<Value> {
    let events: Vec<Value> = (0..250)
        .map(|i| {
            let second = i / 3;
            let timestamp = format!(
                "2026-11-20T{:02}:{:02}:{:02}Z",
                second / 3600,
                (second / 60) % 60,
                second % 60
            );
            let event_type = if i % 5 == 0 { "purchase" } else { "page_view" };
            event(tenant, event_type, &format!("user-{}", i % 7), &timestamp)
        })
        .collect();
    for chunk in events.chunks(100) {
        assert_eq!(
            app.send_batch(&tenant.key, chunk).await.status(),
            StatusCode::ACCEPTED
        );
    }
    app.await_events(&tenant.key, DAY, events.len()).await
}

async fn paging_visits_every_event_exactly_once_newest_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let all = seed_events(&app, &tenant).await;
    let paged = app.all_events(&tenant.key, &format!("{DAY}&limit=7")).await;
    let ids: Vec<&str> = paged
        .iter()
        .map(|e| e["eventId"].as_str().unwrap())
        .collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), 250);
    assert_eq!(unique.len(), 250, "no event twice");
    let expected: HashSet<&str> = all.iter().map(|e| e["eventId"].as_str().unwrap()).collect();
    assert_eq!(unique, expected);
    let timestamps: Vec<&str> = paged
        .iter()
        .map(|e| e["timestamp"].as_str().unwrap())
        .collect();
    assert!(
        timestamps.windows(2).all(|pair| pair[0] >= pair[1]),
        "newest first"
    );
}

async fn the_last_full_page_has_no_cursor(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    for i in 0..4 {
        app.send_event(
            &tenant.key,
            &event(&tenant, "e", "u", &format!("2026-11-20T10:00:0{i}Z")),
        )
        .await;
    }
    app.await_events(&tenant.key, DAY, 4).await;
    let page: Value = app
        .get_events(&tenant.key, &format!("{DAY}&limit=4"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 4);
    assert!(page["nextCursor"].is_null());
}

async fn filters_narrow_by_type_user_subsystem_and_time(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let backend = app.create_subsystem(&tenant.partner_id, "backend").await;
    seed_events(&app, &tenant).await;
    let mut server_side = event(&tenant, "invoice", "user-1", "2026-11-20T23:00:00Z");
    server_side["subsystem"] = backend["code"].clone();
    app.send_event(&tenant.key, &server_side).await;
    app.await_events(&tenant.key, DAY, 251).await;

    let purchases = app
        .all_events(&tenant.key, &format!("{DAY}&eventType=purchase"))
        .await;
    assert_eq!(purchases.len(), 50);
    let user = app
        .all_events(&tenant.key, &format!("{DAY}&userId=user-3"))
        .await;
    assert!(!user.is_empty() && user.iter().all(|e| e["userId"] == "user-3"));
    let backend_only = app
        .all_events(
            &tenant.key,
            &format!("{DAY}&subsystemId={}", backend["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(backend_only.len(), 1);
    assert_eq!(backend_only[0]["eventType"], "invoice");
    let first_minute = app
        .all_events(
            &tenant.key,
            "from=2026-11-20T00:00:00Z&to=2026-11-20T00:01:00Z",
        )
        .await;
    assert_eq!(first_minute.len(), 180, "seconds 0..59, three events each");
}

async fn bad_query_parameters_are_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("from=yesterday", "from"),
        ("from=2026-11-21T00:00:00Z&to=2026-11-20T00:00:00Z", "from"),
        ("cursor=%%%", "cursor"),
        ("cursor=AAAA", "cursor"),
        ("isValid=maybe", "isValid"),
        ("subsystemId=abc", "subsystemId"),
    ] {
        let problem = assert_problem(
            app.get_events(&tenant.key, query).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field, "{query}");
    }
}

async fn admins_read_any_partner_but_must_name_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    app.send_event(
        &tenant.key,
        &event(&tenant, "e", "u", "2026-11-20T10:00:00Z"),
    )
    .await;
    app.await_events(&tenant.key, DAY, 1).await;
    let unnamed = app.get_events_as_admin(DAY).await;
    assert_problem(unnamed, StatusCode::BAD_REQUEST).await;
    let named: Value = app
        .get_events_as_admin(&format!("{DAY}&partnerId={}", tenant.partner_id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(named["items"].as_array().unwrap().len(), 1);
    let unknown = app
        .get_events_as_admin("partnerId=00000000-0000-0000-0000-000000000000")
        .await;
    assert_problem(unknown, StatusCode::NOT_FOUND).await;
}

async fn a_key_of_partner_a_never_sees_partner_b_data(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.tenant("alice").await;
    let bob = app.tenant("bob").await;
    app.send_event(
        &alice.key,
        &event(&alice, "alice_event", "a", "2026-11-20T10:00:00Z"),
    )
    .await;
    for i in 0..3 {
        app.send_event(
            &bob.key,
            &event(&bob, "bob_event", "b", &format!("2026-11-20T10:00:0{i}Z")),
        )
        .await;
    }
    app.await_events(&alice.key, DAY, 1).await;
    let bob_events = app.await_events(&bob.key, DAY, 3).await;
    assert!(bob_events.iter().all(|e| e["eventType"] == "bob_event"));

    let own = app.all_events(&alice.key, DAY).await;
    assert!(
        own.iter()
            .all(|e| e["partnerId"] == alice.partner_id.as_str())
    );
    let cross_partner = app
        .get_events(&alice.key, &format!("{DAY}&partnerId={}", bob.partner_id))
        .await;
    assert_problem(cross_partner, StatusCode::FORBIDDEN).await;
    let cross_subsystem = app
        .get_events(
            &alice.key,
            &format!("{DAY}&subsystemId={}", bob.subsystem_id),
        )
        .await;
    assert_problem(cross_subsystem, StatusCode::NOT_FOUND).await;
    for report in [Report::Summary, Report::Timeseries] {
        let query = format!("{DAY}&partnerId={}", bob.partner_id);
        let response = app.report(&alice.key, report, &query).await;
        assert_problem(response, StatusCode::FORBIDDEN).await;
    }
    let bob_page: Value = app
        .get_events(&bob.key, &format!("{DAY}&limit=1"))
        .await
        .json()
        .await
        .unwrap();
    let bob_cursor = bob_page["nextCursor"].as_str().unwrap();
    let stolen_cursor = app
        .get_events(&alice.key, &format!("{DAY}&limit=1&cursor={bob_cursor}"))
        .await;
    assert_problem(stolen_cursor, StatusCode::BAD_REQUEST).await;
    let mut forged = event(&alice, "forged", "a", "2026-11-20T10:00:00Z");
    forged["subsystem"] = json!(bob.subsystem_id);
    assert_problem(
        app.send_event(&alice.key, &forged).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

async fn a_pinned_read_key_sees_only_its_subsystem(backend: Backend) {
    let app = spawn_app(backend).await;
    let tenant = app.tenant("acme").await;
    let backend = app.create_subsystem(&tenant.partner_id, "backend").await;
    app.send_event(
        &tenant.key,
        &event(&tenant, "web_event", "u", "2026-11-20T10:00:00Z"),
    )
    .await;
    let mut server_side = event(&tenant, "backend_event", "u", "2026-11-20T10:00:01Z");
    server_side["subsystem"] = backend["code"].clone();
    app.send_event(&tenant.key, &server_side).await;
    app.await_events(&tenant.key, DAY, 2).await;
    let pinned = app
        .create_key(
            &tenant.partner_id,
            json!({"scopes": ["read"], "subsystemId": backend["id"]}),
        )
        .await;
    let pinned_key = pinned["key"].as_str().unwrap();
    let visible = app.all_events(pinned_key, DAY).await;
    assert_eq!(visible.len(), 1);
    assert_eq!(visible[0]["eventType"], "backend_event");
    let other = app
        .get_events(
            pinned_key,
            &format!("{DAY}&subsystemId={}", tenant.subsystem_id),
        )
        .await;
    assert_problem(other, StatusCode::FORBIDDEN).await;
}

crate::backend_tests!(
    paging_visits_every_event_exactly_once_newest_first,
    the_last_full_page_has_no_cursor,
    filters_narrow_by_type_user_subsystem_and_time,
    bad_query_parameters_are_400,
    admins_read_any_partner_but_must_name_it,
    a_key_of_partner_a_never_sees_partner_b_data,
    a_pinned_read_key_sees_only_its_subsystem,
);
