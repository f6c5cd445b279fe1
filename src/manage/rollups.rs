//! `volcanion rollups rebuild|verify`: recount rollups (counts, sketches, breakdown
//! cells) from raw events, or compare them with a recount. A rebuild first enriches the
//! events stored before enrichment existed, from what they carry (their context and
//! properties; their client address was not kept), so their pages, referrers and devices
//! count in breakdowns. Run against the configured store, beside or instead of `serve`.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::enrich::{EnrichInput, Enricher};
use crate::model::Event;
use crate::rollups::{BreakdownDifference, Hour, RollupDifference};
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

/// What a rebuild did for one partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    pub partner: Uuid,
    /// Events stored without an enrichment that got one.
    pub enriched: u64,
    pub recounted: u64,
}

/// Enriches each partner's events stored without an enrichment, then rebuilds its
/// rollups.
pub async fn rebuild(
    store: &dyn Store,
    enricher: &Enricher,
    range: &RollupRange,
) -> Result<Vec<Rebuilt>, StoreError> {
    let (from, to) = range.hours();
    let mut rebuilt = Vec::new();
    for partner in range.partners(store).await? {
        let own_hosts = match store.partner(partner).await? {
            Some(partner) => partner.own_hosts,
            None => Vec::new(),
        };
        let enrich = |event: &Event| {
            enricher.enrich(&EnrichInput {
                context: &event.context,
                properties: &event.properties,
                request_user_agent: None,
                client_address: None,
                own_hosts: &own_hosts,
            })
        };
        let enriched = store
            .backfill_enrichment(partner, from, to, &enrich)
            .await?;
        let recounted = store.rebuild_rollups(partner, from, to).await?;
        rebuilt.push(Rebuilt {
            partner,
            enriched,
            recounted,
        });
    }
    Ok(rebuilt)
}

/// Where stored rollups and a recount of the raw events disagree.
#[derive(Debug, Default)]
pub struct Differences {
    /// Hours (or days) whose counts differ, by partner.
    pub counts: Vec<(Uuid, RollupDifference)>,
    /// Breakdown cells a recount contradicts (docs/BREAKDOWNS.md, "Cap and error").
    pub breakdowns: Vec<BreakdownDifference>,
}

impl Differences {
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.breakdowns.is_empty()
    }
}

/// Every hour whose rollups differ from a recount, and every breakdown cell a recount
/// contradicts, by partner.
pub async fn verify(store: &dyn Store, range: &RollupRange) -> Result<Differences, StoreError> {
    let (from, to) = range.hours();
    let mut differences = Differences::default();
    for partner in range.partners(store).await? {
        for difference in store.verify_rollups(partner, from, to).await? {
            differences.counts.push((partner, difference));
        }
        differences
            .breakdowns
            .extend(store.verify_breakdowns(partner, from, to).await?);
    }
    Ok(differences)
}
