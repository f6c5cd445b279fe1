//! User agents → browser, OS, device type and bot flag, parsed once per distinct agent
//! and kept in a bounded in-memory cache (most traffic repeats a few hundred agents).
//!
//! Browser, OS and device class come from Woothee (rules in code, no data file to ship,
//! no start-up cost); the bot flag from Woothee's crawler class or the isbot pattern list
//! (crawlers, uptime monitors, HTTP tools and headless browsers Woothee doesn't know).
//! Woothee files tablets under "smartphone": an iPad, or an Android agent without
//! `Mobile` (Google's rule for Android tablets), is a tablet here.

use std::sync::{Arc, LazyLock};

use moka::sync::Cache;
use prometheus::IntCounter;

use crate::config::EnrichConfig;
use crate::model::DeviceType;
use crate::telemetry::Metrics;

use super::recent;

/// The cache's name on `volcanion_cache_{hits,misses}_total`.
const CACHE_NAME: &str = "user_agents";
/// Woothee's word for a field it could not tell.
const UNKNOWN: &str = "UNKNOWN";

/// isbot's patterns compiled into one regex, once per process (every enricher, and every
/// test app, shares it).
static BOTS: LazyLock<isbot::Bots> = LazyLock::new(isbot::Bots::default);

/// What one user agent says about the visitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Agent {
    pub browser: Option<String>,
    pub os: Option<String>,
    pub device_type: DeviceType,
    pub bot: bool,
}

pub(super) struct UserAgents {
    parser: woothee::parser::Parser,
    /// Keyed by the agent as parsed (cut to `max_length`).
    cache: Cache<Box<str>, Arc<Agent>>,
    /// This instance's tag in the per-thread `recent` agents.
    owner: u64,
    max_length: usize,
    hits: IntCounter,
    misses: IntCounter,
}

impl UserAgents {
    pub fn new(config: &EnrichConfig, metrics: &Metrics) -> UserAgents {
        UserAgents {
            parser: woothee::parser::Parser::new(),
            cache: Cache::new(config.user_agent_cache_entries),
            owner: recent::new_owner(),
            max_length: config.max_user_agent_length,
            hits: metrics.cache_hits.with_label_values(&[CACHE_NAME]),
            misses: metrics.cache_misses.with_label_values(&[CACHE_NAME]),
        }
    }

    /// The agent's classification, from the cache when this agent was seen before.
    /// Agents longer than `enrich.max_user_agent_length` are classified by that prefix.
    pub fn classify(&self, user_agent: &str) -> Arc<Agent> {
        let key = cut(user_agent.trim(), self.max_length);
        if let Some(agent) = recent::get(self.owner, key) {
            self.hits.inc();
            return agent;
        }
        let agent = match self.cache.get(key) {
            Some(agent) => {
                self.hits.inc();
                agent
            }
            None => {
                self.misses.inc();
                let agent = Arc::new(self.parse(key));
                self.cache.insert(Box::from(key), Arc::clone(&agent));
                agent
            }
        };
        recent::put(self.owner, key, &agent);
        agent
    }

    fn parse(&self, user_agent: &str) -> Agent {
        let parsed = self.parser.parse(user_agent);
        let known = |text: &str| (!text.is_empty() && text != UNKNOWN).then(|| text.to_string());
        let (browser, os, category) = match &parsed {
            Some(result) => (known(result.name), known(result.os), result.category),
            None => (None, None, ""),
        };
        let bot = category == "crawler" || BOTS.is_bot(user_agent);
        let device_type = if bot {
            DeviceType::Bot
        } else {
            device_type(category, os.as_deref(), user_agent)
        };
        Agent {
            browser,
            os: os.as_deref().map(os_family),
            device_type,
            bot,
        }
    }
}

/// Woothee's category (`pc`, `smartphone`, `mobilephone`, `appliance`, `misc`) as ours.
fn device_type(category: &str, os: Option<&str>, user_agent: &str) -> DeviceType {
    match category {
        "pc" => DeviceType::Desktop,
        "smartphone" if os == Some("iPad") => DeviceType::Tablet,
        "smartphone" if os == Some("Android") && !user_agent.contains("Mobile") => {
            DeviceType::Tablet
        }
        "smartphone" | "mobilephone" => DeviceType::Mobile,
        _ => DeviceType::Other,
    }
}

/// Woothee names versions and devices (`Windows 10`, `Mac OSX`, `iPhone`); breakdowns
/// want the family, so that one OS is one value.
fn os_family(os: &str) -> String {
    let family = match os {
        "iPhone" | "iPad" | "iPod" | "iOS" => "iOS",
        "Mac OSX" | "Mac OS Classic" => "macOS",
        "Windows Phone OS" => "Windows Phone",
        windows if windows.starts_with("Windows") => "Windows",
        other => other,
    };
    family.to_string()
}

/// `text` cut to at most `max_bytes`, at a character boundary.
pub(super) fn cut(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
    const CHROME_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
    const FIREFOX_LINUX: &str =
        "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0";
    const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
    const SAFARI_IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
    const CHROME_ANDROID_PHONE: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36";
    const CHROME_ANDROID_TABLET: &str = "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Safari/537.36";
    const GOOGLEBOT: &str =
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    const UPTIME_ROBOT: &str =
        "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)";
    const CURL: &str = "curl/8.5.0";

    fn user_agents() -> UserAgents {
        UserAgents::new(&Config::defaults().enrich, &Metrics::new())
    }

    fn classified(user_agent: &str) -> (Option<String>, Option<String>, DeviceType, bool) {
        let agent = user_agents().classify(user_agent);
        (
            agent.browser.clone(),
            agent.os.clone(),
            agent.device_type,
            agent.bot,
        )
    }

    fn some(text: &str) -> Option<String> {
        Some(text.to_string())
    }

    #[test]
    fn chrome_on_windows_and_mac_and_firefox_on_linux_are_desktops() {
        assert_eq!(
            classified(CHROME_WINDOWS),
            (some("Chrome"), some("Windows"), DeviceType::Desktop, false)
        );
        assert_eq!(
            classified(CHROME_MAC),
            (some("Chrome"), some("macOS"), DeviceType::Desktop, false)
        );
        assert_eq!(
            classified(FIREFOX_LINUX),
            (some("Firefox"), some("Linux"), DeviceType::Desktop, false)
        );
    }

    #[test]
    fn safari_on_an_iphone_is_mobile_ios() {
        assert_eq!(
            classified(SAFARI_IPHONE),
            (some("Safari"), some("iOS"), DeviceType::Mobile, false)
        );
    }

    #[test]
    fn an_ipad_is_a_tablet() {
        assert_eq!(
            classified(SAFARI_IPAD),
            (some("Safari"), some("iOS"), DeviceType::Tablet, false)
        );
    }

    #[test]
    fn android_is_mobile_with_the_mobile_token_and_a_tablet_without() {
        assert_eq!(
            classified(CHROME_ANDROID_PHONE),
            (some("Chrome"), some("Android"), DeviceType::Mobile, false)
        );
        assert_eq!(classified(CHROME_ANDROID_TABLET).2, DeviceType::Tablet);
    }

    #[test]
    fn crawlers_monitors_and_http_tools_are_bots() {
        for bot in [
            GOOGLEBOT,
            UPTIME_ROBOT,
            CURL,
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36",
        ] {
            let (_, _, device_type, is_bot) = classified(bot);
            assert!(is_bot, "{bot}");
            assert_eq!(device_type, DeviceType::Bot, "{bot}");
        }
        assert_eq!(classified(GOOGLEBOT).0, some("Googlebot"));
    }

    #[test]
    fn an_agent_nobody_knows_is_other_and_not_a_bot() {
        assert_eq!(
            classified("SomethingNew/1.0"),
            (None, None, DeviceType::Other, false)
        );
    }

    #[test]
    fn a_second_sighting_is_served_from_the_cache_and_counted() {
        let metrics = Metrics::new();
        let agents = UserAgents::new(&Config::defaults().enrich, &metrics);
        let first = agents.classify(SAFARI_IPHONE);
        let second = agents.classify(SAFARI_IPHONE);
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(metrics.cache_hits.with_label_values(&[CACHE_NAME]).get(), 1);
        assert_eq!(
            metrics.cache_misses.with_label_values(&[CACHE_NAME]).get(),
            1
        );
    }

    #[test]
    fn another_thread_finds_the_agent_in_the_shared_cache() {
        let metrics = Metrics::new();
        let agents = UserAgents::new(&Config::defaults().enrich, &metrics);
        let first = agents.classify(SAFARI_IPHONE);
        let second = std::thread::scope(|scope| {
            scope
                .spawn(|| agents.classify(SAFARI_IPHONE))
                .join()
                .unwrap()
        });
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(metrics.cache_hits.with_label_values(&[CACHE_NAME]).get(), 1);
        assert_eq!(
            metrics.cache_misses.with_label_values(&[CACHE_NAME]).get(),
            1
        );
    }

    #[test]
    fn long_agents_are_classified_and_cached_by_their_prefix() {
        let mut config = Config::defaults().enrich;
        config.max_user_agent_length = 64;
        let agents = UserAgents::new(&config, &Metrics::new());
        let padded = format!("{CHROME_WINDOWS} {}", "x".repeat(10_000));
        let agent = agents.classify(&padded);
        assert_eq!(agent.device_type, DeviceType::Desktop);
        agents.cache.run_pending_tasks();
        let longest_key = agents.cache.iter().map(|(key, _)| key.len()).max();
        assert_eq!(longest_key, Some(64));
    }

    #[test]
    fn cutting_respects_character_boundaries() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("héllo", 3), "hé");
        assert_eq!(cut("short", 64), "short");
    }
}
