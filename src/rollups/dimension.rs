//! What a breakdown can be by: the dimensions, and the values one event has for them. The
//! enrichment and the partner's declared properties are mapped into `DimensionValues` by
//! whoever counts the event, so the rollups know nothing of how a value was found.

use serde::{Deserialize, Serialize};

/// Up to this many `properties.<name>` dimensions per partner (API.md).
pub const MAX_PROPERTY_DIMENSIONS: usize = 20;

/// One breakdown dimension. A declared property is known by its slot in the partner's
/// declared list: a store keys it by name (`Dimension::name`), so slots need not be stable
/// across declarations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Dimension {
    EventType,
    Subsystem,
    Page,
    ReferrerHost,
    UtmSource,
    UtmMedium,
    UtmCampaign,
    Browser,
    Os,
    DeviceType,
    Country,
    /// Answered from the bot and human partitions every cell has (`CellKey::bots`), so no
    /// cell of its own is kept.
    Bot,
    /// Whether the event passed its schema (`"true"`/`"false"`): what a filtered summary's
    /// `validEvents` and `invalidEvents` are read from.
    Valid,
    Property(u8),
}

/// The built-in dimensions, in the order `DimensionValues` holds them.
pub const BUILTIN_DIMENSIONS: [Dimension; 13] = [
    Dimension::EventType,
    Dimension::Subsystem,
    Dimension::Page,
    Dimension::ReferrerHost,
    Dimension::UtmSource,
    Dimension::UtmMedium,
    Dimension::UtmCampaign,
    Dimension::Browser,
    Dimension::Os,
    Dimension::DeviceType,
    Dimension::Country,
    Dimension::Bot,
    Dimension::Valid,
];

const BUILTIN_NAMES: [&str; 13] = [
    "eventType",
    "subsystem",
    "page",
    "referrerHost",
    "utmSource",
    "utmMedium",
    "utmCampaign",
    "browser",
    "os",
    "deviceType",
    "country",
    "bot",
    "valid",
];

const PROPERTY_PREFIX: &str = "properties.";

impl Dimension {
    /// The dimension a `dimension=` or `where=` key names, given the partner's declared
    /// properties; `None` for anything else (the endpoint's `400`).
    pub fn parse(name: &str, declared: &[String]) -> Option<Dimension> {
        if let Some(property) = name.strip_prefix(PROPERTY_PREFIX) {
            let slot = declared.iter().position(|declared| declared == property)?;
            return u8::try_from(slot)
                .ok()
                .filter(|slot| usize::from(*slot) < MAX_PROPERTY_DIMENSIONS)
                .map(Dimension::Property);
        }
        let index = BUILTIN_NAMES.iter().position(|builtin| *builtin == name)?;
        Some(BUILTIN_DIMENSIONS[index])
    }

    /// The API's name for it (`properties.<name>` for a declared property; `None` for a
    /// slot the declared list does not have).
    pub fn name(self, declared: &[String]) -> Option<String> {
        match self {
            Dimension::Property(slot) => declared
                .get(usize::from(slot))
                .map(|property| format!("{PROPERTY_PREFIX}{property}")),
            builtin => Some(BUILTIN_NAMES[builtin.builtin_index()?].to_string()),
        }
    }

    fn builtin_index(self) -> Option<usize> {
        BUILTIN_DIMENSIONS
            .iter()
            .position(|builtin| *builtin == self)
    }
}

/// The values one event contributes: one per dimension, or none (an event without a page,
/// a property it does not carry). Values are strings as the API shows them; `Bot` is
/// `"true"` or `"false"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DimensionValues {
    builtin: [Option<String>; 13],
    properties: Vec<Option<String>>,
}

impl DimensionValues {
    pub fn set(&mut self, dimension: Dimension, value: impl Into<String>) {
        let value = Some(value.into());
        match dimension {
            Dimension::Property(slot) => {
                let slot = usize::from(slot);
                if slot >= MAX_PROPERTY_DIMENSIONS {
                    return;
                }
                if self.properties.len() <= slot {
                    self.properties.resize(slot + 1, None);
                }
                self.properties[slot] = value;
            }
            builtin => {
                let index = builtin.builtin_index().expect("a built-in dimension");
                self.builtin[index] = value;
            }
        }
    }

    pub fn get(&self, dimension: Dimension) -> Option<&str> {
        match dimension {
            Dimension::Property(slot) => self.properties.get(usize::from(slot))?.as_deref(),
            builtin => self.builtin[builtin.builtin_index()?].as_deref(),
        }
    }

    pub fn is_bot(&self) -> bool {
        self.get(Dimension::Bot) == Some("true")
    }

    /// The declared properties this event has a value for, with their values.
    pub fn properties(&self) -> impl Iterator<Item = (Dimension, &str)> {
        self.properties
            .iter()
            .enumerate()
            .filter_map(|(slot, value)| {
                let slot = u8::try_from(slot).ok()?;
                Some((Dimension::Property(slot), value.as_deref()?))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions_parse_by_api_name_and_declared_property() {
        let declared = vec!["plan".to_string(), "tier".to_string()];
        assert_eq!(
            Dimension::parse("referrerHost", &declared),
            Some(Dimension::ReferrerHost)
        );
        assert_eq!(
            Dimension::parse("properties.tier", &declared),
            Some(Dimension::Property(1))
        );
        assert_eq!(Dimension::parse("properties.other", &declared), None);
        assert_eq!(Dimension::parse("referrer", &declared), None);
        for name in BUILTIN_NAMES {
            let dimension = Dimension::parse(name, &declared).unwrap();
            assert_eq!(dimension.name(&declared).as_deref(), Some(name));
        }
        assert_eq!(
            Dimension::Property(0).name(&declared).as_deref(),
            Some("properties.plan")
        );
    }

    #[test]
    fn values_hold_one_value_per_dimension_and_properties_by_slot() {
        let mut values = DimensionValues::default();
        values.set(Dimension::Country, "FR");
        values.set(Dimension::Property(3), "pro");
        values.set(Dimension::Property(25), "ignored");
        values.set(Dimension::Bot, "true");
        assert_eq!(values.get(Dimension::Country), Some("FR"));
        assert_eq!(values.get(Dimension::Page), None);
        assert!(values.is_bot());
        assert_eq!(
            values.properties().collect::<Vec<_>>(),
            [(Dimension::Property(3), "pro")]
        );
    }
}
