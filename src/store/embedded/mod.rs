//! The embedded store: one redb file under the data dir, holding the same logical tables
//! as the Cassandra schema, with its own compact row encoding (`rows`). redb is a pure-Rust, ACID, copy-on-write B-tree: a committed
//! transaction survives a crash, and one write transaction per writer batch gives us group
//! commit (one fsync for hundreds of events) for free.

mod anonymous_hours;
mod backfill;
mod breakdowns;
mod breakdowns_day_fold;
mod breakdowns_fold;
mod breakdowns_repair;
mod breakdowns_write;
mod erase;
mod events;
mod export;
mod fold_writes;
mod forget;
mod joins;
pub(crate) mod keys;
mod layout;
mod lifecycle;
mod metadata;
mod records;
mod remembered;
mod rollup_sketches;
mod rollups;
mod rollups_repair;
mod rollups_upgrade;
mod rows;
mod sweep;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use uuid::Uuid;

use chrono::{DateTime, Utc};

use crate::people::Joins;
use crate::rollups::{
    BreakdownDifference, BreakdownQuery, BreakdownRead, Hour, RollupDifference, RollupQuery,
    RollupRead, SettleOutcome,
};
use crate::store::{BreakdownStore, PeopleStore, RollupStore, Store, StoreError};

type Table = TableDefinition<'static, &'static [u8], &'static [u8]>;

use layout::{LAYOUT_KEY, LAYOUT_VERSION, Layout, check_layout};

const EVENTS_BY_PARTNER: Table = TableDefinition::new("events_by_partner");
const EVENTS_BY_SUBSYSTEM: Table = TableDefinition::new("events_by_subsystem");
const EVENT_IDS: Table = TableDefinition::new("event_ids_by_partner");
const PARTNERS: Table = TableDefinition::new("partners");
const PARTNER_CODES: Table = TableDefinition::new("partners_by_code");
const SUBSYSTEMS: Table = TableDefinition::new("subsystems");
const SUBSYSTEM_CODES: Table = TableDefinition::new("subsystems_by_partner_code");
const API_KEYS: Table = TableDefinition::new("api_keys");
const API_KEY_IDS: Table = TableDefinition::new("api_keys_by_key_id");
const API_KEYS_BY_PARTNER: Table = TableDefinition::new("api_keys_by_partner");
const EVENT_SCHEMAS: Table = TableDefinition::new("event_schemas");
/// `partner | event type` → nothing: the types a partner has sent (`ingest::event_types`).
const EVENT_TYPES: Table = TableDefinition::new("event_types_by_partner");
const ROLLUP_CELLS: Table = TableDefinition::new("rollup_cells");
const ROLLUP_SKETCHES: Table = TableDefinition::new("rollup_sketches");
const ROLLUP_DAY_CELLS: Table = TableDefinition::new("rollup_day_cells");
const ROLLUP_DAY_SKETCHES: Table = TableDefinition::new("rollup_day_sketches");
/// Layout 3 and 4 kept an hour's (day's) counts in one row: dropped by the upgrade to 5.
const OLD_ROLLUP_COUNTS: Table = TableDefinition::new("rollup_counts");
const OLD_ROLLUP_DAY_COUNTS: Table = TableDefinition::new("rollup_day_counts");
/// Breakdown cells, folded from the events (`breakdowns` describes the four).
const BREAKDOWN_CELLS: Table = TableDefinition::new("breakdown_cells");
const BREAKDOWN_FOLDS: Table = TableDefinition::new("breakdown_folds");
const BREAKDOWN_MARKS: Table = TableDefinition::new("breakdown_marks");
const BREAKDOWN_DAYS_PENDING: Table = TableDefinition::new("breakdown_days_pending");
/// People's joins (`joins`): the user an anonymous id was first seen with, and later
/// different pairings.
const PEOPLE_JOINS: Table = TableDefinition::new("people_joins");
const PEOPLE_JOIN_CONFLICTS: Table = TableDefinition::new("people_join_conflicts");
/// The same joins by user (`partner | user | 0 | anonymous id`), for a person's lookup.
const PEOPLE_USER_IDS: Table = TableDefinition::new("people_user_ids");
/// The hours holding an anonymous id's events without a user id, and those a join marked
/// whose sketches are still to be recounted (`joins`).
const PEOPLE_ANONYMOUS_HOURS: Table = TableDefinition::new("people_anonymous_hours");
const PEOPLE_PENDING: Table = TableDefinition::new("people_pending");
/// Erasure jobs and the audit log (`lifecycle`).
const ERASURES: Table = TableDefinition::new("erasures");
const AUDIT_LOG: Table = TableDefinition::new("audit_log");
/// `format` → the layout version of the whole file (see `LAYOUT_VERSION`).
const STORE_META: Table = TableDefinition::new("store_meta");

const ALL_TABLES: [Table; 28] = [
    EVENTS_BY_PARTNER,
    EVENTS_BY_SUBSYSTEM,
    EVENT_IDS,
    PARTNERS,
    PARTNER_CODES,
    SUBSYSTEMS,
    SUBSYSTEM_CODES,
    API_KEYS,
    API_KEY_IDS,
    API_KEYS_BY_PARTNER,
    EVENT_SCHEMAS,
    EVENT_TYPES,
    ROLLUP_CELLS,
    ROLLUP_SKETCHES,
    ROLLUP_DAY_CELLS,
    ROLLUP_DAY_SKETCHES,
    BREAKDOWN_CELLS,
    BREAKDOWN_FOLDS,
    BREAKDOWN_MARKS,
    BREAKDOWN_DAYS_PENDING,
    PEOPLE_JOINS,
    PEOPLE_JOIN_CONFLICTS,
    PEOPLE_USER_IDS,
    PEOPLE_ANONYMOUS_HOURS,
    PEOPLE_PENDING,
    ERASURES,
    AUDIT_LOG,
    STORE_META,
];

const DATABASE_FILE: &str = "volcanion.redb";
const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// How the embedded store is opened: its page cache, and when it folds breakdown cells
/// (`store.cache_size`, `store.breakdown_settle`, `store.breakdown_fold_interval`).
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedOptions {
    pub cache_bytes: usize,
    pub breakdown_settle: Duration,
    pub breakdown_fold_interval: Duration,
}

impl Default for EmbeddedOptions {
    /// config/default.toml's values.
    fn default() -> EmbeddedOptions {
        EmbeddedOptions {
            cache_bytes: DEFAULT_CACHE_BYTES,
            breakdown_settle: Duration::from_secs(120),
            breakdown_fold_interval: Duration::from_secs(15),
        }
    }
}

#[derive(Clone)]
pub struct EmbeddedStore {
    database: Arc<Database>,
    options: EmbeddedOptions,
    /// The people rows the writer knows are stored.
    remembered: Arc<remembered::Remembered>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `data_dir` with the default options.
    pub fn open(data_dir: &Path) -> Result<EmbeddedStore, StoreError> {
        EmbeddedStore::open_with(data_dir, EmbeddedOptions::default())
    }

    /// Opens (or creates) the store in `data_dir`, caching at most `cache_bytes` of pages
    /// in memory; only one process may hold it.
    pub fn open_with_cache(
        data_dir: &Path,
        cache_bytes: usize,
    ) -> Result<EmbeddedStore, StoreError> {
        let options = EmbeddedOptions {
            cache_bytes,
            ..EmbeddedOptions::default()
        };
        EmbeddedStore::open_with(data_dir, options)
    }

    /// Opens (or creates) the store in `data_dir` with `options`.
    pub fn open_with(
        data_dir: &Path,
        options: EmbeddedOptions,
    ) -> Result<EmbeddedStore, StoreError> {
        let cache_bytes = options.cache_bytes;
        std::fs::create_dir_all(data_dir).map_err(|error| {
            StoreError::Unavailable(format!(
                "cannot create data dir {}: {error}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(DATABASE_FILE);
        let database = Database::builder()
            .set_cache_size(cache_bytes)
            .create(&path)
            .map_err(|error| {
                StoreError::Unavailable(format!("cannot open {}: {error}", path.display()))
            })?;
        let transaction = database.begin_write().map_err(storage_error)?;
        for table in ALL_TABLES {
            transaction.open_table(table).map_err(storage_error)?;
        }
        let layout = check_layout(&transaction, &path)?;
        let upgraded = matches!(
            layout,
            Layout::Upgrade | Layout::UsersToIndex | Layout::DaysToRefold
        );
        if upgraded {
            let hours = backfill::mark_every_hour(&transaction)?;
            tracing::info!(hours, "marked the hours of an older data dir for folding");
        }
        if let Layout::Upgrade = layout {
            let joins = joins::record_every_join(&transaction)?;
            tracing::info!(joins, "recorded the people's joins of an older data dir");
        }
        if matches!(layout, Layout::Upgrade | Layout::UsersToIndex) {
            let users = joins::index_users(&transaction)?;
            tracing::info!(
                users,
                "indexed the people's joins of an older data dir by user"
            );
        }
        if upgraded {
            transaction
                .open_table(STORE_META)
                .map_err(storage_error)?
                .insert(LAYOUT_KEY, [LAYOUT_VERSION].as_slice())
                .map_err(storage_error)?;
        }
        transaction.commit().map_err(storage_error)?;
        if let Layout::RollupsToRebuild(old) = layout {
            let rebuilt = rollups_upgrade::upgrade(&database)?;
            tracing::info!(
                events = rebuilt.events,
                partner_days = rebuilt.days,
                layout = old,
                "rebuilt the rollups of an older data dir"
            );
        }
        Ok(EmbeddedStore {
            database: Arc::new(database),
            options,
            remembered: Arc::default(),
        })
    }

    /// Runs blocking redb work on the blocking pool.
    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let database = Arc::clone(&self.database);
        tokio::task::spawn_blocking(move || work(&database))
            .await
            .map_err(|error| StoreError::Unavailable(format!("store task failed: {error}")))?
    }
}

#[async_trait]
impl RollupStore for EmbeddedStore {
    async fn hourly_rollups(&self, query: &RollupQuery) -> Result<RollupRead, StoreError> {
        let query = query.clone();
        self.blocking(move |database| {
            let transaction = database.begin_read().map_err(storage_error)?;
            let hours = rollups::read(&transaction, &query)?;
            // Every write updates the rollups in its own transaction: nothing waits.
            Ok(RollupRead {
                hours,
                unsettled: Default::default(),
            })
        })
        .await
    }

    async fn rebuild_rollups(
        &self,
        partner: Uuid,
        from: Hour,
        to: Hour,
    ) -> Result<u64, StoreError> {
        self.blocking(move |database| {
            Ok(rollups_repair::rebuild(database, partner, from, to)?.events)
        })
        .await
    }

    async fn verify_rollups(
        &self,
        partner: Uuid,
        from: Hour,
        to: Hour,
    ) -> Result<Vec<RollupDifference>, StoreError> {
        self.blocking(move |database| {
            let transaction = database.begin_read().map_err(storage_error)?;
            rollups_repair::verify(&transaction, partner, from, to)
        })
        .await
    }

    /// Writes keep the counts themselves; the settler folds breakdown cells.
    fn settle_interval(&self) -> Option<Duration> {
        Some(self.options.breakdown_fold_interval)
    }

    async fn settle_rollups(&self, now: DateTime<Utc>) -> Result<SettleOutcome, StoreError> {
        let settle = self.options.breakdown_settle;
        self.blocking(move |database| breakdowns_fold::settle(database, now, settle))
            .await
    }
}

#[async_trait]
impl BreakdownStore for EmbeddedStore {
    async fn breakdown_cells(&self, query: &BreakdownQuery) -> Result<BreakdownRead, StoreError> {
        let query = query.clone();
        self.blocking(move |database| {
            breakdowns::read(&database.begin_read().map_err(storage_error)?, &query)
        })
        .await
    }

    async fn verify_breakdowns(
        &self,
        partner: Uuid,
        from: Hour,
        to: Hour,
    ) -> Result<Vec<BreakdownDifference>, StoreError> {
        self.blocking(move |database| {
            let transaction = database.begin_read().map_err(storage_error)?;
            breakdowns_repair::verify(&transaction, partner, from, to)
        })
        .await
    }
}

#[async_trait]
impl PeopleStore for EmbeddedStore {
    async fn joins_among(
        &self,
        partner: Uuid,
        anonymous_ids: Vec<String>,
    ) -> Result<Joins, StoreError> {
        self.blocking(move |database| {
            let transaction = database.begin_read().map_err(storage_error)?;
            let table = transaction
                .open_table(PEOPLE_JOINS)
                .map_err(storage_error)?;
            joins::among(&table, partner, &anonymous_ids)
        })
        .await
    }

    async fn anonymous_ids_of(
        &self,
        partner: Uuid,
        user: String,
    ) -> Result<Vec<String>, StoreError> {
        self.blocking(move |database| joins::anonymous_ids_of(database, partner, &user))
            .await
    }

    async fn first_event_day(&self, partner: Uuid) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.blocking(move |database| events::first_event_day(database, partner))
            .await
    }

    async fn recount_pending_since(
        &self,
        partner: Uuid,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.blocking(move |database| anonymous_hours::pending_since(database, partner))
            .await
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.blocking(|database| {
            let transaction = database.begin_read().map_err(storage_error)?;
            transaction.open_table(PARTNERS).map_err(storage_error)?;
            Ok(())
        })
        .await
    }

    fn backend_name(&self) -> &'static str {
        "embedded"
    }
}

fn storage_error(error: impl Into<redb::Error>) -> StoreError {
    StoreError::Unavailable(error.into().to_string())
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|error| StoreError::Corrupt(error.to_string()))
}

/// Leaves a data dir as an older layout did: `emptied` (a table it did not keep) cleared,
/// `layout` its mark.
#[cfg(test)]
fn as_layout_left(database: &Database, layout: u8, emptied: Table) {
    let transaction = database.begin_write().unwrap();
    transaction
        .open_table(emptied)
        .unwrap()
        .retain(|_, _| false)
        .unwrap();
    transaction
        .open_table(STORE_META)
        .unwrap()
        .insert(LAYOUT_KEY, [layout].as_slice())
        .unwrap();
    transaction.commit().unwrap();
}

fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| StoreError::Corrupt(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_of_the_unmarked_first_layout_is_refused() {
        let dir = tempfile::TempDir::new().unwrap();
        {
            let database = Database::create(dir.path().join(DATABASE_FILE)).unwrap();
            let transaction = database.begin_write().unwrap();
            transaction
                .open_table(EVENTS_BY_PARTNER)
                .unwrap()
                .insert(b"old-key".as_slice(), b"{\"json\":1}".as_slice())
                .unwrap();
            transaction.commit().unwrap();
        }
        let refused = EmbeddedStore::open(dir.path()).err().expect("refused");
        assert!(refused.to_string().contains("layout 1"), "{refused}");
    }

    #[tokio::test]
    async fn verify_finds_rollups_that_disagree_and_rebuild_mends_them() {
        use crate::model::test_support::sample_event;
        use crate::store::EventStore;

        let dir = tempfile::TempDir::new().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let events: Vec<_> = (0..5).map(|i| sample_event(&format!("e{i}"))).collect();
        store.write_events(&events).await.unwrap();
        store.write_events(&events).await.unwrap();
        let partner = events[0].partner_id;
        let (from, to) = (Hour(0), Hour(u32::MAX));
        assert!(
            store
                .verify_rollups(partner, from, to)
                .await
                .unwrap()
                .is_empty()
        );

        let hour = Hour::of(events[0].timestamp);
        let cell = (events[0].subsystem_id, "page_view".to_string(), true, false);
        let transaction = store.database.begin_write().unwrap();
        for (table, key) in [(ROLLUP_CELLS, hour), (ROLLUP_DAY_CELLS, hour.day())] {
            transaction
                .open_table(table)
                .unwrap()
                .insert(
                    rollups::cell_key(partner, key, &cell).as_slice(),
                    9u64.to_be_bytes().as_slice(),
                )
                .unwrap();
        }
        transaction.commit().unwrap();
        let differences = store.verify_rollups(partner, from, to).await.unwrap();
        let found: Vec<_> = differences
            .iter()
            .map(|difference| {
                (
                    difference.hours,
                    difference.stored.total(),
                    difference.recounted.total(),
                )
            })
            .collect();
        assert_eq!(found, [(1, 9, 5), (24, 9, 5)], "the hour and its day");
        assert_eq!(store.rebuild_rollups(partner, from, to).await.unwrap(), 5);
        assert!(
            store
                .verify_rollups(partner, from, to)
                .await
                .unwrap()
                .is_empty()
        );
        // A report taking the day whole reads one rollup for it.
        let query = RollupQuery {
            partner_id: partner,
            subsystem_id: None,
            event_type: None,
            from: hour.day(),
            to: Hour(hour.day().0 + 24),
            whole_days: std::collections::BTreeSet::from([hour.day()]),
            include_bots: false,
        };
        let read = store.hourly_rollups(&query).await.unwrap();
        assert_eq!(read.hours.len(), 1);
        assert_eq!(read.hours[0].hour, hour.day());
        assert_eq!(read.hours[0].cells.iter().map(|c| c.count).sum::<u64>(), 5);
        assert!(read.hours[0].actors.is_some());
    }

    #[test]
    fn a_new_data_dir_is_marked_and_opens_again() {
        let dir = tempfile::TempDir::new().unwrap();
        drop(EmbeddedStore::open(dir.path()).unwrap());
        assert!(EmbeddedStore::open(dir.path()).is_ok());
    }
}
