use serde::{Deserialize, Serialize};

/// What ingestion derives from an event once, stored with it (`enrichment` in the
/// listing) and read by breakdowns: where the visit came from, on what, from where.
/// `enrich::Enricher::enrich` says where each field comes from. Every field may be
/// absent (events stored before enrichment, or nothing to derive it from), and a record
/// missing fields reads as those fields absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Enrichment {
    /// The page's path, without query or fragment (e.g. `/pricing`).
    pub page: Option<String>,
    /// The referring page's host, lowercase, without `www.` or port; absent for direct
    /// visits and for the partner's own hosts.
    pub referrer_host: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    /// The browser's family (`Chrome`, `Safari`, `Firefox`…), or the crawler's name.
    pub browser: Option<String>,
    /// The operating system's family (`Windows`, `macOS`, `iOS`, `Android`, `Linux`…).
    pub os: Option<String>,
    pub device_type: Option<DeviceType>,
    /// ISO 3166-1 alpha-2, uppercase; only when a GeoIP database is configured.
    pub country: Option<String>,
    /// A crawler, uptime monitor or HTTP tool by its user agent (then `deviceType` is `bot`).
    /// Reports leave bots out unless asked.
    pub bot: bool,
}

impl Enrichment {
    /// About how many bytes of memory the record holds (for queue budgets).
    pub fn approximate_size(&self) -> usize {
        let texts = [
            &self.page,
            &self.referrer_host,
            &self.utm_source,
            &self.utm_medium,
            &self.utm_campaign,
            &self.browser,
            &self.os,
            &self.country,
        ];
        std::mem::size_of::<Enrichment>()
            + texts
                .iter()
                .map(|text| text.as_ref().map_or(0, String::len))
                .sum::<usize>()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeviceType {
    Desktop,
    Mobile,
    Tablet,
    Bot,
    /// A user agent that names none of the above (TVs, consoles, libraries, unknown).
    Other,
}

impl DeviceType {
    /// The name as it appears in the API and in breakdown values.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceType::Desktop => "desktop",
            DeviceType::Mobile => "mobile",
            DeviceType::Tablet => "tablet",
            DeviceType::Bot => "bot",
            DeviceType::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_in_camel_case_and_reads_a_partial_record() {
        let enrichment = Enrichment {
            referrer_host: Some("news.ycombinator.com".into()),
            device_type: Some(DeviceType::Tablet),
            ..Enrichment::default()
        };
        let json = serde_json::to_value(&enrichment).unwrap();
        assert_eq!(json["referrerHost"], "news.ycombinator.com");
        assert_eq!(json["deviceType"], "tablet");
        assert_eq!(json["bot"], false);
        let partial: Enrichment = serde_json::from_str(r#"{"utmSource": "newsletter"}"#).unwrap();
        assert_eq!(partial.utm_source.as_deref(), Some("newsletter"));
        assert_eq!(partial.device_type, None);
        assert!(!partial.bot);
    }

    #[test]
    fn device_type_names_match_the_api() {
        for device_type in [
            DeviceType::Desktop,
            DeviceType::Mobile,
            DeviceType::Tablet,
            DeviceType::Bot,
            DeviceType::Other,
        ] {
            let json = serde_json::to_value(device_type).unwrap();
            assert_eq!(json, device_type.as_str());
        }
    }
}
