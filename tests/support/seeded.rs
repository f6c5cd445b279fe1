// Issue 25's seeded workload, defined once for the benches and the tests that measure or
// check breakdowns at scale: splitmix64 and Zipf laws (s = 1), deterministic and without a
// dependency. Included (`mod seeded { include!(…) }`: a path attribute can't reach it
// from an inline test module); the includer brings `DeviceType` and `Enrichment` into scope.

use super::{DeviceType, Enrichment};

/// splitmix64.
pub struct Seeded(pub u64);

impl Seeded {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A rank in `0..cumulative.len()` drawn on the Zipf law `cumulative` sums
    /// (`zipf_law`).
    pub fn zipf(&mut self, cumulative: &[f64]) -> usize {
        let total = cumulative[cumulative.len() - 1];
        let point = (self.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
        cumulative.partition_point(|sum| *sum <= point)
    }
}

/// The running sums of 1/rank over `values` ranks.
pub fn zipf_law(values: usize) -> Vec<f64> {
    let mut sum = 0.0;
    (1..=values)
        .map(|rank| {
            sum += 1.0 / rank as f64;
            sum
        })
        .collect()
}

/// The workload's laws: 10,000 pages, 500 referrers, 50 countries, 8 browsers, systems,
/// sources and the like.
pub struct Laws {
    pub pages: Vec<f64>,
    pub referrers: Vec<f64>,
    pub countries: Vec<f64>,
    pub small: Vec<f64>,
}

impl Laws {
    pub fn new() -> Laws {
        Laws {
            pages: zipf_law(10_000),
            referrers: zipf_law(500),
            countries: zipf_law(50),
            small: zipf_law(8),
        }
    }
}

/// Three page views for a click and a signup.
pub fn event_type(s: &mut Seeded) -> &'static str {
    ["page_view", "page_view", "page_view", "click", "signup"][s.below(5) as usize]
}

/// One of 200,000 users.
pub fn user(s: &mut Seeded) -> String {
    format!("user-{}", s.below(200_000))
}

/// One event's enrichment: a referrer on half the events, UTM on a quarter, one in 50 a
/// bot.
pub fn enrichment(s: &mut Seeded, laws: &Laws) -> Enrichment {
    let bot = s.below(50) == 0;
    let utm = s.below(4) == 0;
    Enrichment {
        page: Some(format!("/page/{}", s.zipf(&laws.pages))),
        referrer_host: (s.below(2) == 0).then(|| format!("ref{}.example", s.zipf(&laws.referrers))),
        utm_source: utm.then(|| format!("source{}", s.zipf(&laws.small))),
        utm_medium: utm.then(|| ["cpc", "email", "social"][s.below(3) as usize].to_string()),
        utm_campaign: utm.then(|| format!("campaign{}", s.zipf(&laws.referrers) % 40)),
        browser: Some(format!("browser{}", s.zipf(&laws.small))),
        os: Some(format!("os{}", s.zipf(&laws.small))),
        device_type: Some(if bot {
            DeviceType::Bot
        } else {
            [DeviceType::Desktop, DeviceType::Mobile, DeviceType::Tablet][s.zipf(&laws.small) % 3]
        }),
        country: Some(format!("C{}", s.zipf(&laws.countries))),
        bot,
    }
}
