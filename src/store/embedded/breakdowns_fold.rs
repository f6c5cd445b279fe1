//! Folding breakdown cells by recount (`breakdowns` has the tables): a settle round folds
//! each marked hour whose last write is older than the horizon, then each pending UTC day
//! that has ended with all its hours folded; `rollups rebuild` refolds whole days in its
//! own transactions (`rebuild_day`), and `verify` compares stored cells with a recount.
//! A fold recounts from a read transaction, then writes in a write transaction that first
//! checks the stamp it read is still there: one process writes the file, so nothing but a
//! write into that hour can come between.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};
use uuid::Uuid;

use super::breakdowns::{
    BREAKDOWN_ROW_BYTES, Grain, cell_key, cell_prefix, day_current, decode_stamp, fold_key,
    hour_at, hour_key, marked_hours, micros, owner_of, read_cell, stamp,
};
use super::rollups_repair::{Readable, day_after};
use super::{
    BREAKDOWN_CELLS, BREAKDOWN_DAYS_PENDING, BREAKDOWN_FOLDS, BREAKDOWN_MARKS, EVENTS_BY_PARTNER,
    PARTNERS, from_json, keys, rows, storage_error,
};
use crate::model::Partner;
use crate::rollups::{
    BreakdownDifference, BreakdownRecount, CellName, Hour, SettleOutcome, ValueTable, check_tables,
};
use crate::store::StoreError;

/// The tables of one hour (or day) by cell.
type Tables = BTreeMap<(Hour, CellName), ValueTable>;

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

/// A recount of the partner's stored events in hours `from..to`; their payload is read
/// only when properties are declared (the breakdowns need it then).
pub(super) fn recount(
    events: &impl Readable,
    partner: Uuid,
    (from, to): (Hour, Hour),
    declared: &[String],
) -> Result<BreakdownRecount, StoreError> {
    let range = keys::time_range(partner, from.start(), to.start(), None)?;
    let mut recount = BreakdownRecount::default();
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
        let event = rows::decode(parts, value.value(), !declared.is_empty())?;
        recount.add(&event, declared);
    }
    Ok(recount)
}

/// Replaces every stored cell of one hour (or day) with `tables`' cells of it, each cut
/// into rows of at most `BREAKDOWN_ROW_BYTES`, and records which cells it holds.
pub(super) fn replace(
    transaction: &WriteTransaction,
    partner: Uuid,
    grain: Grain,
    hour: Hour,
    tables: &Tables,
) -> Result<(), StoreError> {
    let mut folds = transaction
        .open_table(BREAKDOWN_FOLDS)
        .map_err(storage_error)?;
    let mut cells = transaction
        .open_table(BREAKDOWN_CELLS)
        .map_err(storage_error)?;
    let fold = fold_key(partner, grain, hour);
    let stored: Vec<Vec<u8>> = match folds.get(fold.as_slice()).map_err(storage_error)? {
        Some(names) => postcard::from_bytes(names.value())
            .map_err(|error| StoreError::Corrupt(error.to_string()))?,
        None => Vec::new(),
    };
    for name in stored {
        let prefix = cell_prefix(partner, grain, &name);
        let (start, end) = (
            cell_key(&prefix, hour, 0),
            cell_key(&prefix, hour.next(), 0),
        );
        cells
            .retain_in::<&[u8], _>(start.as_slice()..end.as_slice(), |_, _| false)
            .map_err(storage_error)?;
    }
    let mut names = Vec::new();
    let first = CellName {
        bots: false,
        filter: None,
        dimension: String::new(),
    };
    let of_hour = tables
        .range((hour, first)..)
        .take_while(|((at, _), _)| *at == hour);
    for ((_, name), table) in of_hour {
        let name = name.to_bytes();
        let prefix = cell_prefix(partner, grain, &name);
        for (part, piece) in table.split(BREAKDOWN_ROW_BYTES).iter().enumerate() {
            let part = u16::try_from(part).map_err(|_| {
                StoreError::Corrupt("a breakdown cell of more than 65,536 rows".into())
            })?;
            cells
                .insert(
                    cell_key(&prefix, hour, part).as_slice(),
                    piece.to_bytes().as_slice(),
                )
                .map_err(storage_error)?;
        }
        names.push(name);
    }
    if names.is_empty() {
        folds.remove(fold.as_slice()).map_err(storage_error)?;
    } else {
        let encoded = postcard::to_stdvec(&names).expect("byte strings always encode");
        folds
            .insert(fold.as_slice(), encoded.as_slice())
            .map_err(storage_error)?;
    }
    Ok(())
}

/// Removes the stamp at `key` if it is still `expected`; whether it was.
fn take_stamp(
    transaction: &WriteTransaction,
    table: super::Table,
    key: &[u8],
    expected: u64,
) -> Result<bool, StoreError> {
    let mut table = transaction.open_table(table).map_err(storage_error)?;
    let current = match table.get(key).map_err(storage_error)? {
        Some(stored) => Some(decode_stamp(stored.value())?),
        None => None,
    };
    if current != Some(expected) {
        return Ok(false);
    }
    table.remove(key).map_err(storage_error)?;
    Ok(true)
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
    let horizon = micros(now - chrono::Duration::from_std(settle).unwrap_or(chrono::Duration::MAX));
    let mut outcome = SettleOutcome::default();
    let mut declared_of: HashMap<Uuid, Vec<String>> = HashMap::new();
    let marks = stamps(
        &database.begin_read().map_err(storage_error)?,
        BREAKDOWN_MARKS,
    )?;
    for (partner, hour, mark) in marks {
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

fn declared_cached(
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
fn fold_hour(
    database: &Database,
    partner: Uuid,
    hour: Hour,
    mark: u64,
    cache: &mut HashMap<Uuid, Vec<String>>,
) -> Result<bool, StoreError> {
    let tables = {
        let transaction = database.begin_read().map_err(storage_error)?;
        let declared = declared_cached(&transaction, partner, cache)?;
        let events = transaction
            .open_table(EVENTS_BY_PARTNER)
            .map_err(storage_error)?;
        recount(&events, partner, (hour, hour.next()), &declared)?.hour_tables(&declared)
    };
    let transaction = database.begin_write().map_err(storage_error)?;
    if !take_stamp(
        &transaction,
        BREAKDOWN_MARKS,
        &hour_key(partner, hour),
        mark,
    )? {
        return Ok(false);
    }
    replace(&transaction, partner, Grain::Hour, hour, &tables)?;
    // The day's cells no longer agree with its hours: refold it once it is ready.
    let mut pending = transaction
        .open_table(BREAKDOWN_DAYS_PENDING)
        .map_err(storage_error)?;
    stamp(&mut pending, &hour_key(partner, hour.day()), Utc::now())?;
    drop(pending);
    transaction.commit().map_err(storage_error)?;
    Ok(true)
}

/// Folds one ended day from a recount of its events (never merged from its sealed hours,
/// which would lose its exact top values); false while one of its hours is marked or one
/// was refolded meanwhile.
fn fold_day(
    database: &Database,
    partner: Uuid,
    day: Hour,
    pending: u64,
    cache: &mut HashMap<Uuid, Vec<String>>,
) -> Result<bool, StoreError> {
    let tables = {
        let transaction = database.begin_read().map_err(storage_error)?;
        let marks = transaction
            .open_table(BREAKDOWN_MARKS)
            .map_err(storage_error)?;
        if !marked_hours(&marks, partner, day, day_after(day))?.is_empty() {
            return Ok(false);
        }
        let declared = declared_cached(&transaction, partner, cache)?;
        let events = transaction
            .open_table(EVENTS_BY_PARTNER)
            .map_err(storage_error)?;
        recount(&events, partner, (day, day_after(day)), &declared)?.day_tables(&declared)
    };
    let transaction = database.begin_write().map_err(storage_error)?;
    let marked = {
        let marks = transaction
            .open_table(BREAKDOWN_MARKS)
            .map_err(storage_error)?;
        !marked_hours(&marks, partner, day, day_after(day))?.is_empty()
    };
    if marked
        || !take_stamp(
            &transaction,
            BREAKDOWN_DAYS_PENDING,
            &hour_key(partner, day),
            pending,
        )?
    {
        return Ok(false);
    }
    replace(&transaction, partner, Grain::Day, day, &tables)?;
    transaction.commit().map_err(storage_error)?;
    Ok(true)
}

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
        let recount = recount(&events, partner, (day, day_after(day)), &declared)?;
        (
            recount.hour_tables(&declared),
            recount.day_tables(&declared),
        )
    };
    let mut hour = day;
    while hour < day_after(day) {
        replace(transaction, partner, Grain::Hour, hour, &hours)?;
        hour = hour.next();
    }
    replace(transaction, partner, Grain::Day, day, &days)?;
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
    Ok(())
}

/// The stored cells of one folded hour (or day), by (hour, name).
fn stored_tables(
    cells: &impl Readable,
    folds: &impl Readable,
    partner: Uuid,
    grain: Grain,
    hour: Hour,
) -> Result<Tables, StoreError> {
    let mut tables = Tables::new();
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
        for (_, table) in read_cell(cells, &prefix, hour, hour.next())? {
            tables.insert((hour, cell.clone()), table);
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
            let recounted = match grain {
                Grain::Hour => recount(&events, partner, (hour, hour.next()), &declared)?
                    .hour_counts(&declared),
                Grain::Day => recount(&events, partner, (hour, day_after(hour)), &declared)?
                    .day_counts(&declared),
            };
            found.extend(check_tables(partner, hours, &stored, &recounted));
        }
    }
    Ok(found)
}
