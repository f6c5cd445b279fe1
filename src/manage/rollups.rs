//! `volcanion rollups rebuild|verify`: recount rollups from raw events, or compare them
//! with a recount. Run against the configured store, beside or instead of `serve`.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::rollups::{Hour, RollupDifference};
use crate::store::{Store, StoreError};

/// Which partners and hours: `partner` (all when `None`), whole hours covering `from..to`.
pub struct RollupRange {
    pub partner: Option<Uuid>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl RollupRange {
    fn hours(&self) -> (Hour, Hour) {
        (Hour::of(self.from), Hour::ceil(self.to))
    }

    async fn partners(&self, store: &dyn Store) -> Result<Vec<Uuid>, StoreError> {
        if let Some(partner) = self.partner {
            return Ok(vec![partner]);
        }
        let mut partners = Vec::new();
        loop {
            let page = store.partners(partners.last().copied(), 500).await?;
            if page.is_empty() {
                return Ok(partners);
            }
            partners.extend(page.iter().map(|partner| partner.id));
        }
    }
}

/// Rebuilds each partner's rollups; (partner, events recounted) for each.
pub async fn rebuild(
    store: &dyn Store,
    range: &RollupRange,
) -> Result<Vec<(Uuid, u64)>, StoreError> {
    let (from, to) = range.hours();
    let mut rebuilt = Vec::new();
    for partner in range.partners(store).await? {
        rebuilt.push((partner, store.rebuild_rollups(partner, from, to).await?));
    }
    Ok(rebuilt)
}

/// Every hour whose rollups differ from a recount, by partner.
pub async fn verify(
    store: &dyn Store,
    range: &RollupRange,
) -> Result<Vec<(Uuid, RollupDifference)>, StoreError> {
    let (from, to) = range.hours();
    let mut differences = Vec::new();
    for partner in range.partners(store).await? {
        for difference in store.verify_rollups(partner, from, to).await? {
            differences.push((partner, difference));
        }
    }
    Ok(differences)
}
