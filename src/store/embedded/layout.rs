//! Which layout a data dir was written in, and what opening it does about an older one.

use std::path::Path;

use redb::{ReadableTable, ReadableTableMetadata};

use super::{EVENTS_BY_PARTNER, STORE_META, storage_error};
use crate::store::StoreError;

/// Bumped when keys or rows change shape; a data dir of another layout is refused at
/// start rather than read as if it were empty. 2: ascending event keys, postcard rows.
/// 3: hour rollups. 4: day rollups beside them. 5: one rollup entry per counted cell
/// rather than per hour. 6: breakdown cells, folded from the events. An older file of
/// layout 2 to 4 gets its rollups (and breakdown cells) rebuilt from its events when first
/// opened (`rollups_upgrade::upgrade`: bounded, resumable); one of layout 5 gets every
/// hour with events marked, so the settler folds their breakdown cells. 7: people's joins;
/// a file of an older layout gets the joins of its stored events recorded when opened.
/// 8: people's postings among the cells, and the anonymous ids' hours; a file of layout 5
/// to 7 gets both recorded and every hour with events marked, so the settler refolds it.
/// 9: the joins indexed by user too; a file of layout 5 to 8 gets them indexed.
/// 10: people's visits among a day's cells; a file of layout 8 or 9 gets every hour with
/// events marked, so the settler refolds its hours and then its days.
pub(super) const LAYOUT_VERSION: u8 = 10;
const LAYOUT_USERS_TO_INDEX: u8 = 8;
const LAYOUT_DAYS_TO_REFOLD: u8 = 9;
const LAYOUTS_MARKED: [u8; 3] = [5, 6, 7];
const LAYOUTS_REBUILT: [u8; 3] = [2, 3, 4];
pub(super) const LAYOUT_KEY: &[u8] = b"format";

/// What opening a file found: our layout, or one whose rollups must be rebuilt.
pub(super) enum Layout {
    Current,
    RollupsToRebuild(u8),
    /// Layouts 5 to 7: joins and anonymous hours to record, hours to mark, users to index.
    Upgrade,
    /// Layout 8: the joins to index by user, and the hours to mark.
    UsersToIndex,
    /// Layout 9: the hours to mark, so their days are folded with visits.
    DaysToRefold,
}

/// Marks a new file with our layout; refuses a file written in another one (including the
/// unmarked first layout, whose events would otherwise look absent).
pub(super) fn check_layout(
    transaction: &redb::WriteTransaction,
    path: &Path,
) -> Result<Layout, StoreError> {
    let mut meta = transaction.open_table(STORE_META).map_err(storage_error)?;
    let found = meta
        .get(LAYOUT_KEY)
        .map_err(storage_error)?
        .map(|value| value.value().first().copied());
    let has_events = !transaction
        .open_table(EVENTS_BY_PARTNER)
        .map_err(storage_error)?
        .is_empty()
        .map_err(storage_error)?;
    match found {
        Some(Some(LAYOUT_VERSION)) => Ok(Layout::Current),
        Some(Some(old)) if LAYOUTS_MARKED.contains(&old) => Ok(Layout::Upgrade),
        Some(Some(LAYOUT_USERS_TO_INDEX)) => Ok(Layout::UsersToIndex),
        Some(Some(LAYOUT_DAYS_TO_REFOLD)) => Ok(Layout::DaysToRefold),
        None if !has_events => {
            meta.insert(LAYOUT_KEY, [LAYOUT_VERSION].as_slice())
                .map_err(storage_error)?;
            Ok(Layout::Current)
        }
        Some(Some(old)) if LAYOUTS_REBUILT.contains(&old) => Ok(Layout::RollupsToRebuild(old)),
        other => Err(StoreError::Unavailable(format!(
            "{} was written in store layout {} and this release reads layout {LAYOUT_VERSION}; \
             start with an empty VOLCANION_DATA_DIR (no release has shipped the old layout)",
            path.display(),
            other
                .flatten()
                .map_or("1".to_string(), |version| version.to_string()),
        ))),
    }
}
