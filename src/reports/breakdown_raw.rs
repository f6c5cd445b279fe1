//! A breakdown counted from raw events: the hours the rollups don't cover (cut by the
//! range's ends, not folded yet), or the whole range when its filters have no cells. What
//! it counts matches a fold of the same events: one table per partition, every value kept
//! up to `LIVE_VALUE_CAP`.

use std::collections::HashMap;

use crate::model::Event;
use crate::rollups::{
    Dimension, DimensionValues, LIVE_VALUE_CAP, RecountedValue, ValueTable, dimension_values,
};

/// The dimension broken down, the equality filters an event must pass (all of them), and
/// the partner's declared properties (to read `properties.<name>` values).
pub struct RawBreakdown {
    dimension: Dimension,
    filters: Vec<(Dimension, String)>,
    declared: Vec<String>,
    /// Values per partition: humans' `[0]`, bots' `[1]`.
    values: [HashMap<String, RecountedValue>; 2],
    /// Events passing the filters per partition, with a value for the dimension or not.
    totals: [u64; 2],
}

impl RawBreakdown {
    pub fn new(
        dimension: Dimension,
        filters: Vec<(Dimension, String)>,
        declared: Vec<String>,
    ) -> RawBreakdown {
        RawBreakdown {
            dimension,
            filters,
            declared,
            values: Default::default(),
            totals: [0, 0],
        }
    }

    /// Whether reading these events needs their payload (a declared property is read).
    pub fn needs_payload(&self) -> bool {
        std::iter::once(self.dimension)
            .chain(self.filters.iter().map(|(dimension, _)| *dimension))
            .any(|dimension| matches!(dimension, Dimension::Property(_)))
    }

    pub fn add(&mut self, event: &Event) {
        let values = dimension_values(event, &self.declared);
        if !passes(&self.filters, &values) {
            return;
        }
        let partition = usize::from(values.is_bot());
        self.totals[partition] += 1;
        let Some(value) = values.get(self.dimension) else {
            return;
        };
        let counted = match self.values[partition].get_mut(value) {
            Some(counted) => counted,
            None => self.values[partition].entry(value.to_string()).or_default(),
        };
        counted.events += 1;
        if let Some(actor) = event.actor() {
            counted.actors.add_actor(actor);
        }
    }

    /// The events passing the filters: humans', bots'.
    pub fn totals(&self) -> [u64; 2] {
        self.totals
    }

    /// The counted values as one table per partition: humans', bots'.
    pub fn into_tables(self) -> [ValueTable; 2] {
        self.values
            .map(|values| ValueTable::from_recount(values, LIVE_VALUE_CAP))
    }
}

/// Whether an event with these values passes every equality filter.
pub fn passes(filters: &[(Dimension, String)], values: &DimensionValues) -> bool {
    filters
        .iter()
        .all(|(dimension, wanted)| values.get(*dimension) == Some(wanted.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Enrichment;
    use crate::model::test_support::sample_event;

    fn visit(page: &str, country: &str, bot: bool, user: &str) -> Event {
        let mut event = sample_event(user);
        event.user_id = Some(user.to_string());
        event.enrichment = Some(Enrichment {
            page: Some(page.to_string()),
            country: Some(country.to_string()),
            bot,
            ..Enrichment::default()
        });
        event
    }

    #[test]
    fn only_events_passing_every_filter_count_in_their_partition() {
        let mut raw = RawBreakdown::new(
            Dimension::Page,
            vec![(Dimension::Country, "DE".to_string())],
            Vec::new(),
        );
        for event in [
            visit("/a", "DE", false, "u1"),
            visit("/a", "DE", false, "u2"),
            visit("/b", "DE", false, "u1"),
            visit("/a", "FR", false, "u3"),
            visit("/a", "DE", true, "bot"),
        ] {
            raw.add(&event);
        }
        let mut no_page = visit("/a", "DE", false, "u4");
        no_page.enrichment.as_mut().unwrap().page = None;
        raw.add(&no_page);
        assert_eq!(
            raw.totals(),
            [4, 1],
            "the page-less event counts in the total"
        );
        assert!(!raw.needs_payload());
        let [humans, bots] = raw.into_tables();
        assert_eq!(humans.values["/a"].events, 2);
        assert_eq!(humans.values["/b"].events, 1);
        assert_eq!(humans.total_events(), 3);
        assert_eq!(bots.values["/a"].events, 1);
    }
}
