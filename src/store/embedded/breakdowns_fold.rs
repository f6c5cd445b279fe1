//! Folding breakdown cells by recount (`breakdowns` has the tables): a settle round folds
//! each marked hour whose last write is older than the horizon, then each pending UTC day
//! that has ended with all its hours folded (`breakdowns_repair` rebuilds and verifies
//! with the same recount and `replace`).
//! A fold recounts from a read transaction, then writes in a write transaction that first
//! checks the stamp it read is still there: one process writes the file, so nothing but a
//! write into that hour can come between.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use redb::{Database, ReadableDatabase, ReadableTable};
use uuid::Uuid;

use super::breakdowns::{decode_stamp, hour_at, marked_hours, micros, owner_of};
use super::breakdowns_day_fold::fold_ended_day;
use super::breakdowns_write::{DaySketches, write_day, write_hour};
use super::joins::Resolver;
use super::rollups_repair::{Readable, day_after};
use super::{
    BREAKDOWN_DAYS_PENDING, BREAKDOWN_MARKS, EVENTS_BY_PARTNER, PARTNERS, PEOPLE_JOINS, from_json,
    keys, rows, storage_error,
};
use crate::model::Partner;
use crate::rollups::{BreakdownRecount, Hour, RollupDelta, SettleOutcome};
use crate::store::StoreError;

/// The partner's declared property dimensions (none for a partner that is gone).
pub(super) fn declared(partners: &impl Readable, partner: Uuid) -> Result<Vec<String>, StoreError> {
    match partners
        .get(partner.as_bytes().as_slice())
        .map_err(storage_error)?
    {
        Some(bytes) => Ok(from_json::<Partner>(bytes.value())?.dimensions),
        None => Ok(Vec::new()),
    }
}

/// A recount of some hours' events: their breakdowns, their rollups when asked for, and
/// the anonymous ids no join names, with the hours they were seen in.
pub(super) struct Recount {
    pub(super) breakdowns: BreakdownRecount,
    pub(super) rollups: Option<RollupDelta>,
    unjoined: HashMap<String, BTreeSet<Hour>>,
}

impl Recount {
    /// The anonymous ids no join names among `hour`'s events.
    pub(super) fn unjoined_in(&self, hour: Hour) -> Vec<String> {
        self.unjoined
            .iter()
            .filter(|(_, hours)| hours.contains(&hour))
            .map(|(anonymous, _)| anonymous.clone())
            .collect()
    }
}

/// A recount of the partner's stored events in hours `from..to`, each counted as its
/// person (`joins::Resolver` over `people_joins`); their payload is read only when
/// properties are declared (the breakdowns need it then). With `sketches`, their rollups
/// too (an hour's fold rewrites the hour's unique-user sketches).
pub(super) fn recount<J: Readable>(
    (events, resolver): (&impl Readable, &mut Resolver<'_, J>),
    partner: Uuid,
    (from, to): (Hour, Hour),
    declared: &[String],
    sketches: bool,
) -> Result<Recount, StoreError> {
    let range = keys::time_range(partner, from.start(), to.start(), None)?;
    let mut recount = Recount {
        breakdowns: BreakdownRecount::default(),
        rollups: sketches.then(RollupDelta::default),
        unjoined: HashMap::new(),
    };
    for row in events
        .range::<&[u8]>(keys::borrowed(&range))
        .map_err(storage_error)?
    {
        let (key, value) = row.map_err(storage_error)?;
        let (micros, id_bytes) = keys::split_event_key(key.value())?;
        let parts = rows::KeyParts {
            partner_id: partner,
            micros,
            event_id: rows::event_id_from_bytes(id_bytes)?,
        };
        let mut event = rows::decode(parts, value.value(), !declared.is_empty())?;
        resolver.resolve(&mut event)?;
        if let (None, Some(anonymous)) = (&event.user_id, &event.anonymous_id) {
            let hour = Hour::of(event.timestamp);
            match recount.unjoined.get_mut(anonymous) {
                Some(hours) => drop(hours.insert(hour)),
                None => drop(recount.unjoined.insert(anonymous.clone(), [hour].into())),
            }
        }
        recount.breakdowns.add(&event, declared);
        if let Some(rollups) = &mut recount.rollups {
            rollups.add(&event);
        }
    }
    Ok(recount)
}

/// A recount of hours `range` from a read transaction, with their rollups (a fold
/// rewrites the hours' and days' unique-user sketches).
pub(super) fn recounted(
    transaction: &redb::ReadTransaction,
    partner: Uuid,
    range: (Hour, Hour),
    declared: &[String],
) -> Result<Recount, StoreError> {
    let events = transaction
        .open_table(EVENTS_BY_PARTNER)
        .map_err(storage_error)?;
    let joins = transaction
        .open_table(PEOPLE_JOINS)
        .map_err(storage_error)?;
    let mut resolver = Resolver::new(&joins);
    recount((&events, &mut resolver), partner, range, declared, true)
}

/// Every (partner, hour, stamp) of a stamp table.
fn stamps(
    transaction: &redb::ReadTransaction,
    table: super::Table,
) -> Result<Vec<(Uuid, Hour, u64)>, StoreError> {
    let table = transaction.open_table(table).map_err(storage_error)?;
    let mut found = Vec::new();
    for row in table.iter().map_err(storage_error)? {
        let (key, value) = row.map_err(storage_error)?;
        let key = key.value();
        found.push((
            owner_of(key)?,
            hour_at(key, 0)?,
            decode_stamp(value.value())?,
        ));
    }
    Ok(found)
}

/// One settle round as of `now`: `folded` counts hours and days recounted, `waiting` the
/// marked hours younger than `settle` and the pending days not ready (not ended, or with
/// hours still to fold), `failed` the folds that failed (logged, retried next round).
pub(super) fn settle(
    database: &Database,
    now: DateTime<Utc>,
    settle: Duration,
) -> Result<SettleOutcome, StoreError> {
    // A stamp at or before `now - settle` is settled (a settle past chrono's range: none).
    let horizon = chrono::Duration::from_std(settle)
        .ok()
        .and_then(|settle| now.checked_sub_signed(settle))
        .map_or(0, micros);
    let mut outcome = SettleOutcome::default();
    let mut declared_of: HashMap<Uuid, Vec<String>> = HashMap::new();
    let marks = stamps(
        &database.begin_read().map_err(storage_error)?,
        BREAKDOWN_MARKS,
    )?;
    // An ended day's marked hours and the day itself, from one recount of the day.
    let ended: BTreeSet<(Uuid, Hour)> = marks
        .iter()
        .filter(|(_, hour, _)| day_after(hour.day()).start() <= now)
        .map(|(partner, hour, _)| (*partner, hour.day()))
        .collect();
    let mut whole_days = BTreeSet::new();
    for (partner, day) in ended {
        match fold_ended_day(database, partner, day, horizon, &mut declared_of) {
            Ok(None) => continue,
            Ok(Some(folded)) => outcome.folded += folded.folds,
            Err(error) => {
                outcome.failed += 1;
                tracing::warn!(%error, %partner, day = day.0, "folding a day's breakdown cells failed; retrying next round");
            }
        }
        whole_days.insert((partner, day));
    }
    for (partner, hour, mark) in marks {
        if whole_days.contains(&(partner, hour.day())) {
            continue;
        }
        if mark > horizon {
            outcome.waiting += 1;
            continue;
        }
        let folded = fold_hour(database, partner, hour, mark, &mut declared_of);
        count(&mut outcome, folded, partner, hour, "hour");
    }
    let pending = stamps(
        &database.begin_read().map_err(storage_error)?,
        BREAKDOWN_DAYS_PENDING,
    )?;
    for (partner, day, pending) in pending {
        if now < day_after(day).start() {
            outcome.waiting += 1;
            continue;
        }
        let folded = fold_day(database, partner, day, pending, &mut declared_of);
        count(&mut outcome, folded, partner, day, "day");
    }
    Ok(outcome)
}

fn count(
    outcome: &mut SettleOutcome,
    folded: Result<bool, StoreError>,
    partner: Uuid,
    hour: Hour,
    grain: &str,
) {
    match folded {
        Ok(true) => outcome.folded += 1,
        Ok(false) => outcome.waiting += 1,
        Err(error) => {
            outcome.failed += 1;
            tracing::warn!(%error, %partner, hour = hour.0, grain, "folding breakdown cells failed; retrying next round");
        }
    }
}

pub(super) fn declared_cached(
    transaction: &redb::ReadTransaction,
    partner: Uuid,
    cache: &mut HashMap<Uuid, Vec<String>>,
) -> Result<Vec<String>, StoreError> {
    if let Some(declared) = cache.get(&partner) {
        return Ok(declared.clone());
    }
    let partners = transaction.open_table(PARTNERS).map_err(storage_error)?;
    let found = declared(&partners, partner)?;
    cache.insert(partner, found.clone());
    Ok(found)
}

/// Folds one marked hour whose stamp was `mark`; false when a write touched it meanwhile.
pub(super) fn fold_hour(
    database: &Database,
    partner: Uuid,
    hour: Hour,
    mark: u64,
    cache: &mut HashMap<Uuid, Vec<String>>,
) -> Result<bool, StoreError> {
    let (recount, declared) = {
        let transaction = database.begin_read().map_err(storage_error)?;
        let declared = declared_cached(&transaction, partner, cache)?;
        let range = (hour, hour.next());
        (
            recounted(&transaction, partner, range, &declared)?,
            declared,
        )
    };
    let cells = recount.breakdowns.hour_cells(&declared);
    let hour = (hour, mark);
    let written = write_hour(
        database,
        partner,
        hour,
        (&recount, &cells),
        DaySketches::Refresh,
    )?;
    Ok(written.is_some())
}

/// Folds one ended day from a recount of its events (never merged from its sealed hours,
/// which would lose its exact top values); false while one of its hours is marked or one
/// was refolded meanwhile.
pub(super) fn fold_day(
    database: &Database,
    partner: Uuid,
    day: Hour,
    pending: u64,
    cache: &mut HashMap<Uuid, Vec<String>>,
) -> Result<bool, StoreError> {
    let (recount, declared) = {
        let transaction = database.begin_read().map_err(storage_error)?;
        let marks = transaction
            .open_table(BREAKDOWN_MARKS)
            .map_err(storage_error)?;
        if !marked_hours(&marks, partner, day, day_after(day))?.is_empty() {
            return Ok(false);
        }
        let declared = declared_cached(&transaction, partner, cache)?;
        let range = (day, day_after(day));
        (
            recounted(&transaction, partner, range, &declared)?,
            declared,
        )
    };
    write_day(database, partner, (day, pending), &recount, &declared)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollups::{CellName, Cells};
    use crate::store::embedded::breakdowns::{
        BREAKDOWN_ROW_BYTES, Grain, cell_prefix, fold_key, hour_key,
    };
    use crate::store::embedded::breakdowns_write::{encode_cells, replace};
    use crate::store::embedded::{BREAKDOWN_CELLS, BREAKDOWN_FOLDS};
    use std::collections::BTreeMap;

    use crate::model::test_support::{sample_event, sample_partner};
    use crate::model::{Enrichment, Event, JsonObject};
    use crate::rollups::{BreakdownQuery, Cell, KeptValue, ValueTable};
    use crate::store::embedded::EmbeddedStore;
    use crate::store::{BreakdownStore, EventStore, MetadataStore, RollupStore};

    fn event_at(partner: Uuid, id: &str, at: &str, page: &str) -> Event {
        let mut event = sample_event(id);
        event.partner_id = partner;
        event.timestamp = at.parse().unwrap();
        event.enrichment = Some(Enrichment {
            page: Some(page.into()),
            ..Enrichment::default()
        });
        event
    }

    fn mark_of(store: &EmbeddedStore, partner: Uuid, hour: Hour) -> Option<u64> {
        let transaction = store.database.begin_read().unwrap();
        let marks = transaction.open_table(BREAKDOWN_MARKS).unwrap();
        let stamp = marks.get(hour_key(partner, hour).as_slice()).unwrap();
        stamp.map(|stamp| decode_stamp(stamp.value()).unwrap())
    }

    fn later() -> DateTime<Utc> {
        Utc::now() + chrono::Duration::minutes(3)
    }

    #[tokio::test]
    async fn a_fold_leaves_an_hour_written_to_after_it_read_the_mark_unsettled() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let partner = Uuid::now_v7();
        let at = "2026-11-20T10:05:00Z";
        let hour = Hour::of(at.parse().unwrap());
        store
            .write_events(&[event_at(partner, "first", at, "/a")])
            .await
            .unwrap();
        let read = mark_of(&store, partner, hour).expect("marked");
        store
            .write_events(&[event_at(partner, "second", at, "/a")])
            .await
            .unwrap();
        let written = mark_of(&store, partner, hour).expect("still marked");
        assert!(written > read, "every touch changes the stamp");

        let mut cache = HashMap::new();
        let stale = fold_hour(&store.database, partner, hour, read, &mut cache).unwrap();
        assert!(!stale, "a fold that read an older stamp writes nothing");
        assert_eq!(mark_of(&store, partner, hour), Some(written));
        assert!(fold_hour(&store.database, partner, hour, written, &mut cache).unwrap());
        assert_eq!(mark_of(&store, partner, hour), None);
    }

    #[tokio::test]
    async fn declared_properties_are_folded_under_their_names() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let mut partner = sample_partner();
        partner.dimensions = vec!["plan".into()];
        store.insert_partner(&partner).await.unwrap();
        let events: Vec<Event> = ["pro", "pro", "pro", "free", "free"]
            .iter()
            .enumerate()
            .map(|(n, plan)| {
                let mut event = event_at(partner.id, &format!("e{n}"), "2026-11-20T10:00:00Z", "/");
                event.properties = JsonObject::parse(format!(r#"{{"plan":"{plan}"}}"#)).unwrap();
                event
            })
            .collect();
        store.write_events(&events).await.unwrap();
        store.settle_rollups(later()).await.unwrap();
        let day = Hour::of("2026-11-20T00:00:00Z".parse().unwrap());
        let query = BreakdownQuery {
            partner_id: partner.id,
            names: vec![CellName {
                bots: false,
                filter: None,
                dimension: "properties.plan".into(),
            }],
            from: day,
            to: Hour(day.0 + 24),
            whole_days: [day].into(),
        };
        let read = store.breakdown_cells(&query).await.unwrap();
        assert_eq!(read.tables[0].len(), 1);
        let values = read.tables[0][0].1.decode().unwrap().values;
        assert_eq!((values["pro"].events, values["free"].events), (3, 2));
    }

    #[test]
    fn a_table_past_the_row_limit_is_stored_in_parts_and_read_back_whole() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let (partner, hour) = (Uuid::now_v7(), Hour(500_000));
        let mut table = ValueTable::default();
        for n in 0..1_000u64 {
            let kept = KeptValue {
                events: n + 1,
                ..KeptValue::default()
            };
            table.values.insert(format!("/{n:0>600}"), kept);
        }
        let name = CellName {
            bots: false,
            filter: None,
            dimension: "page".into(),
        };
        let tables = Cells::from([((hour, name.clone()), Cell::Table(table.clone()))]);
        let transaction = store.database.begin_write().unwrap();
        let encoded = encode_cells(&tables, hour).unwrap();
        replace(&transaction, partner, Grain::Hour, hour, &encoded).unwrap();
        transaction.commit().unwrap();

        let transaction = store.database.begin_read().unwrap();
        let cells = transaction.open_table(BREAKDOWN_CELLS).unwrap();
        let prefix = cell_prefix(partner, Grain::Hour, &name.to_bytes());
        let rows = cells.iter().unwrap().count();
        assert!(rows >= 3, "600 KB in rows of at most 256 KiB: {rows} rows");
        for row in cells.iter().unwrap() {
            assert!(row.unwrap().1.value().len() <= BREAKDOWN_ROW_BYTES);
        }
        let read =
            crate::store::embedded::breakdowns::read_cell(&cells, &prefix, hour, hour.next());
        assert_eq!(read.unwrap(), BTreeMap::from([(hour, table)]));
    }

    #[allow(dead_code, reason = "each includer uses a part")]
    mod seeded {
        include!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/seeded.rs"
        ));
    }

    use crate::model::DeviceType;
    use seeded::{Laws, Seeded};

    fn seeded_event(s: &mut Seeded, laws: &Laws, partner: Uuid, n: usize, hour: Hour) -> Event {
        let mut event = sample_event(&format!("s{n}"));
        event.partner_id = partner;
        event.subsystem_id = Uuid::from_u128(s.zipf(&laws.small) as u128 % 3 + 1);
        event.event_type = seeded::event_type(s).into();
        event.timestamp = hour.start() + chrono::Duration::milliseconds(n as i64 * 250);
        event.user_id = Some(seeded::user(s));
        event.enrichment = Some(seeded::enrichment(s, laws));
        event
    }

    /// The disk figure of docs/BREAKDOWNS.md as this store keeps it (printed; run with
    /// `--nocapture`): keys and values of one seeded hour's cells and fold record.
    #[tokio::test]
    async fn a_seeded_hours_cells_take_a_few_hundred_bytes_per_event() {
        const EVENTS: usize = 10_000_000 / (30 * 24);
        let dir = tempfile::TempDir::new().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let partner = Uuid::now_v7();
        let hour = Hour::of("2026-11-20T10:00:00Z".parse().unwrap());
        let (mut seeded, laws) = (Seeded(25), Laws::new());
        let events: Vec<Event> = (0..EVENTS)
            .map(|n| seeded_event(&mut seeded, &laws, partner, n, hour))
            .collect();
        for batch in events.chunks(1_000) {
            store.write_events(batch).await.unwrap();
        }
        let outcome = store.settle_rollups(later()).await.unwrap();
        assert_eq!(outcome.folded, 2, "the hour and its day");

        let transaction = store.database.begin_read().unwrap();
        let cells = transaction.open_table(BREAKDOWN_CELLS).unwrap();
        let (mut bytes, mut rows, mut largest) = ([0usize; 2], [0usize; 2], 0);
        for row in cells.iter().unwrap() {
            let (key, value) = row.unwrap();
            let grain = usize::from(key.value()[16]);
            bytes[grain] += key.value().len() + value.value().len();
            rows[grain] += 1;
            largest = largest.max(value.value().len());
        }
        let folds = transaction.open_table(BREAKDOWN_FOLDS).unwrap();
        let record = folds
            .get(fold_key(partner, Grain::Hour, hour).as_slice())
            .unwrap();
        let record = record.unwrap().value().len();
        let per_event = (bytes[0] + record) as f64 / EVENTS as f64;
        println!(
            "seeded hour: {EVENTS} events; hour cells {} rows, {} B + fold record {record} B = \
             {per_event:.1} B/event; its day's cells {} rows, {:.1} B/event; largest row {largest} B",
            rows[0],
            bytes[0],
            rows[1],
            bytes[1] as f64 / EVENTS as f64,
        );
        let stats = redb::ReadableTableMetadata::stats(&cells).unwrap();
        let pages = stats.stored_bytes() + stats.metadata_bytes() + stats.fragmented_bytes();
        println!(
            "in redb pages, hour and day cells: {pages} B ({:.1} B/event for both)",
            pages as f64 / EVENTS as f64
        );
        assert!(per_event < 1_000.0, "{per_event:.1} B/event");
        assert!(largest <= BREAKDOWN_ROW_BYTES);
    }
}
