//! Rebuilding and verifying breakdown cells from the stored events: `rollups rebuild`
//! refolds whole partner-days in the transactions that rebuild their counts
//! (`rollups_repair::rebuild_day`), and `verify` recounts the folded hours and current
//! days of a range against their stored cells.

use redb::WriteTransaction;
use uuid::Uuid;

use super::breakdowns::{
    Grain, cell_prefix, day_current, fold_key, hour_at, hour_key, marked_hours, read_encoded_cell,
};
use super::breakdowns_fold::{declared, recount};
use super::breakdowns_write::{encode_cells, replace};
use super::joins::Resolver;
use super::rollups_repair::{Readable, day_after};
use super::{
    BREAKDOWN_CELLS, BREAKDOWN_DAYS_PENDING, BREAKDOWN_FOLDS, BREAKDOWN_MARKS, EVENTS_BY_PARTNER,
    PARTNERS, PEOPLE_JOINS, storage_error,
};
use crate::rollups::{BreakdownDifference, Cell, CellName, Cells, Hour, check_tables};
use crate::store::StoreError;

/// `rollups rebuild` of one partner-day, in the caller's transaction (with the day's
/// counts): every hour of the day and the day itself refolded from the events, their
/// marks and pending state cleared. A report reading meanwhile sees the day as it was
/// before the transaction or as rebuilt, never a mix; across days, some days rebuilt
/// and the later ones not yet.
pub(super) fn rebuild_day(
    transaction: &WriteTransaction,
    partner: Uuid,
    day: Hour,
) -> Result<(), StoreError> {
    let (hours, days) = {
        let partners = transaction.open_table(PARTNERS).map_err(storage_error)?;
        let declared = declared(&partners, partner)?;
        let events = transaction
            .open_table(EVENTS_BY_PARTNER)
            .map_err(storage_error)?;
        let joins = transaction
            .open_table(PEOPLE_JOINS)
            .map_err(storage_error)?;
        let range = (day, day_after(day));
        let mut resolver = Resolver::new(&joins);
        let recount =
            recount((&events, &mut resolver), partner, range, &declared, false)?.breakdowns;
        (recount.hour_cells(&declared), recount.day_cells(&declared))
    };
    let mut hour = day;
    while hour < day_after(day) {
        replace(
            transaction,
            partner,
            Grain::Hour,
            hour,
            &encode_cells(&hours, hour)?,
        )?;
        hour = hour.next();
    }
    replace(
        transaction,
        partner,
        Grain::Day,
        day,
        &encode_cells(&days, day)?,
    )?;
    let (start, end) = (hour_key(partner, day), hour_key(partner, day_after(day)));
    transaction
        .open_table(BREAKDOWN_MARKS)
        .map_err(storage_error)?
        .retain_in::<&[u8], _>(start.as_slice()..end.as_slice(), |_, _| false)
        .map_err(storage_error)?;
    transaction
        .open_table(BREAKDOWN_DAYS_PENDING)
        .map_err(storage_error)?
        .remove(start.as_slice())
        .map_err(storage_error)?;
    // The rebuild recounts the day's sketches as people (`rollups_repair::rebuild_day`).
    super::anonymous_hours::recounted(transaction, partner, (day, day_after(day)))?;
    Ok(())
}

/// The stored cells of one folded hour (or day), by (hour, name).
fn stored_tables(
    cells: &impl Readable,
    folds: &impl Readable,
    partner: Uuid,
    grain: Grain,
    hour: Hour,
) -> Result<Cells, StoreError> {
    let mut tables = Cells::new();
    let Some(names) = folds
        .get(fold_key(partner, grain, hour).as_slice())
        .map_err(storage_error)?
    else {
        return Ok(tables);
    };
    let names: Vec<Vec<u8>> = postcard::from_bytes(names.value())
        .map_err(|error| StoreError::Corrupt(error.to_string()))?;
    for name in names {
        let prefix = cell_prefix(partner, grain, &name);
        let cell = CellName::from_bytes(&name).map_err(StoreError::Corrupt)?;
        for (_, encoded) in read_encoded_cell(cells, &prefix, hour, hour.next())? {
            let stored = Cell::decode(&cell, &encoded).map_err(StoreError::Corrupt)?;
            tables.insert((hour, cell.clone()), stored);
        }
    }
    Ok(tables)
}

/// The folded hours of `from..to`, and the current days wholly inside it, whose stored
/// cells a recount of their events contradicts; unfolded hours are left out.
pub(super) fn verify(
    transaction: &redb::ReadTransaction,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<Vec<BreakdownDifference>, StoreError> {
    let open = |table| transaction.open_table(table).map_err(storage_error);
    let (cells, folds, marks) = (
        open(BREAKDOWN_CELLS)?,
        open(BREAKDOWN_FOLDS)?,
        open(BREAKDOWN_MARKS)?,
    );
    let (events, pending) = (open(EVENTS_BY_PARTNER)?, open(BREAKDOWN_DAYS_PENDING)?);
    let joins = open(PEOPLE_JOINS)?;
    let declared = declared(&open(PARTNERS)?, partner)?;
    let unsettled = marked_hours(&marks, partner, from, to)?;
    let mut found = Vec::new();
    for (grain, hours, start) in [(Grain::Hour, 1, from), (Grain::Day, 24, from.day())] {
        let (first, past) = (
            fold_key(partner, grain, start),
            fold_key(partner, grain, to),
        );
        for row in folds
            .range::<&[u8]>(first.as_slice()..past.as_slice())
            .map_err(storage_error)?
        {
            let hour = hour_at(row.map_err(storage_error)?.0.value(), 0)?;
            let wanted = match grain {
                Grain::Hour => !unsettled.contains(&hour),
                Grain::Day => {
                    from <= hour
                        && day_after(hour) <= to
                        && day_current(&folds, &pending, &marks, partner, hour)?
                }
            };
            if !wanted {
                continue;
            }
            let stored = stored_tables(&cells, &folds, partner, grain, hour)?;
            let end = match grain {
                Grain::Hour => hour.next(),
                Grain::Day => day_after(hour),
            };
            let mut resolver = Resolver::new(&joins);
            let range = (hour, end);
            let recount =
                recount((&events, &mut resolver), partner, range, &declared, false)?.breakdowns;
            let recounted = match grain {
                Grain::Hour => recount.hour_counts(&declared),
                Grain::Day => recount.day_counts(&declared),
            };
            found.extend(check_tables(partner, hours, &stored, &recounted));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use redb::ReadableTable;

    use super::*;
    use crate::model::test_support::sample_event;
    use crate::model::{Enrichment, Event};
    use crate::rollups::{BreakdownQuery, ValueTable};
    use crate::store::embedded::EmbeddedStore;
    use crate::store::embedded::breakdowns::cell_key;
    use crate::store::embedded::keys;
    use crate::store::{BreakdownStore, EventStore, RollupStore};

    fn page_cell() -> CellName {
        CellName {
            bots: false,
            filter: None,
            dimension: "page".into(),
        }
    }

    async fn day_counts(store: &EmbeddedStore, partner: Uuid, day: Hour) -> Vec<(String, u64)> {
        let query = BreakdownQuery {
            partner_id: partner,
            names: vec![page_cell()],
            from: day,
            to: day_after(day),
            whole_days: [day].into(),
        };
        let read = store.breakdown_cells(&query).await.unwrap();
        assert_eq!(read.tables[0].len(), 1, "one day table");
        let table = read.tables[0][0].1.decode().unwrap();
        table
            .values
            .iter()
            .map(|(v, kept)| (v.clone(), kept.events))
            .collect()
    }

    #[tokio::test]
    async fn verify_catches_a_tampered_or_deleted_cell_and_a_rebuild_restores_them() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let partner = Uuid::now_v7();
        let ten: DateTime<Utc> = "2026-11-20T10:00:00Z".parse().unwrap();
        let events: Vec<Event> = (0..20)
            .map(|n| {
                let mut event = sample_event(&format!("e{n}"));
                event.partner_id = partner;
                event.timestamp = ten + chrono::Duration::minutes(n);
                event.enrichment = Some(Enrichment {
                    page: Some(["/a", "/b"][n as usize % 2].into()),
                    ..Enrichment::default()
                });
                event
            })
            .collect();
        store.write_events(&events).await.unwrap();
        store
            .settle_rollups(Utc::now() + chrono::Duration::minutes(3))
            .await
            .unwrap();
        let (hour, day) = (Hour::of(ten), Hour::of(ten).day());
        let (from, to) = (day, day_after(day));
        assert_eq!(
            store.verify_breakdowns(partner, from, to).await.unwrap(),
            []
        );
        let original = day_counts(&store, partner, day).await;

        let prefix = cell_prefix(partner, Grain::Hour, &page_cell().to_bytes());
        let key = cell_key(&prefix, hour, 0);
        let transaction = store.database.begin_write().unwrap();
        {
            let mut cells = transaction.open_table(BREAKDOWN_CELLS).unwrap();
            let stored = cells.get(key.as_slice()).unwrap().unwrap().value().to_vec();
            let mut table = ValueTable::from_bytes(&stored).unwrap();
            table.values.get_mut("/a").unwrap().events += 5;
            cells
                .insert(key.as_slice(), table.to_bytes().as_slice())
                .unwrap();
        }
        transaction.commit().unwrap();
        let found = store.verify_breakdowns(partner, from, to).await.unwrap();
        let cells: Vec<_> = found
            .iter()
            .map(|d| (d.hour, d.hours, d.cell.clone()))
            .collect();
        assert_eq!(cells, [(hour, 1, page_cell())]);

        // Every day cell of the partner gone, its fold record kept.
        let transaction = store.database.begin_write().unwrap();
        let (start, end) = (
            keys::prefixed(partner, &[Grain::Day as u8]),
            keys::prefixed(partner, &[Grain::Day as u8 + 1]),
        );
        transaction
            .open_table(BREAKDOWN_CELLS)
            .unwrap()
            .retain_in::<&[u8], _>(start.as_slice()..end.as_slice(), |_, _| false)
            .unwrap();
        transaction.commit().unwrap();
        let found = store.verify_breakdowns(partner, from, to).await.unwrap();
        assert!(found.iter().any(|d| d.hours == 24 && d.cell == page_cell()));

        assert_eq!(store.rebuild_rollups(partner, from, to).await.unwrap(), 20);
        assert_eq!(
            store.verify_breakdowns(partner, from, to).await.unwrap(),
            []
        );
        assert_eq!(day_counts(&store, partner, day).await, original);
    }
}
