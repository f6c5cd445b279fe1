//! A person's lookup (API.md, "People"): the anonymous ids joined to a user, when the
//! person was first and last seen, and how many events they did. Read from people's
//! postings over the partner's whole history, only the person's span of each part (a
//! bisection: parts are sorted by person), and from the raw events of the hours not folded
//! yet; bots included, as in the listing. An erasure finds the hours holding a person's
//! events the same way (`hours_of_people`).

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::moments::MomentsAsk;
use super::{ReportError, ReportScope, ReportService, slots};
use crate::people::person_key;
use crate::rollups::Hour;

/// How far past now the lookup reads: event times past the ingest's clock skew are
/// clamped to their receive time, and no skew is a day.
const FUTURE_MARGIN_HOURS: i64 = 24;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    pub user_id: String,
    /// The anonymous ids joined to the user, in id order.
    pub anonymous_ids: Vec<String>,
    /// The person's earliest and latest event time (`null` without events).
    pub first_seen: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    /// Their events, counted as people's postings keep them: events of one type at the
    /// same millisecond count once.
    pub events: u64,
    pub data_as_of: DateTime<Utc>,
}

impl ReportService {
    /// `user`'s lookup within `scope`'s partner or subsystem (its range is ignored: the
    /// whole history is read); `None` for a user with neither events nor joined ids.
    pub async fn person(
        &self,
        scope: ReportScope,
        user: &str,
    ) -> Result<Option<Person>, ReportError> {
        let as_of = self.as_of(scope.partner_id).await?;
        let anonymous_ids = self
            .store
            .anonymous_ids_of(scope.partner_id, user.to_string())
            .await?;
        let (mut events, mut first, mut last) = (0u64, i64::MAX, i64::MIN);
        let read = self
            .history_of(scope, std::slice::from_ref(&user.to_string()), &mut |at| {
                events += 1;
                first = first.min(at);
                last = last.max(at);
            })
            .await?;
        if !read || (events == 0 && anonymous_ids.is_empty()) {
            return Ok(None);
        }
        let seen = |at: i64| {
            (events > 0)
                .then(|| DateTime::from_timestamp_millis(at))
                .flatten()
        };
        Ok(Some(Person {
            user_id: user.to_string(),
            anonymous_ids,
            first_seen: seen(first),
            last_seen: seen(last),
            events,
            data_as_of: as_of,
        }))
    }

    /// The hours holding events of any of `people` (user or anonymous ids, each as the
    /// person postings name), over the partner's whole history: where an erasure looks.
    pub async fn hours_of_people(
        &self,
        partner: Uuid,
        people: &[String],
    ) -> Result<BTreeSet<Hour>, ReportError> {
        let scope = ReportScope {
            partner_id: partner,
            subsystem_id: None,
            from: DateTime::UNIX_EPOCH,
            to: DateTime::UNIX_EPOCH,
            include_bots: true,
        };
        let mut hours = BTreeSet::new();
        self.history_of(scope, people, &mut |at| {
            if let Some(at) = DateTime::from_timestamp_millis(at) {
                hours.insert(Hour::of(at));
            }
        })
        .await?;
        Ok(hours)
    }

    /// Visits the times (ms) of the moments of each of `people` within `scope`'s partner
    /// or subsystem over its whole history, bots included: their span of each posting
    /// part, and the raw events of the hours not folded yet. False when the partner has
    /// no events.
    async fn history_of(
        &self,
        scope: ReportScope,
        people: &[String],
        visit: &mut (dyn FnMut(i64) + Send),
    ) -> Result<bool, ReportError> {
        let partner = scope.partner_id;
        let Some(first_day) = self.store.first_event_day(partner).await? else {
            return Ok(false);
        };
        let types = self.store.event_types(partner).await?;
        let _slot = self
            .slots
            .enter()
            .await
            .map_err(|slots::AllSlotsTaken| ReportError::Busy)?;
        let range = (first_day, Utc::now() + Duration::hours(FUTURE_MARGIN_HOURS));
        let scope = ReportScope {
            from: range.0,
            to: range.1,
            include_bots: true,
            ..scope
        };
        for id in people {
            let wanted = person_key(id);
            let ask = MomentsAsk {
                types: &types,
                slot_filters: &[],
                filters: &[],
                range,
                person: Some(wanted),
            };
            self.moments(scope, ask, &mut |person, _, at, _| {
                if person == wanted {
                    visit(at);
                }
            })
            .await?;
        }
        Ok(true)
    }
}
