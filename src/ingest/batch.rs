//! The batch judge, one for every format with an envelope (native, Segment): each element
//! is judged on its own, so one bad event never sinks the others, and the format says what
//! a refusal of our own making does to the rest (`BatchFormat::fails_the_batch`).

use serde_json::value::RawValue;

use crate::error::Failure;
use crate::ingest::format::{Arrival, BatchFormat, FormatError, fields_of};
use crate::ingest::pipeline::{Ingestor, Origin};
use crate::model::Event;

/// What became of one element of a batch, in the envelope's order.
#[derive(Debug)]
pub enum Verdict {
    Accepted(Acknowledged),
    Refused(Failure),
}

/// What the answer says of an accepted event.
#[derive(Debug, Clone, PartialEq)]
pub struct Acknowledged {
    pub event_id: String,
    pub is_valid: bool,
    pub validation_errors: Vec<String>,
    pub received_at: chrono::DateTime<chrono::Utc>,
}

impl Acknowledged {
    pub fn of(event: &Event) -> Acknowledged {
        Acknowledged {
            event_id: event.event_id.clone(),
            is_valid: event.is_valid,
            validation_errors: event.validation_errors.clone(),
            received_at: event.received_at,
        }
    }
}

/// A batch judged: the events to store, and a verdict per element.
#[derive(Debug, Default)]
pub struct Judged {
    pub events: Vec<Event>,
    pub verdicts: Vec<Verdict>,
}

impl Judged {
    /// Every element's refusal, when none was accepted.
    fn into_refusals(self) -> Vec<Failure> {
        let refused = self.verdicts.into_iter();
        refused
            .filter_map(|verdict| match verdict {
                Verdict::Refused(refusal) => Some(refusal),
                Verdict::Accepted(_) => None,
            })
            .collect()
    }

    /// Applies the format's rule for a batch none of whose events was accepted.
    pub fn when_none_accepted<F: BatchFormat>(self, format: &F) -> Result<Judged, Failure> {
        if !self.events.is_empty() {
            return Ok(self);
        }
        let refusals = format.when_none_accepted(self.into_refusals())?;
        Ok(Judged {
            events: Vec::new(),
            verdicts: refusals.into_iter().map(Verdict::Refused).collect(),
        })
    }
}

/// Judges every element; `Err` when a refusal fails the whole batch.
pub async fn judge<F: BatchFormat>(
    ingestor: &Ingestor,
    origin: &Origin<'_>,
    format: &F,
    items: Vec<&RawValue>,
    arrival: Arrival,
) -> Result<Judged, Failure> {
    let mut judged = Judged {
        events: Vec::with_capacity(items.len()),
        verdicts: Vec::with_capacity(items.len()),
    };
    for raw in items {
        match prepare(ingestor, origin, format, raw, arrival).await {
            Ok(event) => {
                judged
                    .verdicts
                    .push(Verdict::Accepted(Acknowledged::of(&event)));
                judged.events.push(event);
            }
            Err(refusal) if format.fails_the_batch(&refusal) => return Err(refusal),
            Err(refusal) => judged.verdicts.push(Verdict::Refused(refusal)),
        }
    }
    Ok(judged)
}

async fn prepare<F: BatchFormat>(
    ingestor: &Ingestor,
    origin: &Origin<'_>,
    format: &F,
    raw: &RawValue,
    arrival: Arrival,
) -> Result<Event, Failure> {
    let max_bytes = format.max_item_bytes();
    if raw.get().len() > max_bytes {
        return Err(FormatError::TooLarge(format!(
            "the {} is larger than {max_bytes} bytes",
            F::ITEM
        ))
        .into());
    }
    let fields = fields_of(raw.get().as_bytes(), "each", F::ITEM)?;
    Ok(ingestor
        .prepare_translated(origin, format.draft(fields, arrival))
        .await?)
}
