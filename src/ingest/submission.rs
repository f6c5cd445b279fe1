//! One ingest request, from its credential to its answer, whatever its wire format:
//! authenticate the sender (an `ingest` key, from the headers, or from the body for the
//! formats that carry it there), pass the replay guard, read the body (through the wire
//! floor's `Body`), split it into events (`format`), charge them to the rate budgets,
//! prepare each (`pipeline`; a batch through `batch::judge`), then hand them to the
//! writers and, by default, wait until they are stored. A refused request gives its nonce
//! back: only an accepted one spends it, so the client's corrected retry is no replay.

use std::future::Future;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use tracing::Instrument;

use crate::auth::{Authenticator, KeyHolder, PresentedCredential};
use crate::error::{Failure, ServiceError};
use crate::ingest::admission::{Admission, ReplayHeaders};
use crate::ingest::batch::{self, Acknowledged, Judged, Verdict};
use crate::ingest::format::{Arrival, BatchFormat, Format, fields_of, parse_sent_at};
use crate::ingest::pipeline::{Ingestor, Origin};
use crate::limits::{NonceClaim, RateLimitStatus};
use crate::telemetry::record_partner;

/// Whose body is read: a known sender's, or one whose credential is inside the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    Authenticated,
    /// Read from a budget of its own, so unauthenticated clients can never starve the
    /// senders with keys.
    Unknown,
}

/// A request's body, read by the wire floor under its deadline and in-flight budget.
pub trait Body: Send {
    type Bytes: AsRef<[u8]> + Send + Sync;

    fn read(
        self,
        sender: Sender,
        max_bytes: usize,
    ) -> impl Future<Output = Result<Self::Bytes, Failure>> + Send;
}

/// An ingest request as the wire floor received it.
pub struct Request<'a, B> {
    pub credential: Option<PresentedCredential>,
    pub replay: ReplayHeaders<'a>,
    pub correlation_id: String,
    /// The client's address: tied to a key found in the body (as the wire floor does for
    /// a key in the headers), and the country of events whose `context` has no `ip`.
    pub client: Option<IpAddr>,
    /// The `User-Agent` header, for events whose `context` names none.
    pub user_agent: Option<&'a str>,
    pub body: B,
}

/// An accepted request: what it submitted, and the state of its tightest rate budget.
#[derive(Debug)]
pub struct Submitted<T> {
    pub outcome: T,
    pub rate_limit: Option<RateLimitStatus>,
}

/// A refused request: why, and, when a budget refused it, that budget's state.
#[derive(Debug)]
pub struct Refused {
    pub failure: Failure,
    pub rate_limit: Option<RateLimitStatus>,
}

impl<E: ServiceError> From<E> for Refused {
    fn from(error: E) -> Refused {
        Failure::from(error).into()
    }
}

impl From<Failure> for Refused {
    fn from(failure: Failure) -> Refused {
        Refused {
            failure,
            rate_limit: None,
        }
    }
}

/// The ingest use case, over the services it needs.
pub struct Submission<'a> {
    pub authenticator: &'a Authenticator,
    pub admission: &'a Admission,
    pub ingestor: &'a Ingestor,
}

/// What the wire says of a request besides its credential and replay headers.
struct Seen<'a> {
    correlation_id: String,
    client: Option<IpAddr>,
    user_agent: Option<&'a str>,
}

/// A request whose sender is known and which passed the replay guard.
struct Opened<'a> {
    sender: KeyHolder,
    correlation_id: String,
    received_at: DateTime<Utc>,
    user_agent: Option<&'a str>,
    client: Option<IpAddr>,
    rate_limit: Option<RateLimitStatus>,
    /// The nonce this request took, given back if it ends up refused.
    nonce: Option<NonceClaim>,
}

impl Opened<'_> {
    fn origin(&self) -> Origin<'_> {
        Origin {
            sender: &self.sender,
            correlation_id: &self.correlation_id,
            received_at: self.received_at,
            user_agent: self.user_agent,
            client: self.client,
        }
    }
}

impl Submission<'_> {
    /// One event: `POST /api/v1/events`, the legacy endpoint, Segment's single calls.
    pub async fn one<F: Format, B: Body>(
        &self,
        request: Request<'_, B>,
        format: &F,
    ) -> Result<Submitted<Acknowledged>, Refused> {
        let (mut opened, body) = self.open_and_read(request, format).await?;
        let outcome = self.one_event(&mut opened, body, format).await;
        self.close(opened, outcome).await
    }

    /// A batch: each event judged on its own; the verdicts in the envelope's order.
    pub async fn batch<F: BatchFormat, B: Body>(
        &self,
        request: Request<'_, B>,
        format: &F,
    ) -> Result<Submitted<Vec<Verdict>>, Refused> {
        let (mut opened, body) = self.open_and_read(request, format).await?;
        let outcome = self.judged_batch(&mut opened, body, format).await;
        self.close(opened, outcome).await
    }

    async fn one_event<F: Format, Bytes: AsRef<[u8]>>(
        &self,
        opened: &mut Opened<'_>,
        body: Bytes,
        format: &F,
    ) -> Result<Acknowledged, Refused> {
        let fields = fields_of(body.as_ref(), "the", F::ITEM)?;
        self.charge(opened, 1).await?;
        let arrival = Arrival {
            received_at: opened.received_at,
            batch_sent_at: None,
        };
        let event = self
            .ingestor
            .prepare_translated(&opened.origin(), format.draft(fields, arrival))
            .instrument(validate_span(1))
            .await?;
        // A request waiting for the store holds no body bytes.
        drop(body);
        let acknowledged = Acknowledged::of(&event);
        self.ingestor.accept(vec![event]).await?;
        Ok(acknowledged)
    }

    async fn judged_batch<F: BatchFormat, Bytes: AsRef<[u8]>>(
        &self,
        opened: &mut Opened<'_>,
        body: Bytes,
        format: &F,
    ) -> Result<Vec<Verdict>, Refused> {
        let envelope = format.envelope().parse(body.as_ref())?;
        let count = envelope.items.len();
        self.charge(opened, count).await?;
        let arrival = Arrival {
            received_at: opened.received_at,
            batch_sent_at: envelope.sent_at.and_then(|raw| parse_sent_at(raw.get())),
        };
        let origin = opened.origin();
        let judged = batch::judge(self.ingestor, &origin, format, envelope.items, arrival)
            .instrument(validate_span(count))
            .await?
            .when_none_accepted(format)?;
        let Judged { events, verdicts } = judged;
        if events.is_empty() {
            // Nothing was accepted: the corrected batch may reuse the request's nonce.
            self.give_back_nonce(opened).await;
        }
        drop(body);
        self.ingestor.accept(events).await?;
        Ok(verdicts)
    }

    /// Authenticates the sender, checks the replay guard, reads the body: after checking
    /// a key in the headers, or, for a format whose body may hold the key, first (from the
    /// unknown senders' budget) to find it there.
    async fn open_and_read<'r, F: Format, B: Body>(
        &self,
        request: Request<'r, B>,
        format: &F,
    ) -> Result<(Opened<'r>, B::Bytes), Refused> {
        let Request {
            credential,
            replay,
            correlation_id,
            client,
            user_agent,
            body,
        } = request;
        let seen = Seen {
            correlation_id,
            client,
            user_agent,
        };
        let max_bytes = format.max_body_bytes();
        if credential.is_some() || !F::KEY_IN_BODY {
            // The key is checked before a byte of the body is read.
            let mut opened = self.open(credential, replay, seen).await?;
            return match body.read(Sender::Authenticated, max_bytes).await {
                Ok(bytes) => Ok((opened, bytes)),
                Err(failure) => {
                    self.give_back_nonce(&mut opened).await;
                    Err(failure.into())
                }
            };
        }
        let bytes = body.read(Sender::Unknown, max_bytes).await?;
        let key = format.key_in_body(bytes.as_ref())?;
        let credential = key.map(|key| PresentedCredential::in_body(key).with_client(client));
        let opened = self.open(credential, replay, seen).await?;
        Ok((opened, bytes))
    }

    async fn open<'r>(
        &self,
        credential: Option<PresentedCredential>,
        replay: ReplayHeaders<'_>,
        seen: Seen<'r>,
    ) -> Result<Opened<'r>, Refused> {
        let sender = self
            .authenticator
            .sender(credential)
            .instrument(tracing::info_span!("authenticate"))
            .await?;
        record_partner(sender.partner.id);
        let received_at = Utc::now();
        let nonce = self
            .admission
            .check_replay(&sender, replay, received_at)
            .await?;
        Ok(Opened {
            sender,
            correlation_id: seen.correlation_id,
            received_at,
            user_agent: seen.user_agent,
            client: seen.client,
            rate_limit: None,
            nonce,
        })
    }

    /// Charges `events` to the key's and the partner's budgets (not while the store fails
    /// writes: such a request is refused before it costs the sender any quota).
    async fn charge(&self, opened: &mut Opened<'_>, events: usize) -> Result<(), Refused> {
        self.ingestor.check_store_writable()?;
        match self.admission.charge(&opened.sender, events).await {
            Ok(status) => {
                opened.rate_limit = Some(status);
                Ok(())
            }
            Err(limited) => {
                let status = limited.status;
                Err(Refused {
                    failure: limited.into(),
                    rate_limit: Some(status),
                })
            }
        }
    }

    async fn close<T>(
        &self,
        mut opened: Opened<'_>,
        outcome: Result<T, Refused>,
    ) -> Result<Submitted<T>, Refused> {
        match outcome {
            Ok(outcome) => Ok(Submitted {
                outcome,
                rate_limit: opened.rate_limit,
            }),
            Err(refused) => {
                self.give_back_nonce(&mut opened).await;
                Err(refused)
            }
        }
    }

    async fn give_back_nonce(&self, opened: &mut Opened<'_>) {
        if let Some(claim) = opened.nonce.take() {
            self.admission.release_nonce(claim).await;
        }
    }
}

/// The span around the checks of a request's events (one per request, not per event).
fn validate_span(events: usize) -> tracing::Span {
    tracing::info_span!("validate", events)
}
