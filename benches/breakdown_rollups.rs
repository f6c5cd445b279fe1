//! Cost of breakdown rollups per event, and their disk per event, on issue 25's seeded
//! workload (10,000 pages on a Zipf law, 500 referrers, 50 countries, 200,000 users; 10 M
//! events over 30 days, so ~13,900 an hour).
//! - `breakdown_delta_add`: one batch of 100 events' dimension values added to a fresh
//!   `BreakdownDelta` (what the writer does per event, before the store's write);
//! - `delta_add_hour`: a whole seeded hour (13,888 events) added to one delta, what a fold
//!   by recount does per event;
//! - `breakdown_absorb`: that batch's cells applied to the hour's stored tables (the CPU a
//!   store spends in `ValueTable::absorb`, sketches decoded and encoded; no I/O).
//!
//! Before the benchmarks it prints the encoded bytes per event of one seeded day's hour
//! and day tables (sealed, as a store keeps them). Run: `cargo bench --bench breakdown_rollups`.

use std::collections::HashMap;
use std::hint::black_box;

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datasketches::hll::Coupon;
use uuid::Uuid;
use volcanion::model::{DeviceType, Enrichment, Event, JsonObject};
use volcanion::rollups::{
    ActorSketch, BreakdownDelta, CellKey, DimensionValues, Hour, LIVE_VALUE_CAP, VALUE_CAP,
    ValueTable, dimension_values,
};

const EVENTS_PER_HOUR: usize = 10_000_000 / (30 * 24);
const PARTNER: Uuid = Uuid::from_u128(25);

#[allow(dead_code, reason = "each includer uses a part")]
mod seeded {
    include!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/seeded.rs"
    ));
}

use seeded::{Laws, Seeded};

/// The seeded events: each one's dimension values and its actor's coupon.
struct SeededEvents {
    seeded: Seeded,
    laws: Laws,
    subsystems: [Uuid; 3],
}

impl SeededEvents {
    fn new() -> SeededEvents {
        SeededEvents {
            seeded: Seeded(25),
            laws: Laws::new(),
            subsystems: [1, 2, 3].map(Uuid::from_u128),
        }
    }

    fn next(&mut self) -> (DimensionValues, Coupon) {
        let s = &mut self.seeded;
        let event = Event {
            event_id: String::new(),
            partner_id: PARTNER,
            subsystem_id: self.subsystems[s.zipf(&self.laws.small) % 3],
            event_type: seeded::event_type(s).to_string(),
            timestamp: Utc::now(),
            received_at: Utc::now(),
            user_id: Some(seeded::user(s)),
            anonymous_id: None,
            properties: JsonObject::empty(),
            context: JsonObject::empty(),
            is_valid: true,
            validation_errors: Vec::new(),
            correlation_id: String::new(),
            enrichment: Some(seeded::enrichment(s, &self.laws)),
            client_event_id: false,
        };
        let actor = ActorSketch::coupon(event.actor().expect("a user"));
        (dimension_values(&event, &[]), actor)
    }
}

fn delta_of(hour: Hour, events: &[(DimensionValues, Coupon)]) -> BreakdownDelta {
    let mut delta = BreakdownDelta::default();
    for (values, actor) in events {
        delta.add(PARTNER, hour, Some(*actor), values);
    }
    delta
}

/// Row key bytes a store adds per stored table: partner, hour, partition, dimension and
/// a filter value (a store's own layout decides; this is its order of size).
const KEY_BYTES: usize = 16 + 4 + 1 + 2 + 12;

/// Encoded bytes of one seeded day's breakdown tables, per event: each hour's cells
/// written at the live cap and sealed, and the day's, as a store ends up keeping them.
fn disk_per_event() {
    let mut events = SeededEvents::new();
    let day_start = 490_000 * 24;
    let mut days: HashMap<CellKey, ValueTable> = HashMap::new();
    let (mut hour_bytes, mut hour_rows, mut largest) = (0usize, 0usize, 0usize);
    for hour in (0..24).map(|n| Hour(day_start + n)) {
        let batch: Vec<(DimensionValues, Coupon)> =
            (0..EVENTS_PER_HOUR).map(|_| events.next()).collect();
        let delta = delta_of(hour, &batch);
        for (_, counts) in delta.cells() {
            let mut table = ValueTable::default();
            table.absorb(&counts, LIVE_VALUE_CAP).expect("absorbs");
            table.seal(VALUE_CAP).expect("seals");
            let bytes = table.to_bytes().len();
            largest = largest.max(bytes);
            hour_bytes += bytes + KEY_BYTES;
            hour_rows += 1;
        }
        for (key, counts) in &delta.by_day() {
            let table = days.entry(key.clone()).or_default();
            table.absorb(counts, LIVE_VALUE_CAP).expect("absorbs");
        }
    }
    let mut day_bytes = 0;
    for table in days.values_mut() {
        table.seal(VALUE_CAP).expect("seals");
        let bytes = table.to_bytes().len();
        largest = largest.max(bytes);
        day_bytes += bytes + KEY_BYTES;
    }
    let events = (EVENTS_PER_HOUR * 24) as f64;
    println!(
        "seeded day: {} events; hour tables {hour_rows} rows, {:.1} B/event; day tables {} rows, {:.1} B/event; total {:.1} B/event; largest table {largest} B",
        events,
        hour_bytes as f64 / events,
        days.len(),
        day_bytes as f64 / events,
        (hour_bytes + day_bytes) as f64 / events,
    );
}

fn breakdown_rollups(criterion: &mut Criterion) {
    disk_per_event();
    let mut events = SeededEvents::new();
    let hour = Hour(490_000 * 24);
    let batches: Vec<Vec<(DimensionValues, Coupon)>> = (0..50)
        .map(|_| (0..100).map(|_| events.next()).collect())
        .collect();
    let mut group = criterion.benchmark_group("breakdown");
    group.throughput(Throughput::Elements(100));
    let mut next = 0;
    group.bench_function("delta_add_batch_of_100", |bench| {
        bench.iter(|| {
            next = (next + 1) % batches.len();
            black_box(delta_of(hour, &batches[next]))
        })
    });

    // The fold's case: one delta over a whole seeded hour, where values repeat.
    let hour_events: Vec<(DimensionValues, Coupon)> =
        (0..EVENTS_PER_HOUR).map(|_| events.next()).collect();
    group.throughput(Throughput::Elements(EVENTS_PER_HOUR as u64));
    group.bench_function("delta_add_hour", |bench| {
        bench.iter(|| black_box(delta_of(hour, &hour_events)))
    });
    group.throughput(Throughput::Elements(100));

    // An hour already holding its first 40 minutes, as a store's tables would.
    let mut stored: HashMap<CellKey, ValueTable> = HashMap::new();
    let earlier: Vec<(DimensionValues, Coupon)> = (0..EVENTS_PER_HOUR * 2 / 3)
        .map(|_| events.next())
        .collect();
    for (key, counts) in delta_of(hour, &earlier).cells() {
        let mut table = ValueTable::default();
        table.absorb(&counts, LIVE_VALUE_CAP).expect("absorbs");
        stored.insert(key, table);
    }
    let deltas: Vec<BreakdownDelta> = batches.iter().map(|batch| delta_of(hour, batch)).collect();
    // In place: the hour's tables keep growing, as they do while the hour takes events.
    group.bench_function("absorb_batch_of_100", |bench| {
        bench.iter(|| {
            next = (next + 1) % deltas.len();
            for (key, counts) in deltas[next].cells() {
                let table = stored.entry(key).or_default();
                table.absorb(&counts, LIVE_VALUE_CAP).expect("absorbs");
            }
        })
    });
    group.finish();
}

criterion_group!(benches, breakdown_rollups);
criterion_main!(benches);
