//! CPU of a breakdown read on issue 25's seeded workload at 10 M events over 30 days: the
//! top-10 pages with unique users from 30 stored day cells (each recounted from a seeded
//! day of 333,333 events, sealed at `VALUE_CAP`, cut into rows as the embedded store
//! writes them). `page_top_10_over_30_days` copies the rows, as a store hands them over,
//! and takes the top values (`BreakdownRange`): what a report does with the store's
//! answer, without the store's I/O. Run: `cargo bench --bench breakdown_read`.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
#[allow(
    unused_imports,
    reason = "the seeded workload's enrichment, not used here"
)]
use volcanion::model::{DeviceType, Enrichment};
use volcanion::rollups::{BreakdownRange, EncodedTable, RecountedValue, VALUE_CAP, ValueTable};

#[allow(dead_code, reason = "each includer uses a part")]
mod seeded {
    include!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/seeded.rs"
    ));
}

use seeded::{Laws, Seeded};

const EVENTS_PER_DAY: usize = 10_000_000 / 30;
/// The embedded store's row limit (`BREAKDOWN_ROW_BYTES`).
const ROW_BYTES: usize = 256 * 1024;

/// One seeded day's page cell, as stored rows.
fn day_rows(seeded: &mut Seeded, laws: &Laws) -> Vec<Vec<u8>> {
    let mut recounted: HashMap<String, RecountedValue> = HashMap::new();
    for _ in 0..EVENTS_PER_DAY {
        let page = format!("/page/{}", seeded.zipf(&laws.pages));
        let value = recounted.entry(page).or_default();
        value.events += 1;
        value.actors.add_actor(&seeded::user(seeded));
    }
    let table = ValueTable::from_recount(recounted, VALUE_CAP);
    table
        .split(ROW_BYTES)
        .iter()
        .map(ValueTable::to_bytes)
        .collect()
}

fn breakdown_read(criterion: &mut Criterion) {
    let laws = Laws::new();
    let mut seeded = Seeded(25);
    let days: Vec<Vec<Vec<u8>>> = (0..30).map(|_| day_rows(&mut seeded, &laws)).collect();
    let bytes: usize = days.iter().flatten().map(Vec::len).sum();
    println!(
        "30 day cells of pages: {} rows, {bytes} bytes",
        days.iter().map(Vec::len).sum::<usize>()
    );
    criterion.bench_function("page_top_10_over_30_days", |bench| {
        bench.iter(|| {
            let mut range = BreakdownRange::default();
            for rows in &days {
                // The store's copy of its rows.
                range.add(EncodedTable::from_parts(rows.clone()));
            }
            black_box(range.top(10).expect("sketches decode"))
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = breakdown_read
}
criterion_main!(benches);
