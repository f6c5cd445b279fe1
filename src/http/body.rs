//! Reading request bodies without letting clients choose our memory use: a declared
//! `Content-Length` over the limit is refused before a byte is read, the whole body must
//! arrive within `http.body_read_timeout` (`408`), and the bytes of every body being read
//! or held count against `http.max_body_bytes_in_flight` (`503` past it). Limits apply to
//! the bytes after decompression. The budget is held until the request is answered.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, timeout_at};

use crate::error::ErrorKind;
use crate::http::problem::ApiError;
pub use crate::ingest::Sender;

/// The budget counts in KiB, so a semaphore's permit count can hold any sane budget.
const UNIT: usize = 1024;

pub struct BodyGuard {
    budget: Arc<Semaphore>,
    unknown_senders: Arc<Semaphore>,
    /// The whole budget, in units: a body larger than this could never be read.
    total_units: usize,
    read_timeout: Duration,
}

/// A body read in full, and its share of the in-flight budget.
pub struct GuardedBody {
    pub bytes: Bytes,
    _budget: Option<OwnedSemaphorePermit>,
}

impl AsRef<[u8]> for GuardedBody {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl BodyGuard {
    pub fn new(max_bytes_in_flight: u64, read_timeout: Duration) -> BodyGuard {
        let units = (usize::try_from(max_bytes_in_flight).unwrap_or(usize::MAX) / UNIT)
            .clamp(1, Semaphore::MAX_PERMITS);
        BodyGuard {
            budget: Arc::new(Semaphore::new(units)),
            unknown_senders: Arc::new(Semaphore::new((units / 8).max(1))),
            total_units: units,
            read_timeout,
        }
    }

    /// Reads `body` whole, refusing more than `max_bytes`.
    pub async fn read(
        &self,
        headers: &HeaderMap,
        body: Body,
        max_bytes: usize,
        sender: Sender,
    ) -> Result<GuardedBody, ApiError> {
        let budget = match sender {
            Sender::Authenticated => &self.budget,
            Sender::Unknown => &self.unknown_senders,
        };
        if declared_length(headers).is_some_and(|declared| declared > max_bytes as u64) {
            return Err(too_large(max_bytes));
        }
        let deadline = Instant::now() + self.read_timeout;
        let mut body = body;
        let mut buffer = BytesMut::new();
        let mut held: Option<OwnedSemaphorePermit> = None;
        loop {
            let frame = timeout_at(deadline, body.frame())
                .await
                .map_err(|_| self.too_slow())?;
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|error| {
                ApiError::invalid(format!("cannot read the request body: {error}"))
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let size = buffer.len() + data.len();
            if size > max_bytes {
                return Err(too_large(max_bytes));
            }
            self.reserve(budget, &mut held, size)?;
            buffer.extend_from_slice(&data);
        }
        Ok(GuardedBody {
            bytes: buffer.freeze(),
            _budget: held,
        })
    }

    /// Grows `held` to cover `size` bytes, or answers that too much is in flight.
    fn reserve(
        &self,
        budget: &Arc<Semaphore>,
        held: &mut Option<OwnedSemaphorePermit>,
        size: usize,
    ) -> Result<(), ApiError> {
        let wanted = size.div_ceil(UNIT);
        if wanted > self.total_units {
            // Retrying could never help: this body alone is larger than the whole budget.
            return Err(too_large(self.total_units * UNIT));
        }
        let have = held.as_ref().map_or(0, OwnedSemaphorePermit::num_permits);
        if wanted <= have {
            return Ok(());
        }
        let more = u32::try_from(wanted - have).unwrap_or(u32::MAX);
        let extra = Arc::clone(budget)
            .try_acquire_many_owned(more)
            .map_err(|_| {
                ApiError::new(
                    ErrorKind::Unavailable,
                    "too many request bodies are in flight; retry shortly",
                )
            })?;
        match held {
            Some(permit) => permit.merge(extra),
            None => *held = Some(extra),
        }
        Ok(())
    }

    fn too_slow(&self) -> ApiError {
        ApiError::new(
            ErrorKind::RequestTimeout,
            format!(
                "the request body did not arrive within {}",
                humantime::format_duration(self.read_timeout)
            ),
        )
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
}

fn too_large(max_bytes: usize) -> ApiError {
    ApiError::new(
        ErrorKind::PayloadTooLarge,
        format!("the request body is larger than this endpoint accepts ({max_bytes} bytes)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn guard(budget: u64) -> BodyGuard {
        BodyGuard::new(budget, Duration::from_secs(5))
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from_static("10000000000"),
        );
        let error = guard(1 << 20)
            .read(&headers, Body::from("{}"), 1000, Sender::Authenticated)
            .await
            .err()
            .unwrap();
        assert_eq!(error.kind, ErrorKind::PayloadTooLarge);
    }

    #[tokio::test]
    async fn bodies_hold_their_bytes_of_the_budget_until_dropped() {
        let guard = guard(4 * 1024);
        let headers = HeaderMap::new();
        let first = guard
            .read(
                &headers,
                Body::from(vec![b'x'; 3 * 1024]),
                1 << 20,
                Sender::Authenticated,
            )
            .await
            .ok()
            .unwrap();
        let refused = guard
            .read(
                &headers,
                Body::from(vec![b'x'; 2 * 1024]),
                1 << 20,
                Sender::Authenticated,
            )
            .await
            .err()
            .unwrap();
        assert_eq!(refused.kind, ErrorKind::Unavailable);
        drop(first);
        assert!(
            guard
                .read(
                    &headers,
                    Body::from(vec![b'x'; 2 * 1024]),
                    1 << 20,
                    Sender::Authenticated
                )
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn unknown_senders_have_a_budget_of_their_own() {
        let guard = guard(64 * 1024);
        let headers = HeaderMap::new();
        let body = || Body::from(vec![b'x'; 9 * 1024]);
        let refused = guard.read(&headers, body(), 1 << 20, Sender::Unknown).await;
        assert_eq!(refused.err().unwrap().kind, ErrorKind::Unavailable);
        let known = guard
            .read(&headers, body(), 1 << 20, Sender::Authenticated)
            .await;
        assert!(known.is_ok(), "the senders with keys keep their budget");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_as_it_arrives() {
        let error = guard(1 << 20)
            .read(
                &HeaderMap::new(),
                Body::from(vec![b'x'; 2000]),
                1000,
                Sender::Authenticated,
            )
            .await
            .err()
            .unwrap();
        assert_eq!(error.kind, ErrorKind::PayloadTooLarge);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_does_not_arrive_in_time_is_a_408() {
        let (_sender, body) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let stalled = Body::from_stream(tokio_stream_of(body));
        let error = guard(1 << 20)
            .read(&HeaderMap::new(), stalled, 1000, Sender::Authenticated)
            .await
            .err()
            .unwrap();
        assert_eq!(error.kind, ErrorKind::RequestTimeout);
    }

    fn tokio_stream_of(
        mut receiver: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    ) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
        futures::stream::poll_fn(move |context| receiver.poll_recv(context))
    }
}
