//! Sessions over real HTTP, on both stores: the summary's visits, bounce rate and median
//! visit duration, and the entry and exit page breakdowns, each equal to a brute-force
//! recount of the events sent (people joined across their ids, visits cut at gaps over
//! 30 minutes and at UTC midnight), over whole folded days, over a range whose cut ends
//! are counted at report time, with a `where=` filter (raw events), and with bots.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, GOOGLEBOT, Report, Tenant, TestApp, TestAppBuilder, assert_problem, error_fields,
    spawn_app,
};

const GAP_MS: i64 = 30 * 60_000;
const PAGES: [&str; 5] = ["/", "/pricing", "/blog", "/docs", "/signup"];
const WHOLE: (&str, &str) = ("2026-11-20T00:00:00Z", "2026-11-23T00:00:00Z");
/// Cut ends around one whole day (the 21st): the ends counted at report time.
const CUT: (&str, &str) = ("2026-11-20T09:17:00Z", "2026-11-22T15:43:00Z");

/// One event as sent, kept for the recount.
#[derive(Debug, Clone)]
struct Sent {
    user: Option<String>,
    anonymous: Option<String>,
    at: DateTime<Utc>,
    kind: &'static str,
    page: Option<&'static str>,
    bot: bool,
}

impl Sent {
    fn json(&self, subsystem: &str) -> Value {
        let mut event = json!({
            "eventType": self.kind,
            "timestamp": self.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "subsystem": subsystem,
        });
        if let Some(user) = &self.user {
            event["userId"] = json!(user);
        }
        if let Some(anonymous) = &self.anonymous {
            event["anonymousId"] = json!(anonymous);
        }
        let mut context = json!({});
        if let Some(page) = self.page {
            context["page"] = json!({ "path": page });
        }
        if self.bot {
            context["userAgent"] = json!(GOOGLEBOT);
        }
        event["context"] = context;
        event
    }
}

/// A small deterministic generator (no seed to pass around, the same story every run).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Three days of bursts by users, anonymous visitors (two of whom sign in on the second
/// day, joining their earlier events), and a crawler: gaps of 1 to 45 minutes within a
/// burst, so some bursts are two visits; a burst late on the 20th runs past midnight.
fn story() -> Vec<Sent> {
    let mut random = Lcg(7);
    let mut people: Vec<(Option<String>, Option<String>, bool)> = Vec::new();
    people.extend((0..5).map(|n| (Some(format!("u{n}")), None, false)));
    people.extend((0..4).map(|n| (None, Some(format!("a{n}")), false)));
    people.push((Some("crawler".to_string()), None, true));
    let day0 = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
    let mut sent = Vec::new();
    for (user, anonymous, bot) in &people {
        for day in 0..3 {
            for _ in 0..3 {
                let mut at = day0
                    + Duration::days(day)
                    + Duration::minutes(random.below(24 * 60) as i64)
                    + Duration::milliseconds(random.below(1_000) as i64);
                for _ in 0..=random.below(4) {
                    let page_view = random.below(10) < 6;
                    sent.push(Sent {
                        user: user.clone(),
                        anonymous: anonymous.clone(),
                        at,
                        kind: if page_view { "page_view" } else { "click" },
                        page: page_view.then(|| PAGES[random.below(5) as usize]),
                        bot: *bot,
                    });
                    at += Duration::minutes(1 + random.below(45) as i64);
                }
            }
        }
    }
    let late = day0 + Duration::minutes(23 * 60 + 50);
    for (minutes, page) in [(0, "/blog"), (15, "/docs")] {
        sent.push(Sent {
            user: Some("u0".to_string()),
            anonymous: None,
            at: late + Duration::minutes(minutes),
            kind: "page_view",
            page: Some(page),
            bot: false,
        });
    }
    for (anonymous, user) in [("a0", "u5"), ("a1", "u6")] {
        sent.push(Sent {
            user: Some(user.to_string()),
            anonymous: Some(anonymous.to_string()),
            at: day0 + Duration::hours(36),
            kind: "identify",
            page: None,
            bot: false,
        });
    }
    sent
}

/// What the recount expects of a range.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    visits: u64,
    bot_visits: u64,
    bounces: u64,
    durations_s: Vec<i64>,
    /// Page → (visits, people), entering and leaving.
    entries: BTreeMap<String, (u64, BTreeSet<String>)>,
    exits: BTreeMap<String, (u64, BTreeSet<String>)>,
}

impl Expected {
    fn bounce_rate(&self) -> Option<f64> {
        (self.visits > 0).then(|| self.bounces as f64 / self.visits as f64)
    }

    fn median_seconds(&self) -> Option<f64> {
        let mut durations = self.durations_s.clone();
        durations.sort_unstable();
        let n = durations.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(durations[n / 2] as f64),
            _ => Some((durations[n / 2 - 1] + durations[n / 2]) as f64 / 2.0),
        }
    }
}

/// The brute-force recount: each event as its person (the first user its anonymous id
/// was seen with), each person's events in the range in time order (one type at the same
/// millisecond once), a new visit after a gap over 30 minutes or at UTC midnight.
fn recount(sent: &[Sent], range: (&str, &str), include_bots: bool) -> Expected {
    recount_with_gap(sent, range, include_bots, GAP_MS)
}

fn recount_with_gap(
    sent: &[Sent],
    (from, to): (&str, &str),
    include_bots: bool,
    gap_ms: i64,
) -> Expected {
    let (from, to): (DateTime<Utc>, DateTime<Utc>) = (from.parse().unwrap(), to.parse().unwrap());
    let mut joins: HashMap<&str, &str> = HashMap::new();
    for event in sent {
        if let (Some(user), Some(anonymous)) = (&event.user, &event.anonymous) {
            joins.entry(anonymous.as_str()).or_insert(user.as_str());
        }
    }
    let mut timelines: BTreeMap<(bool, String), Vec<&Sent>> = BTreeMap::new();
    for event in sent
        .iter()
        .filter(|event| from <= event.at && event.at < to)
    {
        let person = match (&event.user, &event.anonymous) {
            (Some(user), _) => user.clone(),
            (None, Some(anonymous)) => joins
                .get(anonymous.as_str())
                .unwrap_or(&anonymous.as_str())
                .to_string(),
            (None, None) => continue,
        };
        timelines
            .entry((event.bot, person))
            .or_default()
            .push(event);
    }
    let mut expected = Expected::default();
    for ((bot, person), mut events) in timelines {
        events.sort_by_key(|event| (event.at, event.kind));
        events.dedup_by_key(|event| (event.at, event.kind));
        let mut visits: Vec<Vec<&Sent>> = Vec::new();
        for event in events {
            let continues = visits.last().is_some_and(|visit| {
                let last = visit.last().unwrap().at;
                (event.at - last).num_milliseconds() <= gap_ms
                    && event.at.date_naive() == visit[0].at.date_naive()
            });
            if !continues {
                visits.push(Vec::new());
            }
            visits.last_mut().unwrap().push(event);
        }
        for visit in visits {
            if bot {
                expected.bot_visits += 1;
                if !include_bots {
                    continue;
                }
            }
            expected.visits += 1;
            let views: Vec<&&Sent> = visit
                .iter()
                .filter(|event| event.kind == "page_view")
                .collect();
            expected.bounces += u64::from(visit.len() == 1 && views.len() == 1);
            let duration = visit.last().unwrap().at - visit[0].at;
            expected
                .durations_s
                .push(duration.num_milliseconds() / 1_000);
            for (pages, view) in [
                (&mut expected.entries, views.first()),
                (&mut expected.exits, views.last()),
            ] {
                if let Some(page) = view.and_then(|view| view.page) {
                    let (count, people) = pages.entry(page.to_string()).or_default();
                    *count += 1;
                    people.insert(person.clone());
                }
            }
        }
    }
    expected
}

fn range_query((from, to): (&str, &str)) -> String {
    format!("from={from}&to={to}")
}

async fn told(app: &TestApp) -> (Tenant, Vec<Sent>) {
    let tenant = app.tenant("sessions").await;
    let sent = story();
    for chunk in sent.chunks(100) {
        let events: Vec<Value> = chunk
            .iter()
            .map(|event| event.json(&tenant.subsystem_code))
            .collect();
        let response = app.send_batch(&tenant.key, &events).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    // Some bursts late on the 22nd run past the ranges asked below.
    let all = "from=2026-11-20T00:00:00Z&to=2026-11-24T00:00:00Z&limit=1000";
    app.await_events(&tenant.key, all, sent.len()).await;
    (tenant, sent)
}

/// The hours holding the story's events: once they are folded (and nothing waits), so
/// are their days.
fn hours_of(sent: &[Sent]) -> f64 {
    let hours: BTreeSet<i64> = sent
        .iter()
        .map(|event| event.at.timestamp() / 3_600)
        .collect();
    hours.len() as f64
}

async fn visits_are_counted_per_person_from_folded_days_and_the_ranges_cut_ends(backend: Backend) {
    let app = spawn_app(backend).await;
    let (tenant, sent) = told(&app).await;
    app.await_folded(hours_of(&sent)).await;
    let key = &tenant.key;
    let whole = recount(&sent, WHOLE, false);
    assert!(
        whole.visits > 40 && whole.bounces > 0,
        "a story worth counting: {whole:?}"
    );
    let cases = [
        (range_query(WHOLE), recount(&sent, WHOLE, false)),
        (range_query(CUT), recount(&sent, CUT, false)),
        (
            format!("{}&where=valid:true", range_query(WHOLE)),
            recount(&sent, WHOLE, false),
        ),
        (
            format!("{}&includeBots=true", range_query(CUT)),
            recount(&sent, CUT, true),
        ),
        (
            format!("{}&subsystemId={}", range_query(WHOLE), tenant.subsystem_id),
            recount(&sent, WHOLE, false),
        ),
    ];
    for (query, expected) in &cases {
        assert_sessions(&app, key, query, expected).await;
    }
    bad_session_parameters_name_the_field(&app, key).await;
}

/// Summary and entry pages of `range` equal `expected`.
async fn assert_sessions(app: &TestApp, key: &str, query: &str, expected: &Expected) {
    let summary = app.summary(key, query).await;
    assert_eq!(summary["visits"], json!(expected.visits), "{query}");
    assert_eq!(
        summary["bounceRate"],
        json!(expected.bounce_rate()),
        "{query}"
    );
    assert_eq!(
        summary["visitDurationSeconds"],
        json!(expected.median_seconds()),
        "{query}"
    );
    for (dimension, pages) in [
        ("entryPage", &expected.entries),
        ("exitPage", &expected.exits),
    ] {
        let breakdown = app
            .breakdown(key, &format!("{query}&dimension={dimension}&limit=10"))
            .await;
        let items: BTreeMap<String, (u64, u64)> = breakdown["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                let value = item["value"].as_str().unwrap().to_string();
                let counts = (
                    item["events"].as_u64().unwrap(),
                    item["uniqueUsers"].as_u64().unwrap(),
                );
                (value, counts)
            })
            .collect();
        let wanted: BTreeMap<String, (u64, u64)> = pages
            .iter()
            .map(|(page, (visits, people))| (page.clone(), (*visits, people.len() as u64)))
            .collect();
        assert_eq!(items, wanted, "{dimension} {query}");
        assert_eq!(
            breakdown["totalEvents"],
            json!(expected.visits),
            "{dimension} {query}"
        );
        assert_eq!(
            breakdown["botEvents"],
            json!(expected.bot_visits),
            "{dimension} {query}"
        );
    }
}

/// Another session gap than the folded one: every visit counted at report time, from
/// people's postings (the summary) and raw events (the pages).
#[tokio::test]
async fn a_session_gap_of_its_own_is_counted_at_report_time() {
    let app = TestAppBuilder::new(Backend::Embedded)
        .configure(|config| config.reports.session_gap = std::time::Duration::from_secs(600))
        .spawn()
        .await;
    let (tenant, sent) = told(&app).await;
    app.await_folded(hours_of(&sent)).await;
    for range in [WHOLE, CUT] {
        let expected = recount_with_gap(&sent, range, false, 600_000);
        assert_ne!(
            expected,
            recount(&sent, range, false),
            "the gap matters here"
        );
        assert_sessions(&app, &tenant.key, &range_query(range), &expected).await;
    }
}

async fn bad_session_parameters_name_the_field(app: &TestApp, key: &str) {
    let whole = range_query(WHOLE);
    for (query, field) in [
        (format!("{whole}&where=entryPage:/"), "where"),
        (format!("{whole}&dimension=entryPage&where=nope:1"), "where"),
    ] {
        let report = if query.contains("dimension=") {
            Report::Breakdown
        } else {
            Report::Summary
        };
        let response = app.report(key, report, &query).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(error_fields(&problem), [field], "{query}");
    }
}

crate::backend_tests!(visits_are_counted_per_person_from_folded_days_and_the_ranges_cut_ends);
