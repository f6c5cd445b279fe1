//! The summary and time series under `where=`: when the report's filters come down to one
//! that has breakdown cells (`CELL_SPECS`: event type, subsystem, country, device type), its
//! whole hours and days are read from the cells under that filter (the event types,
//! subsystems and validity of the events passing it, and their people), and the hours the
//! cells don't answer (the range's cut ends, hours not folded yet) from raw events passing
//! it; otherwise, or when the cells can't answer too many hours, from the raw events of the
//! whole range, at most `reports.max_raw_events` of them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::aggregate::FilteredHour;
use super::breakdown::every_filter;
use super::breakdown_raw::passes;
use super::gather::RawReading;
use super::{Aggregate, ReportError, ReportScope, ReportService, plan, slots};
use crate::rollups::{
    ActorUnion, BreakdownQuery, BreakdownRead, CellName, Dimension, HOURS_PER_DAY, Hour,
    answered_by_rollups, dimension_values, total_dimension,
};
use crate::store::{EventFilter, StoreError};

/// The dimensions whose cells under the filter make a filtered hour: every event has an
/// event type, a subsystem and a validity (the filter's own dimension is its one value).
const COUNTED: [Dimension; 3] = [Dimension::EventType, Dimension::Subsystem, Dimension::Valid];

impl ReportService {
    /// Feeds `sink` the events of `scope` passing `filter` (its event type) and `wheres`.
    pub(super) async fn gather_where(
        &self,
        scope: ReportScope,
        filter: EventFilter,
        wheres: &[(String, String)],
        edges: &[DateTime<Utc>],
        sink: &mut impl Aggregate,
    ) -> Result<(), ReportError> {
        let declared = self.declared_dimensions(scope.partner_id).await?;
        let filters = every_filter(
            wheres,
            filter.event_type.as_deref(),
            scope.subsystem_id,
            &declared,
        )?;
        let raw = RawFilter {
            filters: &filters,
            declared: &declared,
            filter: &filter,
        };
        let _slot = self
            .slots
            .enter()
            .await
            .map_err(|slots::AllSlotsTaken| ReportError::Busy)?;
        if let [(dimension, value)] = filters.as_slice()
            && answered_by_rollups(Some(*dimension), Dimension::Valid)
        {
            if *dimension == Dimension::Subsystem && value.parse::<uuid::Uuid>().is_err() {
                return Ok(()); // No subsystem has that id: no event passes.
            }
            let plan = plan::plan(scope.from, scope.to, edges);
            let hours = self
                .filtered_cells(scope, (*dimension, value), &plan)
                .await?;
            if plan.raw_hours(&hours.raw) <= self.max_raw_hours {
                hours.whole.iter().for_each(|hour| sink.add_filtered(hour));
                for range in plan.raw_with(&hours.raw) {
                    self.add_raw(scope, &raw, range, None, sink).await?;
                }
                return Ok(());
            }
        }
        let whole = (scope.from, scope.to);
        self.add_raw(scope, &raw, whole, Some(self.max_raw_events), sink)
            .await
    }

    /// The whole hours and days of the plan the cells under `filter` answer, and the hours
    /// they leave to raw events (not folded yet, or whose cells can't say: a value folded
    /// into "other", cells folded before validity was counted).
    async fn filtered_cells(
        &self,
        scope: ReportScope,
        (dimension, value): (Dimension, &String),
        plan: &plan::Plan,
    ) -> Result<FilteredHours, ReportError> {
        let Some((from, to)) = plan.rollups else {
            return Ok(FilteredHours::default());
        };
        let partitions: &[bool] = if scope.include_bots {
            &[false, true]
        } else {
            &[false]
        };
        let counted: Vec<Dimension> = COUNTED.into_iter().filter(|d| *d != dimension).collect();
        let mut names = Vec::new();
        for bots in partitions {
            for counted in &counted {
                names.push(CellName {
                    bots: *bots,
                    filter: Some((builtin_name(dimension), value.clone())),
                    dimension: builtin_name(*counted),
                });
            }
        }
        let query = BreakdownQuery {
            partner_id: scope.partner_id,
            names,
            from,
            to,
            whole_days: plan.whole_days.clone(),
        };
        let read = self.store.breakdown_cells(&query).await?;
        let kinds = partitions
            .iter()
            .flat_map(|_| counted.iter().copied())
            .collect::<Vec<_>>();
        Ok(tally(read, &kinds, (dimension, value)).map_err(StoreError::Corrupt)?)
    }

    /// Adds the raw events of `range` passing the filters, failing past `max_events`.
    async fn add_raw(
        &self,
        scope: ReportScope,
        raw: &RawFilter<'_>,
        range: (DateTime<Utc>, DateTime<Utc>),
        max_events: Option<u64>,
        sink: &mut impl Aggregate,
    ) -> Result<(), ReportError> {
        let reading = RawReading {
            range,
            filter: raw.filter,
            payload: raw
                .filters
                .iter()
                .any(|(dimension, _)| matches!(dimension, Dimension::Property(_))),
            max_events,
        };
        self.for_each_event(scope, reading, |event| {
            if scope.counts(event) && passes(raw.filters, &dimension_values(event, raw.declared)) {
                sink.add(event)
            }
        })
        .await
    }
}

/// What a raw read checks each event against.
struct RawFilter<'a> {
    filters: &'a [(Dimension, String)],
    declared: &'a [String],
    filter: &'a EventFilter,
}

/// What the cells under a filter answer.
#[derive(Debug, Default)]
struct FilteredHours {
    whole: Vec<FilteredHour>,
    raw: BTreeSet<Hour>,
}

fn builtin_name(dimension: Dimension) -> String {
    dimension.name(&[]).expect("a built-in dimension")
}

/// Adds up the cells read (`kinds[i]`: the dimension of `read.tables[i]`) by hour or day,
/// and checks each: its event types, subsystems and validity must each account for all of
/// its events, or the hour (the day's hours) is left to raw events.
fn tally(
    read: BreakdownRead,
    kinds: &[Dimension],
    (filter, value): (Dimension, &String),
) -> Result<FilteredHours, String> {
    let mut hours: BTreeMap<Hour, (FilteredHour, [u64; 3])> = BTreeMap::new();
    for (kind, tables) in kinds.iter().zip(read.tables) {
        let slot = COUNTED.iter().position(|counted| counted == kind);
        let slot = slot.expect("a counted dimension");
        for (hour, table) in tables {
            let view = table.view()?;
            let (entry, accounted) = hours.entry(hour).or_insert_with(|| {
                let filtered = FilteredHour {
                    hour,
                    events: 0,
                    invalid_events: 0,
                    by_type: BTreeMap::new(),
                    by_subsystem: BTreeMap::new(),
                    actors: Vec::new(),
                };
                (filtered, [0; 3])
            });
            // Folded values have no name: what they hold is unaccounted for.
            accounted[slot] += view.total_events() - view.other.events;
            match kind {
                Dimension::EventType => {
                    for (name, kept) in &view.values {
                        *entry.by_type.entry(name.to_string()).or_default() += kept.events;
                    }
                }
                Dimension::Subsystem => {
                    for (id, kept) in &view.values {
                        let id = id.parse().map_err(|_| format!("subsystem id {id:?}"))?;
                        *entry.by_subsystem.entry(id).or_default() += kept.events;
                    }
                }
                _ => entry.invalid_events += view.get("false").map_or(0, |kept| kept.events),
            }
            // Every event has a type (under a type filter, a subsystem): these values'
            // people are the hour's.
            if *kind == total_dimension(Some(filter)) {
                entry.events += view.total_events();
                let sketches: Vec<&[u8]> =
                    view.values.iter().map(|(_, kept)| kept.actors).collect();
                let mut union = ActorUnion::default();
                union.add_encoded(&sketches)?;
                entry.actors.push(union.to_sketch_for_unions());
            }
        }
    }
    let mut filtered = FilteredHours {
        raw: read.unsettled,
        ..FilteredHours::default()
    };
    for (hour, (mut entry, mut accounted)) in hours {
        // The filter's own dimension has one value: the filter's.
        match filter {
            Dimension::EventType => {
                entry.by_type.insert(value.clone(), entry.events);
                accounted[0] = entry.events;
            }
            Dimension::Subsystem => {
                let id = value
                    .parse()
                    .map_err(|_| format!("subsystem id {value:?}"))?;
                entry.by_subsystem.insert(id, entry.events);
                accounted[1] = entry.events;
            }
            _ => {}
        }
        if accounted.iter().all(|events| *events == entry.events) {
            filtered.whole.push(entry);
        } else if read.days.contains(&hour) {
            filtered
                .raw
                .extend((hour.0..hour.0 + HOURS_PER_DAY).map(Hour));
        } else {
            filtered.raw.insert(hour);
        }
    }
    Ok(filtered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollups::{ActorSketch, EncodedTable, KeptValue, ValueTable};

    /// A table of `values` (value, events, people).
    fn table(values: &[(&str, u64, &[&str])]) -> EncodedTable {
        let mut table = ValueTable::default();
        for (value, events, people) in values {
            let mut sketch = ActorSketch::for_unions();
            people
                .iter()
                .for_each(|person| sketch.add(ActorSketch::coupon(person)));
            let kept = KeptValue {
                events: *events,
                error: 0,
                actors: sketch.to_bytes(),
            };
            table.values.insert(value.to_string(), kept);
        }
        EncodedTable::from(&table)
    }

    const KINDS: [Dimension; 3] = COUNTED;
    const WEB: &str = "00000000-0000-0000-0000-000000000001";

    fn read(hour: Hour, valid: EncodedTable, days: &[Hour]) -> BreakdownRead {
        BreakdownRead {
            tables: vec![
                vec![(hour, table(&[("view", 3, &["a", "b"]), ("buy", 1, &["a"])]))],
                vec![(hour, table(&[(WEB, 4, &["a", "b"])]))],
                vec![(hour, valid)],
            ],
            days: days.iter().copied().collect(),
            unsettled: BTreeSet::from([Hour(hour.0 + 1)]),
        }
    }

    #[test]
    fn an_hours_cells_add_up_to_its_types_subsystems_validity_and_people() {
        let hour = Hour(1_000);
        let valid = table(&[("true", 3, &["a", "b"]), ("false", 1, &["a"])]);
        let country = (Dimension::Country, &"DE".to_string());
        let tallied = tally(read(hour, valid, &[]), &KINDS, country).unwrap();
        assert_eq!(tallied.raw, BTreeSet::from([Hour(1_001)]), "unsettled");
        let [filtered] = tallied.whole.as_slice() else {
            panic!("one hour")
        };
        assert_eq!((filtered.events, filtered.invalid_events), (4, 1));
        assert_eq!(
            filtered.by_type,
            BTreeMap::from([("buy".into(), 1), ("view".into(), 3)])
        );
        assert_eq!(filtered.by_subsystem[&WEB.parse().unwrap()], 4);
        let mut people = ActorUnion::default();
        filtered
            .actors
            .iter()
            .for_each(|sketch| people.add_sketch(sketch));
        assert_eq!(people.count(), 2);
    }

    #[test]
    fn cells_that_miss_events_leave_their_hour_or_day_to_raw_events() {
        let country = (Dimension::Country, &"DE".to_string());
        // Folded before validity was counted: no valid cell.
        let hour = Hour(1_000);
        let tallied = tally(read(hour, EncodedTable::default(), &[]), &KINDS, country).unwrap();
        assert!(tallied.whole.is_empty());
        assert_eq!(tallied.raw, BTreeSet::from([hour, Hour(1_001)]));
        // A day's table: its 24 hours (the unsettled 961 among them).
        let day = Hour(960);
        let tallied = tally(read(day, EncodedTable::default(), &[day]), &KINDS, country).unwrap();
        assert_eq!(tallied.raw, (960..984).map(Hour).collect());
    }

    #[test]
    fn under_an_event_type_filter_the_subsystems_count_the_events() {
        let hour = Hour(1_000);
        let read = BreakdownRead {
            tables: vec![
                vec![(hour, table(&[(WEB, 2, &["a", "b"])]))],
                vec![(hour, table(&[("true", 2, &["a", "b"])]))],
            ],
            ..BreakdownRead::default()
        };
        let kinds = [Dimension::Subsystem, Dimension::Valid];
        let filter = (Dimension::EventType, &"buy".to_string());
        let tallied = tally(read, &kinds, filter).unwrap();
        let [filtered] = tallied.whole.as_slice() else {
            panic!("one hour")
        };
        assert_eq!(filtered.events, 2);
        assert_eq!(filtered.by_type, BTreeMap::from([("buy".into(), 2)]));
        assert_eq!(filtered.actors.len(), 1);
    }
}
