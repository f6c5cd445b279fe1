//! A stored cell as a read gets it: its encoded parts (`ValueTable::split`), read in
//! place. A report over 30 days of a 10 M-event partner reads some 30 MB of cells, nearly
//! all of it sketches of values it won't list: decoding them into `ValueTable`s (a string,
//! a byte vector and a tree node per value) was most of its time. A view borrows each
//! value and sketch from the parts instead, and a report decodes only the sketches of the
//! values it lists.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};

use super::value_table::ValueTable;

/// One cell's encoded parts, in part order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedTable {
    parts: Vec<Vec<u8>>,
}

/// A kept value as stored, borrowed.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct KeptRef<'a> {
    pub events: u64,
    pub error: u64,
    pub actors: &'a [u8],
}

/// "Other" as stored, borrowed.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct OtherRef<'a> {
    pub events: u64,
    pub max_events: u64,
    pub values: &'a [u8],
}

/// A cell's values and "other", borrowed from its parts (values in the order stored).
#[derive(Debug, Default)]
pub struct TableView<'a> {
    pub values: Vec<(&'a str, KeptRef<'a>)>,
    pub other: OtherRef<'a>,
    /// Whether `values` are in order, as stored (a table's map, cut into parts in order).
    sorted: bool,
}

impl<'a> TableView<'a> {
    pub fn total_events(&self) -> u64 {
        self.values.iter().map(|(_, kept)| kept.events).sum::<u64>() + self.other.events
    }

    /// A kept value's counts: a binary search, as values are stored in order (a view out
    /// of order is searched through).
    pub fn get(&self, value: &str) -> Option<&KeptRef<'a>> {
        if self.sorted {
            let found = self
                .values
                .binary_search_by(|(stored, _)| (*stored).cmp(value));
            return found.ok().map(|index| &self.values[index].1);
        }
        let found = self.values.iter().find(|(stored, _)| *stored == value);
        found.map(|(_, kept)| kept)
    }
}

/// One encoded part, as `ValueTable` encodes it.
#[derive(Deserialize)]
struct PartRef<'a> {
    #[serde(borrow)]
    values: Entries<'a>,
    #[serde(borrow)]
    other: OtherRef<'a>,
}

/// A part's map of values, kept as a list: no tree to build.
struct Entries<'a>(Vec<(&'a str, KeptRef<'a>)>);

impl<'de: 'a, 'a> Deserialize<'de> for Entries<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Entries<'a>, D::Error> {
        struct List<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for List<'a> {
            type Value = Entries<'a>;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a map of values to their counts")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Entries<'a>, M::Error> {
                // The hint is the stored length, untrusted: bounded before reserving.
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4_096));
                while let Some(entry) = map.next_entry::<&'de str, KeptRef<'de>>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(List(PhantomData))
    }
}

impl EncodedTable {
    /// The parts as stored (`ValueTable::to_bytes` of each part of a `split`).
    pub fn from_parts(parts: Vec<Vec<u8>>) -> EncodedTable {
        EncodedTable { parts }
    }

    pub fn parts(&self) -> &[Vec<u8>] {
        &self.parts
    }

    /// The cell read in place. Fails on a part that does not decode.
    pub fn view(&self) -> Result<TableView<'_>, String> {
        let mut view = TableView::default();
        for bytes in &self.parts {
            let part: PartRef<'_> = postcard::from_bytes(bytes)
                .map_err(|error| format!("a breakdown value table does not decode: {error}"))?;
            view.values.extend(part.values.0);
            // "Other" goes with the first part (`ValueTable::split`); later parts hold none.
            if part.other.events > 0 || part.other.max_events > 0 {
                view.other = part.other;
            }
        }
        view.sorted = view.values.is_sorted_by(|a, b| a.0 < b.0);
        Ok(view)
    }

    /// The cell decoded whole, sketches and all (what checks against a recount use).
    pub fn decode(&self) -> Result<ValueTable, String> {
        let parts = self
            .parts
            .iter()
            .map(|bytes| ValueTable::from_bytes(bytes))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ValueTable::join(parts))
    }
}

impl From<&ValueTable> for EncodedTable {
    fn from(table: &ValueTable) -> EncodedTable {
        EncodedTable::from_parts(vec![table.to_bytes()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollups::{ActorUnion, RecountedValue};
    use std::collections::HashMap;

    fn table(values: u64) -> ValueTable {
        let recounted: HashMap<String, RecountedValue> = (0..values)
            .map(|n| {
                let mut actors = ActorUnion::default();
                (0..n % 7).for_each(|user| actors.add_actor(&format!("u{user}")));
                (
                    format!("/page/{n}"),
                    RecountedValue {
                        events: n + 1,
                        actors,
                    },
                )
            })
            .collect();
        ValueTable::from_recount(recounted, 300)
    }

    #[test]
    fn a_view_of_the_parts_sees_what_the_whole_table_holds() {
        let whole = table(500);
        let parts = whole
            .split(4 * 1024)
            .iter()
            .map(ValueTable::to_bytes)
            .collect();
        let encoded = EncodedTable::from_parts(parts);
        assert!(encoded.parts.len() > 2, "{} parts", encoded.parts.len());
        let view = encoded.view().unwrap();
        assert_eq!(view.values.len(), whole.values.len());
        for ((value, kept), (stored, stored_kept)) in view.values.iter().zip(&whole.values) {
            assert_eq!(
                (*value, kept.events, kept.error),
                (stored.as_str(), stored_kept.events, stored_kept.error)
            );
            assert_eq!(kept.actors, stored_kept.actors.as_slice());
        }
        assert_eq!(view.other.events, whole.other.events);
        assert_eq!(view.other.max_events, whole.other.max_events);
        assert_eq!(view.other.values, whole.other.values.as_slice());
        assert_eq!(view.total_events(), whole.total_events());
        assert!(view.sorted);
        for (value, kept) in &whole.values {
            assert_eq!(view.get(value).map(|found| found.events), Some(kept.events));
        }
        assert!(view.get("/not/kept").is_none());
        assert_eq!(encoded.decode().unwrap(), whole);
        assert_eq!(
            EncodedTable::from(&whole).view().unwrap().total_events(),
            whole.total_events()
        );
    }

    #[test]
    fn a_part_that_does_not_decode_fails_the_view() {
        let mut bytes = table(50).to_bytes();
        bytes.truncate(bytes.len() / 2);
        assert!(EncodedTable::from_parts(vec![bytes]).view().is_err());
    }
}
