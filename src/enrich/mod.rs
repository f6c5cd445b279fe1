//! Enrichment: what an event says about where its traffic comes from (page, referrer,
//! campaign), on what (browser, OS, device, bot) and from where (country), derived once
//! at ingest from what the event carries and stored with it (`model::Enrichment`).
//! Pure computation: no HTTP, no store; the ingest path and `rollups rebuild` call
//! [`Enricher::enrich`] with an event's `context`, `properties`, the request's user agent
//! and client address, and the partner's own hosts.

mod agent;
mod carried;
mod country;
mod recent;
mod urls;

use std::net::IpAddr;
use std::sync::Arc;

use crate::config::EnrichConfig;
use crate::model::{Enrichment, JsonObject};
use crate::telemetry::Metrics;

use self::agent::{UserAgents, cut};
use self::carried::{Campaign, Context, ContextPage, Properties};
use self::country::Countries;
pub use self::country::GeoIpError;

/// What enrichment reads, for one event.
#[derive(Debug, Clone, Copy)]
pub struct EnrichInput<'a> {
    /// The event's `context` (Segment's `page`, `campaign`, `userAgent`, `ip`).
    pub context: &'a JsonObject,
    /// The event's `properties` (`path`, `url`, `referrer`, `page`).
    pub properties: &'a JsonObject,
    /// The request's `User-Agent` header: used when `context.userAgent` is absent.
    pub request_user_agent: Option<&'a str>,
    /// The client address (behind trusted proxies, as `http::client_address` resolves
    /// it): used when `context.ip` is absent or not an address.
    pub client_address: Option<IpAddr>,
    /// The partner's `ownHosts`, as configured (any case, `www.` and port allowed).
    pub own_hosts: &'a [String],
}

/// Derives an event's [`Enrichment`]; built once at start and shared.
pub struct Enricher {
    user_agents: UserAgents,
    countries: Option<Countries>,
    max_value_length: usize,
}

impl Enricher {
    /// Reads the GeoIP database when one is configured: a missing file or one that is
    /// not an mmdb is an error, so a typo doesn't silently drop every country.
    pub fn new(config: &EnrichConfig, metrics: Arc<Metrics>) -> Result<Enricher, GeoIpError> {
        let countries = match &config.geoip_db {
            Some(path) => Some(Countries::open(path)?),
            None => None,
        };
        Ok(Enricher {
            user_agents: UserAgents::new(config, &metrics),
            countries,
            max_value_length: config.max_value_length,
        })
    }

    /// The event's enrichment. Each field from the first of these that is present and
    /// not blank (strings of another JSON type count as absent):
    ///
    /// - `page`: `context.page.path`, `properties.path`, the path of `context.page.url`,
    ///   of `properties.url`, then `properties.page`; without query or fragment (a full
    ///   URL given as a path gives its path).
    /// - `referrerHost`: the host of `context.page.referrer`, else `properties.referrer`;
    ///   lowercase, without `www.`, port or userinfo. Absent when it is one of the
    ///   partner's `ownHosts` or the page URL's own host (compared the same way, exactly:
    ///   a subdomain is another host), so internal navigation is not a referral.
    /// - `utmSource` / `utmMedium` / `utmCampaign`, each on its own:
    ///   `context.campaign.source` / `.medium` / `.name`, else `utm_source` / `utm_medium` /
    ///   `utm_campaign` in the page URL's query (`context.page.url`, else
    ///   `properties.url`), else in `context.page.search`.
    /// - `browser`, `os`, `deviceType`, `bot`: from `context.userAgent`, else
    ///   `request_user_agent` (a server library's own agent then, usually `other`).
    /// - `country`: `context.ip`, else `client_address`, looked up in `enrich.geoip_db`;
    ///   absent without one.
    ///
    /// Page, referrer and UTM values are cut to `enrich.max_value_length` bytes.
    pub fn enrich(&self, input: &EnrichInput<'_>) -> Enrichment {
        let context: Context = carried::read(input.context.as_str());
        let properties: Properties = carried::read(input.properties.as_str());
        let no_page = ContextPage::default();
        let page = context.page.get().unwrap_or(&no_page);
        let page_url = page.url.get().or(properties.url.get()).map(urls::split);
        let [utm_source, utm_medium, utm_campaign] = utm_fields(
            context.campaign.get(),
            [page_url.and_then(|url| url.query), page.search.get()],
            self.max_value_length,
        );

        let user_agent = context.user_agent.get().or(input.request_user_agent);
        let agent = user_agent
            .filter(|text| !text.trim().is_empty())
            .map(|text| self.user_agents.classify(text));

        let country = self.countries.as_ref().and_then(|countries| {
            let address = context
                .ip
                .get()
                .and_then(|text| text.parse::<IpAddr>().ok())
                .or(input.client_address)?;
            countries.lookup(address)
        });

        let max = self.max_value_length;
        let own_hosts = OwnHosts {
            page_host: page_url.and_then(|url| url.authority),
            configured: input.own_hosts,
        };
        Enrichment {
            page: page_path(page, &properties).map(|path| cut(path, max).to_string()),
            referrer_host: referrer_host(page, &properties, &own_hosts)
                .map(|host| cut(host, max).to_ascii_lowercase()),
            utm_source,
            utm_medium,
            utm_campaign,
            browser: agent.as_ref().and_then(|agent| agent.browser.clone()),
            os: agent.as_ref().and_then(|agent| agent.os.clone()),
            device_type: agent.as_ref().map(|agent| agent.device_type),
            country,
            bot: agent.is_some_and(|agent| agent.bot),
        }
    }
}

/// Hosts whose links are internal navigation, not referrals.
struct OwnHosts<'a> {
    /// The page URL's own host.
    page_host: Option<&'a str>,
    /// The partner's `ownHosts`.
    configured: &'a [String],
}

impl OwnHosts<'_> {
    fn contains(&self, host: &str) -> bool {
        self.page_host.is_some_and(|own| urls::same_host(own, host))
            || self.configured.iter().any(|own| urls::same_host(own, host))
    }
}

/// The referrer's bare host (not yet lowercased), by the precedence `Enricher::enrich`
/// documents, unless it is one of the own hosts.
fn referrer_host<'a>(
    page: &'a ContextPage<'_>,
    properties: &'a Properties<'_>,
    own_hosts: &OwnHosts<'_>,
) -> Option<&'a str> {
    let referrer = page.referrer.get().or(properties.referrer.get())?;
    let host = urls::bare_host(urls::split(referrer).authority?);
    (!host.is_empty() && !own_hosts.contains(host)).then_some(host)
}

/// The query parameters of the UTM fields, in `Enrichment`'s order.
const UTM_PARAMETERS: [&str; 3] = ["utm_source", "utm_medium", "utm_campaign"];

/// `utm_source`, `utm_medium`, `utm_campaign`, each from `context.campaign`, else the
/// first of `queries` that has it; cut to `max` bytes. Each query is read once.
fn utm_fields(
    campaign: Option<&Campaign<'_>>,
    queries: [Option<&str>; 2],
    max: usize,
) -> [Option<String>; 3] {
    let from_campaign = campaign.map_or([None; 3], |campaign| {
        [
            campaign.source.get(),
            campaign.medium.get(),
            campaign.name.get(),
        ]
    });
    let mut values = from_campaign.map(|value| value.map(str::to_string));
    for query in queries.into_iter().flatten() {
        if values.iter().all(Option::is_some) {
            break;
        }
        let found = urls::query_parameters(query, UTM_PARAMETERS);
        for (value, from_query) in values.iter_mut().zip(found) {
            if value.is_none() {
                *value = from_query;
            }
        }
    }
    values.map(|value| {
        value.map(|mut value| {
            let kept = cut(&value, max).len();
            value.truncate(kept);
            value
        })
    })
}

/// The page's path, by the precedence `Enricher::enrich` documents.
fn page_path<'a>(page: &'a ContextPage<'_>, properties: &'a Properties<'_>) -> Option<&'a str> {
    let as_path = |text: &'a str| Some(urls::split(text).path).filter(|path| !path.is_empty());
    page.path
        .get()
        .and_then(as_path)
        .or_else(|| properties.path.get().and_then(as_path))
        .or_else(|| page.url.get().and_then(as_path))
        .or_else(|| properties.url.get().and_then(as_path))
        .or_else(|| properties.page.get().and_then(as_path))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::Config;
    use crate::model::DeviceType;

    const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
    const GOOGLEBOT: &str =
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

    fn enricher() -> Enricher {
        Enricher::new(&Config::defaults().enrich, Arc::new(Metrics::new())).unwrap()
    }

    fn object(value: serde_json::Value) -> JsonObject {
        JsonObject::from_map(value.as_object().unwrap())
    }

    /// The enrichment of an event with this context and these properties.
    fn enriched(
        context: serde_json::Value,
        properties: serde_json::Value,
        own_hosts: &[&str],
    ) -> Enrichment {
        let own_hosts: Vec<String> = own_hosts.iter().map(|host| host.to_string()).collect();
        enricher().enrich(&EnrichInput {
            context: &object(context),
            properties: &object(properties),
            request_user_agent: None,
            client_address: None,
            own_hosts: &own_hosts,
        })
    }

    #[test]
    fn an_analytics_js_page_call_gives_every_field_but_country() {
        let enrichment = enriched(
            json!({"page": {"path": "/pricing", "url": "https://shop.example.com/pricing?utm_source=ignored",
                             "referrer": "https://www.Google.com/search?q=x"},
                   "campaign": {"source": "newsletter", "medium": "email", "name": "spring"},
                   "userAgent": SAFARI_IPHONE, "ip": "192.0.2.1"}),
            json!({}),
            &[],
        );
        assert_eq!(
            enrichment,
            Enrichment {
                page: Some("/pricing".into()),
                referrer_host: Some("google.com".into()),
                utm_source: Some("newsletter".into()),
                utm_medium: Some("email".into()),
                utm_campaign: Some("spring".into()),
                browser: Some("Safari".into()),
                os: Some("iOS".into()),
                device_type: Some(DeviceType::Mobile),
                country: None,
                bot: false,
            }
        );
    }

    #[test]
    fn one_enricher_can_be_shared_by_every_request_thread() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Enricher>();
    }

    #[test]
    fn an_event_carrying_nothing_gives_an_empty_enrichment() {
        assert_eq!(enriched(json!({}), json!({}), &[]), Enrichment::default());
    }

    #[test]
    fn the_partners_own_hosts_are_not_referrers() {
        let context = json!({"page": {"referrer": "https://WWW.Example.com:443/blog"}});
        assert_eq!(
            enriched(context.clone(), json!({}), &["example.com"]).referrer_host,
            None
        );
        assert_eq!(
            enriched(context.clone(), json!({}), &["www.EXAMPLE.com"]).referrer_host,
            None
        );
        assert_eq!(
            enriched(context, json!({}), &["shop.example.com"])
                .referrer_host
                .as_deref(),
            Some("example.com")
        );
    }

    #[test]
    fn the_page_urls_own_host_is_not_a_referrer() {
        let internal = json!({"page": {"url": "https://docs.example.com/b", "referrer": "https://docs.example.com/a"}});
        assert_eq!(enriched(internal, json!({}), &[]).referrer_host, None);
        let external = json!({"url": "https://docs.example.com/b", "referrer": "http://news.ycombinator.com/item?id=1"});
        assert_eq!(
            enriched(json!({}), external, &[]).referrer_host.as_deref(),
            Some("news.ycombinator.com")
        );
    }

    #[test]
    fn the_page_comes_from_context_then_properties_then_urls() {
        let both = enriched(
            json!({"page": {"path": "/a?x=1"}}),
            json!({"path": "/b"}),
            &[],
        );
        assert_eq!(both.page.as_deref(), Some("/a"));
        let properties_path = enriched(
            json!({"page": {"url": "https://x.io/c"}}),
            json!({"path": "/b"}),
            &[],
        );
        assert_eq!(properties_path.page.as_deref(), Some("/b"));
        let context_url = enriched(
            json!({"page": {"url": "https://x.io/c#top"}}),
            json!({"url": "https://x.io/d"}),
            &[],
        );
        assert_eq!(context_url.page.as_deref(), Some("/c"));
        let properties_url = enriched(json!({}), json!({"url": "https://x.io", "page": "/e"}), &[]);
        assert_eq!(properties_url.page.as_deref(), Some("/"));
        let page_property = enriched(json!({}), json!({"page": "/e"}), &[]);
        assert_eq!(page_property.page.as_deref(), Some("/e"));
        let full_url_as_path = enriched(
            json!({"page": {"path": "https://x.io/f?y=2"}}),
            json!({}),
            &[],
        );
        assert_eq!(full_url_as_path.page.as_deref(), Some("/f"));
    }

    #[test]
    fn utm_fields_prefer_context_campaign_then_the_page_url_then_its_search() {
        let enrichment = enriched(
            json!({"campaign": {"source": "from-campaign"},
                   "page": {"url": "https://x.io/?utm_source=from-url&utm_medium=cpc", "search": "?utm_campaign=from-search&utm_medium=not-this"}}),
            json!({}),
            &[],
        );
        assert_eq!(enrichment.utm_source.as_deref(), Some("from-campaign"));
        assert_eq!(enrichment.utm_medium.as_deref(), Some("cpc"));
        assert_eq!(enrichment.utm_campaign.as_deref(), Some("from-search"));
        let from_properties = enriched(
            json!({}),
            json!({"url": "/landing?utm_campaign=launch%202"}),
            &[],
        );
        assert_eq!(from_properties.utm_campaign.as_deref(), Some("launch 2"));
    }

    #[test]
    fn the_request_user_agent_counts_only_without_context_user_agent() {
        let enricher = enricher();
        let empty = JsonObject::empty();
        let with_context = object(json!({"userAgent": SAFARI_IPHONE}));
        let input = EnrichInput {
            context: &empty,
            properties: &empty,
            request_user_agent: Some(GOOGLEBOT),
            client_address: None,
            own_hosts: &[],
        };
        let from_request = enricher.enrich(&input);
        assert!(from_request.bot);
        assert_eq!(from_request.device_type, Some(DeviceType::Bot));
        let from_context = enricher.enrich(&EnrichInput {
            context: &with_context,
            ..input
        });
        assert!(!from_context.bot);
        assert_eq!(from_context.device_type, Some(DeviceType::Mobile));
    }

    #[test]
    fn values_are_cut_to_the_configured_length() {
        let long_path = format!("/{}", "a".repeat(1000));
        let enrichment = enriched(json!({"page": {"path": long_path}}), json!({}), &[]);
        let max = Config::defaults().enrich.max_value_length;
        assert_eq!(enrichment.page.map(|page| page.len()), Some(max));
    }

    #[test]
    fn without_a_geoip_database_there_is_no_country() {
        let enricher = enricher();
        let context = object(json!({"ip": "8.8.8.8"}));
        let enrichment = enricher.enrich(&EnrichInput {
            context: &context,
            properties: &JsonObject::empty(),
            request_user_agent: None,
            client_address: Some("1.1.1.1".parse().unwrap()),
            own_hosts: &[],
        });
        assert_eq!(enrichment.country, None);
    }
}
