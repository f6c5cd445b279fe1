//! The dashboard's breakdown panels, value filters and bot share, as the browser test
//! (`tests/browser/dashboard.cjs`, driven by `dashboard.rs`) read them off the page in
//! Chromium, against the API's own answers for the same range and filters.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::helpers::TestApp;

/// The page a click filters on in the browser script, and that filter as a query.
const CLICKED: (&str, &str) = ("page", "/docs");
const CLICKED_QUERY: &str = "&where=page%3A%2Fdocs";

/// What the panels should hold, from the seed: humans' events and the bots' count.
pub(crate) struct Expected<'a> {
    pub events: &'a [Value],
    pub bots: usize,
}

/// Every panel of the unfiltered board is the API's breakdown, the pages are the seed's,
/// and the bot share counts the crawler's events among all.
pub(crate) async fn assert_panels(
    app: &TestApp,
    key: &str,
    board: &Value,
    expected: &Expected<'_>,
) {
    assert_panels_match(app, key, board, "").await;
    let pages = &board["panels"]["pages"];
    assert_eq!(
        shown_rows(pages),
        seeded_pages(expected.events, None),
        "top pages"
    );
    let devices: Vec<(Value, Value)> = shown_rows(&board["panels"]["devices"])
        .into_iter()
        .map(|row| (row[0].clone(), row[1].clone()))
        .collect();
    let half = json!(expected.events.len() / 2);
    assert!(
        devices.contains(&(json!("desktop"), half.clone()))
            && devices.contains(&(json!("mobile"), half)),
        "Firefox on Linux is a desktop, an iPhone mobile: {devices:?}"
    );
    let countries = &board["panels"]["countries"];
    assert_eq!(
        countries["state"], "empty",
        "no GeoIP database, no countries"
    );
    assert_eq!(countries["rows"][0]["cells"][0], "None in this range");
    let campaigns = &board["panels"]["campaigns"];
    assert_eq!(campaigns["dimension"], "utmCampaign");
    assert_eq!(shown_rows(campaigns)[0][0], "winter-sale");
    assert_eq!(board["botShare"], bot_share(expected), "{board}");
    assert!(
        board["botEvents"]
            .as_str()
            .unwrap()
            .contains(&format!("{} events, left out", expected.bots))
    );
}

/// A click on a page filtered every report; its chip's removal and the bot toggle too.
pub(crate) async fn assert_filters(
    app: &TestApp,
    key: &str,
    seen: &Value,
    expected: &Expected<'_>,
) {
    let humans = expected.events.len();
    assert_asked(&seen["clickQueries"], |query| {
        query["where"] == json!(["page:/docs"])
    });
    let filtered = &seen["filtered"];
    assert_eq!(
        filtered["chips"],
        json!([{"key": CLICKED.0, "value": CLICKED.1}])
    );
    assert_eq!(filtered["chipsShown"], true);
    let clicked = seeded_pages(expected.events, Some(CLICKED.1));
    assert_eq!(
        shown_rows(&filtered["panels"]["pages"]),
        clicked,
        "only the clicked page"
    );
    let summary = app
        .summary(key, &format!("{}{CLICKED_QUERY}", range(filtered)))
        .await;
    assert_eq!(filtered["totalEvents"], summary["totalEvents"]);
    assert_eq!(filtered["uniqueUsers"], summary["uniqueUsers"]);
    assert_eq!(
        filtered["totalEvents"], clicked[0][1],
        "the summary is the page's"
    );
    let charted = format!("{} events in", clicked[0][1]);
    assert!(
        filtered["chartSummary"]
            .as_str()
            .unwrap()
            .starts_with(&charted),
        "{filtered}"
    );
    assert_panels_match(app, key, filtered, CLICKED_QUERY).await;

    assert_asked(&seen["removeQueries"], |query| query["where"] == json!([]));
    let restored = &seen["restored"];
    assert_eq!(
        (restored["chips"].clone(), restored["chipsShown"].clone()),
        (json!([]), json!(false))
    );
    assert_eq!(
        restored["totalEvents"], humans,
        "the chip's removal restores the totals"
    );
    assert_eq!(
        shown_rows(&restored["panels"]["pages"]),
        seeded_pages(expected.events, None)
    );
    assert_panels_match(app, key, restored, "").await;

    assert_asked(&seen["botQueries"], |query| query["includeBots"] == "true");
    let with_bots = &seen["withBots"];
    assert_eq!(with_bots["totalEvents"], humans + expected.bots);
    assert_eq!(with_bots["botShare"], bot_share(expected));
    assert!(
        with_bots["botEvents"]
            .as_str()
            .unwrap()
            .contains("included")
    );
    let devices = shown_rows(&with_bots["panels"]["devices"]);
    assert!(
        devices.contains(&json!(["bot", expected.bots, 1])),
        "{devices:?}"
    );
    assert_panels_match(app, key, with_bots, "&includeBots=true").await;
    let without = &seen["withoutBots"];
    assert_eq!(
        without["totalEvents"], humans,
        "the toggle turned off leaves bots out again"
    );
    assert!(without["botEvents"].as_str().unwrap().contains("left out"));
    let by_source = &seen["bySource"];
    assert_eq!(by_source["dimension"], "utmSource", "the campaigns switch");
    let top_source = &shown_rows(by_source)[0];
    assert_eq!(
        (&top_source[0], &top_source[1]),
        (&json!("newsletter"), &json!(10))
    );
    let by_entry = &seen["byEntryPage"];
    let pages = &by_entry["panels"]["pages"];
    assert_eq!(pages["dimension"], "entryPage", "the pages switch");
    assert!(
        !shown_rows(pages).is_empty(),
        "visits entered somewhere: {pages}"
    );
    assert_panels_match(app, key, by_entry, "").await;
}

/// A panel whose question was refused says why, and only that panel.
pub(crate) fn assert_panel_error(seen: &Value) {
    let systems = &seen["systems"];
    assert_eq!(systems["state"], "error", "{seen}");
    let text = systems["rows"][0]["cells"][0].as_str().unwrap();
    assert_eq!(text, "Could not load: dimension: the os rollup is resting");
    assert_eq!(
        seen["messageShown"], false,
        "the rest of the page loaded: {seen}"
    );
    assert_eq!(seen["pagesState"], "empty");
    assert_eq!(
        shown_rows(&seen["browsers"]),
        [json!(["Firefox", 6, 2]), json!(["other", 4, 2])],
        "values past the limit are one \"other\" row: {seen}"
    );
}

/// Each panel shows the API's top 10 of its dimension (and "other") for the board's range.
async fn assert_panels_match(app: &TestApp, key: &str, board: &Value, extra: &str) {
    let panels = board["panels"].as_object().expect("the panels were read");
    assert_eq!(panels.len(), 7, "{panels:?}");
    for (id, panel) in panels {
        let dimension = panel["dimension"].as_str().unwrap();
        let query = format!("{}&dimension={dimension}&limit=10{extra}", range(board));
        let answer = app.breakdown(key, &query).await;
        let mut expected: Vec<Value> = answer["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| json!([item["value"], item["events"], item["uniqueUsers"]]))
            .collect();
        if answer["otherEvents"].as_u64().unwrap() > 0 {
            expected.push(json!([
                "other",
                answer["otherEvents"],
                answer["otherValues"]
            ]));
        }
        if expected.is_empty() {
            assert_eq!(panel["state"], "empty", "{id}: {panel}");
        } else {
            assert_eq!(shown_rows(panel), expected, "{id} ({extra}): {answer}");
        }
    }
}

/// Rows as [value, events, users]; "other" as ["other", events, values].
fn shown_rows(panel: &Value) -> Vec<Value> {
    let digits = |cell: &Value| -> u64 {
        let text: String = cell
            .as_str()
            .unwrap()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        text.parse().unwrap_or(0)
    };
    if panel["state"] != "ready" {
        return Vec::new();
    }
    panel["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let cells = &row["cells"];
            match row["value"].as_str() {
                Some(value) => json!([value, digits(&cells[1]), digits(&cells[2])]),
                None => json!(["other", digits(&cells[1]), digits(&cells[0])]),
            }
        })
        .collect()
}

/// The seed's pages as [page, events, distinct users], most events first.
fn seeded_pages(events: &[Value], only: Option<&str>) -> Vec<Value> {
    let mut pages: BTreeMap<&str, (u64, BTreeSet<&str>)> = BTreeMap::new();
    for event in events {
        let page = event["context"]["page"]["path"].as_str().unwrap();
        if only.is_none_or(|only| only == page) {
            let entry = pages.entry(page).or_default();
            entry.0 += 1;
            entry.1.insert(event["userId"].as_str().unwrap());
        }
    }
    let mut rows: Vec<(&str, u64, usize)> = pages
        .into_iter()
        .map(|(page, (count, users))| (page, count, users.len()))
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    rows.into_iter()
        .map(|(page, count, users)| json!([page, count, users]))
        .collect()
}

fn bot_share(expected: &Expected<'_>) -> String {
    let all = expected.events.len() + expected.bots;
    format!("{:.1} %", 100.0 * expected.bots as f64 / all as f64)
}

/// Every report the page asked during a step met `check`, and it asked them all.
fn assert_asked(queries: &Value, check: impl Fn(&Value) -> bool) {
    let queries = queries.as_array().unwrap();
    let count = |report: &str| {
        queries
            .iter()
            .filter(|query| query["report"] == report)
            .count()
    };
    assert!(
        count("summary") >= 1 && count("timeseries") >= 1,
        "{queries:?}"
    );
    assert!(
        count("breakdown") >= 7,
        "every panel asked again: {queries:?}"
    );
    assert!(queries.iter().all(check), "{queries:?}");
}

fn range(board: &Value) -> String {
    let encode = |field: &str| -> String {
        form_urlencoded::byte_serialize(board[field].as_str().unwrap().as_bytes()).collect()
    };
    format!("from={}&to={}", encode("from"), encode("to"))
}
