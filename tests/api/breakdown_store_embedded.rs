//! The embedded store's breakdown cells, below HTTP (and once through it): hours are
//! reported unsettled until a settle round past the horizon folds them from their stored
//! events, the folded cells equal a recount, a late event reopens its hour and day until
//! they are refolded, a whole day is answered by one day table, a rebuild folds at once,
//! a backfill enriches old events so the next fold counts their pages, and one partner's
//! cells never show in another's read. Folds are triggered with
//! `settle_rollups(now + horizon)`, so nothing waits for the clock.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;
use volcanion::model::{DeviceType, Enrichment, Event, JsonObject};
use volcanion::rollups::{
    BreakdownQuery, BreakdownRange, BreakdownRead, CellName, EncodedTable, Hour,
};
use volcanion::store::embedded::EmbeddedStore;
use volcanion::store::{
    BreakdownStore, EventFilter, EventQuery, EventScope, EventStore, RollupStore, Store,
};

use crate::helpers::{Backend, TestAppBuilder, event as http_event};

const DAY: &str = "2026-11-20T00:00:00Z";

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn hour(text: &str) -> Hour {
    Hour::of(at(text))
}

fn day() -> Hour {
    hour(DAY)
}

/// Past the default settle horizon (2 min) of every write made so far.
fn settled_now() -> DateTime<Utc> {
    Utc::now() + Duration::minutes(3)
}

fn page_view(partner_id: Uuid, id: &str, timestamp: DateTime<Utc>, page: Option<&str>) -> Event {
    Event {
        event_id: id.to_string(),
        partner_id,
        subsystem_id: Uuid::from_u128(partner_id.as_u128() ^ 1),
        event_type: "page_view".into(),
        timestamp,
        received_at: Utc::now(),
        user_id: Some(format!("u-{id}")),
        anonymous_id: None,
        properties: JsonObject::empty(),
        context: JsonObject::empty(),
        is_valid: true,
        validation_errors: Vec::new(),
        correlation_id: format!("c-{id}"),
        enrichment: page.map(|page| Enrichment {
            page: Some(page.to_string()),
            ..Enrichment::default()
        }),
        client_event_id: true,
    }
}

fn cell(dimension: &str) -> CellName {
    CellName {
        bots: false,
        filter: None,
        dimension: dimension.into(),
    }
}

async fn read(
    store: &EmbeddedStore,
    partner_id: Uuid,
    name: CellName,
    (from, to): (Hour, Hour),
    whole_days: &[Hour],
) -> BreakdownRead {
    let query = BreakdownQuery {
        partner_id,
        names: vec![name],
        from,
        to,
        whole_days: whole_days.iter().copied().collect(),
    };
    store.breakdown_cells(&query).await.unwrap()
}

/// Events per value over the tables read.
fn counts(read: &BreakdownRead) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for (_, table) in &read.tables[0] {
        for (value, kept) in &table.decode().unwrap().values {
            *counts.entry(value.clone()).or_default() += kept.events;
        }
    }
    counts
}

fn whole_day() -> (Hour, Hour) {
    (day(), Hour(day().0 + 24))
}

fn open() -> (tempfile::TempDir, EmbeddedStore) {
    let dir = tempfile::TempDir::new().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    (dir, store)
}

#[tokio::test]
async fn folded_cells_equal_a_recount_of_the_hour_with_exact_top_counts() {
    let (_dir, store) = open();
    let partner = Uuid::now_v7();
    let ten = at("2026-11-20T10:00:00Z");
    let mut exact: HashMap<(bool, String), (u64, HashSet<String>)> = HashMap::new();
    let mut events = Vec::new();
    for n in 0..3_000u32 {
        // Uneven pages (page k gets about 1/(k+1) of the events), 1,100 users, bots 1 in 10.
        let page = format!("/p{}", (n * 7919 % 1000 + 1).ilog2() + n % 3);
        let bot = n % 10 == 0;
        let user = format!("u{}", n % 1_100);
        let mut event = page_view(partner, &format!("e{n}"), ten, Some(&page));
        event.timestamp = ten + Duration::milliseconds(i64::from(n));
        event.user_id = Some(user.clone());
        let enrichment = event.enrichment.as_mut().unwrap();
        enrichment.bot = bot;
        enrichment.device_type = Some(if bot {
            DeviceType::Bot
        } else {
            DeviceType::Mobile
        });
        enrichment.country = Some(["DE", "FR", "US"][n as usize % 3].into());
        let entry = exact.entry((bot, page)).or_default();
        entry.0 += 1;
        entry.1.insert(user);
        events.push(event);
    }
    for batch in events.chunks(100) {
        store.write_events(batch).await.unwrap();
    }
    let range = (hour("2026-11-20T10:00:00Z"), hour("2026-11-20T11:00:00Z"));

    let before = read(&store, partner, cell("page"), range, &[]).await;
    assert!(before.tables[0].is_empty());
    assert_eq!(before.unsettled, BTreeSet::from([range.0]));
    let early = store.settle_rollups(Utc::now()).await.unwrap();
    assert_eq!((early.folded, early.waiting), (0, 1), "not settled yet");

    let outcome = store.settle_rollups(settled_now()).await.unwrap();
    assert_eq!(
        (outcome.folded, outcome.failed),
        (2, 0),
        "the hour, then its ended day"
    );
    for bots in [false, true] {
        let name = CellName {
            bots,
            ..cell("page")
        };
        let folded = read(&store, partner, name, range, &[]).await;
        assert!(folded.unsettled.is_empty());
        assert_eq!(folded.tables[0].len(), 1);
        let mut merged = BreakdownRange::default();
        folded
            .tables
            .into_iter()
            .flatten()
            .for_each(|(_, table)| merged.add(table));
        let top = merged.top(1_000).unwrap();
        let expected: Vec<_> = exact.iter().filter(|((bot, _), _)| *bot == bots).collect();
        assert_eq!(top.items.len(), expected.len());
        for item in &top.items {
            let (events, users) = &exact[&(bots, item.value.clone())];
            assert_eq!((item.events, item.error), (*events, 0), "{}", item.value);
            let users = users.len() as f64;
            assert!(
                (item.unique_users as f64 - users).abs() <= users * 0.02,
                "{}: {} users, {users} exact",
                item.value,
                item.unique_users
            );
        }
    }
    // Cells read together come back in the query's order, each as read alone.
    let names = vec![
        CellName {
            bots: true,
            ..cell("page")
        },
        cell("page"),
    ];
    let query = BreakdownQuery {
        partner_id: partner,
        names: names.clone(),
        from: range.0,
        to: range.1,
        whole_days: BTreeSet::new(),
    };
    let together = store.breakdown_cells(&query).await.unwrap();
    assert_eq!(together.tables.len(), 2);
    for (name, tables) in names.into_iter().zip(together.tables) {
        let alone = read(&store, partner, name, range, &[]).await;
        let events = |tables: &[(Hour, EncodedTable)]| -> Vec<u64> {
            let views = tables
                .iter()
                .map(|(_, table)| table.view().unwrap().total_events());
            views.collect()
        };
        assert_eq!(events(&tables), events(&alone.tables[0]));
    }
    let germany = CellName {
        filter: Some(("country".into(), "DE".into())),
        ..cell("page")
    };
    let filtered = read(&store, partner, germany, range, &[]).await;
    let total: u64 = filtered.tables[0]
        .iter()
        .map(|(_, t)| t.view().unwrap().total_events())
        .sum();
    assert_eq!(total, 900, "a third of the 2,700 human events");
    assert_eq!(
        store
            .verify_breakdowns(partner, range.0, range.1)
            .await
            .unwrap(),
        []
    );
}

#[tokio::test]
async fn a_late_event_reopens_its_hour_and_day_until_both_are_refolded() {
    let (_dir, store) = open();
    let partner = Uuid::now_v7();
    let events: Vec<Event> = (0..30)
        .map(|n| {
            let time = at("2026-11-20T10:00:00Z") + Duration::minutes(n * 5);
            page_view(
                partner,
                &format!("e{n}"),
                time,
                Some(["/a", "/b"][n as usize % 2]),
            )
        })
        .collect();
    store.write_events(&events).await.unwrap();
    let outcome = store.settle_rollups(settled_now()).await.unwrap();
    assert_eq!(outcome.folded, 4, "hours 10, 11 and 12, and the day");

    let as_day = read(&store, partner, cell("page"), whole_day(), &[day()]).await;
    assert_eq!(as_day.tables[0].len(), 1, "one day table answers the day");
    assert_eq!(
        counts(&as_day),
        HashMap::from([("/a".into(), 15), ("/b".into(), 15)])
    );
    let by_hour = read(&store, partner, cell("page"), whole_day(), &[]).await;
    assert_eq!(by_hour.tables[0].len(), 3);
    assert_eq!(counts(&by_hour), counts(&as_day));

    let late = page_view(partner, "late", at("2026-11-20T11:30:00Z"), Some("/c"));
    store.write_events(&[late]).await.unwrap();
    let reopened = read(&store, partner, cell("page"), whole_day(), &[day()]).await;
    assert_eq!(
        reopened.unsettled,
        BTreeSet::from([hour("2026-11-20T11:00:00Z")])
    );
    assert_eq!(
        reopened.tables[0].len(),
        2,
        "hours 10 and 12; the day is not current"
    );
    assert_eq!(counts(&reopened).values().sum::<u64>(), 18);

    let outcome = store.settle_rollups(settled_now()).await.unwrap();
    assert_eq!(outcome.folded, 2, "the hour and its day, in the same round");
    let refolded = read(&store, partner, cell("page"), whole_day(), &[day()]).await;
    assert!(refolded.unsettled.is_empty());
    assert_eq!(refolded.tables[0].len(), 1);
    assert_eq!(counts(&refolded)["/c"], 1);
    assert_eq!(counts(&refolded).values().sum::<u64>(), 31);
    let nothing_left = store.settle_rollups(settled_now()).await.unwrap();
    assert_eq!((nothing_left.folded, nothing_left.waiting), (0, 0));
}

#[tokio::test]
async fn a_rebuild_folds_a_range_at_once_and_verify_then_agrees() {
    let (_dir, store) = open();
    let partner = Uuid::now_v7();
    let events: Vec<Event> = (0..12)
        .map(|n| {
            let time = at("2026-11-20T03:00:00Z") + Duration::hours(n);
            page_view(partner, &format!("e{n}"), time, Some("/home"))
        })
        .collect();
    store.write_events(&events).await.unwrap();
    assert_eq!(
        read(&store, partner, cell("page"), whole_day(), &[])
            .await
            .unsettled
            .len(),
        12
    );
    let (from, to) = whole_day();
    assert_eq!(store.rebuild_rollups(partner, from, to).await.unwrap(), 12);
    let rebuilt = read(&store, partner, cell("page"), whole_day(), &[day()]).await;
    assert!(rebuilt.unsettled.is_empty());
    assert_eq!(rebuilt.tables[0].len(), 1, "the day was rebuilt whole");
    assert_eq!(counts(&rebuilt)["/home"], 12);
    assert_eq!(
        store.verify_breakdowns(partner, from, to).await.unwrap(),
        []
    );
    let outcome = store.settle_rollups(settled_now()).await.unwrap();
    assert_eq!(outcome.folded, 0, "nothing left to fold");
}

#[tokio::test]
async fn a_backfill_enriches_old_events_and_the_next_fold_counts_their_pages() {
    let (_dir, store) = open();
    let (partner, other) = (Uuid::now_v7(), Uuid::now_v7());
    let ten = at("2026-11-20T10:00:00Z");
    let old: Vec<Event> = (0..40)
        .map(|n| page_view(partner, &format!("e{n}"), ten + Duration::seconds(n), None))
        .collect();
    let others = [page_view(other, "x", ten, None)];
    store.write_events(&old).await.unwrap();
    store.write_events(&others).await.unwrap();
    store.settle_rollups(settled_now()).await.unwrap();
    let unenriched = read(&store, partner, cell("page"), whole_day(), &[]).await;
    assert!(unenriched.tables[0].is_empty() && unenriched.unsettled.is_empty());

    let enrich = |event: &Event| Enrichment {
        page: Some(format!("/{}", event.event_type)),
        ..Enrichment::default()
    };
    let (from, to) = whole_day();
    assert_eq!(
        store
            .backfill_enrichment(partner, from, to, &enrich)
            .await
            .unwrap(),
        40
    );
    assert_eq!(
        store
            .backfill_enrichment(partner, from, to, &enrich)
            .await
            .unwrap(),
        0
    );
    for scope in [
        EventScope::Partner(partner),
        EventScope::Subsystem(old[0].subsystem_id),
    ] {
        let stored = listed(&store, scope).await;
        assert_eq!(stored.len(), 40);
        assert!(
            stored
                .iter()
                .all(|event| event.enrichment == Some(enrich(event)))
        );
    }
    let untouched = listed(&store, EventScope::Partner(other)).await;
    assert_eq!(
        untouched[0].enrichment, None,
        "another partner's events stay as they were"
    );

    let reopened = read(&store, partner, cell("page"), whole_day(), &[]).await;
    assert_eq!(
        reopened.unsettled,
        BTreeSet::from([hour("2026-11-20T10:00:00Z")])
    );
    store.settle_rollups(settled_now()).await.unwrap();
    let folded = read(&store, partner, cell("page"), whole_day(), &[day()]).await;
    assert_eq!(counts(&folded), HashMap::from([("/page_view".into(), 40)]));
}

async fn listed(store: &EmbeddedStore, scope: EventScope) -> Vec<Event> {
    let query = EventQuery {
        scope,
        from: at(DAY),
        to: at(DAY) + Duration::days(1),
        filter: EventFilter::default(),
        limit: 1_000,
        cursor: None,
        with_payload: true,
    };
    store.query_events(&query).await.unwrap().items
}

#[tokio::test]
async fn one_partners_cells_never_appear_in_anothers_read() {
    let (_dir, store) = open();
    let (a, b, idle) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let ten = at("2026-11-20T10:00:00Z");
    let mut events = vec![
        page_view(a, "a1", ten, Some("/a")),
        page_view(a, "a2", ten, Some("/a")),
    ];
    events.push(page_view(b, "b1", ten, Some("/b")));
    events.push(page_view(b, "b2", at("2026-11-20T14:00:00Z"), Some("/b")));
    store.write_events(&events).await.unwrap();
    let a_before = read(&store, a, cell("page"), whole_day(), &[]).await;
    assert_eq!(a_before.unsettled.len(), 1, "A wrote into one hour only");
    assert!(
        read(&store, idle, cell("page"), whole_day(), &[])
            .await
            .unsettled
            .is_empty()
    );

    store.settle_rollups(settled_now()).await.unwrap();
    for whole_days in [vec![], vec![day()]] {
        let a_read = read(&store, a, cell("page"), whole_day(), &whole_days).await;
        assert_eq!(counts(&a_read), HashMap::from([("/a".into(), 2)]));
        let b_read = read(&store, b, cell("page"), whole_day(), &whole_days).await;
        assert_eq!(counts(&b_read), HashMap::from([("/b".into(), 2)]));
        assert!(
            read(&store, idle, cell("page"), whole_day(), &whole_days)
                .await
                .tables[0]
                .is_empty()
        );
    }
}

#[tokio::test]
async fn events_ingested_over_http_are_folded_with_the_pages_their_enrichment_found() {
    let captured: Arc<Mutex<Option<Arc<dyn Store>>>> = Arc::default();
    let slot = Arc::clone(&captured);
    let app = TestAppBuilder::new(Backend::Embedded)
        .spawn_wrapping(move |store| {
            *slot.lock().unwrap() = Some(Arc::clone(&store));
            store
        })
        .await;
    let store = captured.lock().unwrap().clone().expect("the app's store");
    let tenant = app.tenant("acme").await;
    for (n, path) in ["/pricing", "/pricing", "/docs"].iter().enumerate() {
        let mut body = http_event(&tenant, "page_view", "u1", "2026-11-20T10:00:00Z");
        body["eventId"] = json!(format!("view-{n}"));
        body["context"] = json!({"page": {"url": format!("https://acme.test{path}?x=1")}});
        let response = app.send_event(&tenant.key, &body).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    let range = "from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z";
    app.await_events(&tenant.key, range, 3).await;

    let partner: Uuid = tenant.partner_id.parse().unwrap();
    let query = BreakdownQuery {
        partner_id: partner,
        names: vec![cell("page")],
        from: whole_day().0,
        to: whole_day().1,
        whole_days: BTreeSet::from([day()]),
    };
    assert_eq!(
        store.breakdown_cells(&query).await.unwrap().unsettled.len(),
        1
    );
    store.settle_rollups(settled_now()).await.unwrap();
    let folded = store.breakdown_cells(&query).await.unwrap();
    assert!(folded.unsettled.is_empty());
    assert_eq!(
        counts(&folded),
        HashMap::from([("/pricing".into(), 2), ("/docs".into(), 1)])
    );
}
