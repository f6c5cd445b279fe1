//! The few fields enrichment reads from an event's `context` and `properties`, picked out
//! of their JSON text as borrowed slices: no tree is built and the rest of the object is
//! skipped. Enrichment is best effort and never refuses an event, so a field of another
//! type than expected (a number for `path`, a string for `page`) reads as absent, and an
//! object that can't be read at all (duplicate keys of a field read here) reads as empty.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, de};

/// What enrichment reads of `context` (Segment's names; native events may use them too).
#[derive(Debug, Default, Deserialize)]
pub(super) struct Context<'a> {
    #[serde(borrow, default)]
    pub page: Lenient<ContextPage<'a>>,
    #[serde(borrow, default)]
    pub campaign: Lenient<Campaign<'a>>,
    #[serde(borrow, default, rename = "userAgent")]
    pub user_agent: Text<'a>,
    #[serde(borrow, default)]
    pub ip: Text<'a>,
}

/// `context.page`, as analytics.js fills it.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ContextPage<'a> {
    #[serde(borrow, default)]
    pub path: Text<'a>,
    #[serde(borrow, default)]
    pub url: Text<'a>,
    #[serde(borrow, default)]
    pub referrer: Text<'a>,
    /// The query string (`?utm_source=…`) when `url` is the canonical URL without it.
    #[serde(borrow, default)]
    pub search: Text<'a>,
}

/// `context.campaign`: the UTM parameters, with `name` for `utm_campaign`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Campaign<'a> {
    #[serde(borrow, default)]
    pub source: Text<'a>,
    #[serde(borrow, default)]
    pub medium: Text<'a>,
    #[serde(borrow, default)]
    pub name: Text<'a>,
}

/// What enrichment reads of `properties` (a page call's own fields, or a native event's).
#[derive(Debug, Default, Deserialize)]
pub(super) struct Properties<'a> {
    #[serde(borrow, default)]
    pub path: Text<'a>,
    #[serde(borrow, default)]
    pub url: Text<'a>,
    #[serde(borrow, default)]
    pub referrer: Text<'a>,
    #[serde(borrow, default)]
    pub page: Text<'a>,
}

/// Reads `T` from JSON text, or `T::default()` when the text can't be read as one.
pub(super) fn read<'a, T: Deserialize<'a> + Default>(json: &'a str) -> T {
    serde_json::from_str(json).unwrap_or_default()
}

/// A string field: borrowed from the JSON text unless it has escapes. Blank strings and
/// values of any other type read as absent.
#[derive(Debug, Default)]
pub(super) struct Text<'a>(Option<Cow<'a, str>>);

impl<'a> Text<'a> {
    pub fn get(&self) -> Option<&str> {
        self.0
            .as_deref()
            .map(str::trim)
            .filter(|text| !text.is_empty())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text<'a>, D::Error> {
        deserializer.deserialize_any(TextVisitor(PhantomData))
    }
}

struct TextVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
    type Value = Text<'a>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Text<'a>, E> {
        Ok(Text(Some(Cow::Borrowed(text))))
    }
    fn visit_str<E>(self, text: &str) -> Result<Text<'a>, E> {
        Ok(Text(Some(Cow::Owned(text.to_string()))))
    }
    fn visit_string<E>(self, text: String) -> Result<Text<'a>, E> {
        Ok(Text(Some(Cow::Owned(text))))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Text<'a>, E> {
        Ok(Text(None))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Text<'a>, E> {
        Ok(Text(None))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Text<'a>, E> {
        Ok(Text(None))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Text<'a>, E> {
        Ok(Text(None))
    }
    fn visit_unit<E>(self) -> Result<Text<'a>, E> {
        Ok(Text(None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Text<'a>, A::Error> {
        skip_seq(seq).map(|()| Text(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Text<'a>, A::Error> {
        skip_map(map).map(|()| Text(None))
    }
}

/// A nested object field: `T` when it is an object, else absent (its text skipped).
#[derive(Debug)]
pub(super) struct Lenient<T>(Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Lenient<T> {
        Lenient(None)
    }
}

impl<T> Lenient<T> {
    pub fn get(&self) -> Option<&T> {
        self.0.as_ref()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Lenient<T>, D::Error> {
        deserializer.deserialize_any(LenientVisitor(PhantomData))
    }
}

struct LenientVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for LenientVisitor<T> {
    type Value = Lenient<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Lenient<T>, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(|value| Lenient(Some(value)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Lenient<T>, A::Error> {
        skip_seq(seq).map(|()| Lenient(None))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Lenient<T>, E> {
        Ok(Lenient(None))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Lenient<T>, E> {
        Ok(Lenient(None))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Lenient<T>, E> {
        Ok(Lenient(None))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Lenient<T>, E> {
        Ok(Lenient(None))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Lenient<T>, E> {
        Ok(Lenient(None))
    }
    fn visit_unit<E>(self) -> Result<Lenient<T>, E> {
        Ok(Lenient(None))
    }
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_segment_context_fields_and_skips_the_rest() {
        let context: Context = read(
            r#"{"library": {"name": "analytics.js"}, "page": {"path": "/a", "url": "https://x.io/a?b=1",
                "referrer": "https://t.co/", "search": "?b=1", "title": "A"},
                "campaign": {"source": "news", "medium": "email", "name": "spring", "term": "t"},
                "userAgent": "Mozilla/5.0", "ip": "192.0.2.1", "locale": "en"}"#,
        );
        let page = context.page.get().unwrap();
        assert_eq!(page.path.get(), Some("/a"));
        assert_eq!(page.search.get(), Some("?b=1"));
        assert_eq!(context.campaign.get().unwrap().name.get(), Some("spring"));
        assert_eq!(context.user_agent.get(), Some("Mozilla/5.0"));
        assert_eq!(context.ip.get(), Some("192.0.2.1"));
    }

    #[test]
    fn fields_of_another_type_read_as_absent_without_losing_the_others() {
        let properties: Properties =
            read(r#"{"path": 5, "url": {"href": "x"}, "referrer": ["a"], "page": "  /docs  "}"#);
        assert_eq!(properties.path.get(), None);
        assert_eq!(properties.url.get(), None);
        assert_eq!(properties.referrer.get(), None);
        assert_eq!(properties.page.get(), Some("/docs"));
        let context: Context = read(r#"{"page": "/a", "campaign": null, "ip": ""}"#);
        assert!(context.page.get().is_none() && context.campaign.get().is_none());
        assert_eq!(context.ip.get(), None);
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let properties: Properties = read(r#"{"path": "/caf\u00e9"}"#);
        assert_eq!(properties.path.get(), Some("/café"));
    }

    #[test]
    fn an_object_with_a_duplicate_field_reads_as_empty() {
        let properties: Properties = read(r#"{"path": "/a", "path": "/b"}"#);
        assert_eq!(properties.path.get(), None);
    }
}
