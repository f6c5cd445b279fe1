//! Cache invalidation that reaches every instance: a change is applied to this
//! instance's caches at once and published on a Redis channel that every instance
//! listens to. After a reconnect everything is dropped, since messages may have been
//! missed meanwhile. Without Redis, other instances catch up within their cache TTLs.

use std::sync::Arc;

use uuid::Uuid;

use fred::prelude::{ClientLike, EventInterface, PubsubInterface};
use tokio::task::JoinHandle;

use crate::config::RedisConfig;
use crate::redis::{Redis, builder};

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// Partners, subsystems or API keys.
    Identities,
    /// Event structures.
    Schemas,
    /// Events stored for a partner's hours that had already ended: its reports over
    /// settled ranges are stale.
    LateEvents(Uuid),
    /// Every partner's settled reports (after messages may have been missed).
    AllReports,
}

const LATE_EVENTS_PREFIX: &str = "late-events:";

impl Invalidation {
    fn encode(self) -> String {
        match self {
            Invalidation::Identities => "identities".to_string(),
            Invalidation::Schemas => "schemas".to_string(),
            Invalidation::LateEvents(partner) => format!("{LATE_EVENTS_PREFIX}{partner}"),
            Invalidation::AllReports => "all-reports".to_string(),
        }
    }

    fn parse(text: &str) -> Option<Invalidation> {
        match text {
            "identities" => Some(Invalidation::Identities),
            "schemas" => Some(Invalidation::Schemas),
            "all-reports" => Some(Invalidation::AllReports),
            other => other
                .strip_prefix(LATE_EVENTS_PREFIX)
                .and_then(|partner| partner.parse().ok())
                .map(Invalidation::LateEvents),
        }
    }
}

/// Drops the local caches that `Invalidation` names.
pub type Handler = Arc<dyn Fn(Invalidation) + Send + Sync>;

const CHANNEL: &str = "invalidate";

pub struct InvalidationBus {
    redis: Option<Arc<Redis>>,
    handler: Handler,
}

impl InvalidationBus {
    pub fn new(redis: Option<Arc<Redis>>, handler: Handler) -> InvalidationBus {
        InvalidationBus { redis, handler }
    }

    /// Applies here at once, then tells the other instances.
    pub async fn publish(&self, change: Invalidation) {
        (self.handler)(change);
        self.tell_others(change).await;
    }

    /// Applies here before returning; tells the other instances in the background.
    pub fn publish_from_sync(self: &Arc<Self>, change: Invalidation) {
        (self.handler)(change);
        if self.redis.is_some() {
            let bus = Arc::clone(self);
            tokio::spawn(async move { bus.tell_others(change).await });
        }
    }

    async fn tell_others(&self, change: Invalidation) {
        if let Some(redis) = &self.redis {
            let channel = redis.key(CHANNEL);
            redis
                .call(
                    "publish",
                    redis
                        .client()
                        .publish::<i64, _, _>(channel, change.encode()),
                )
                .await;
        }
    }

    /// Subscribes to other instances' changes; runs until the process ends.
    pub async fn listen(
        config: &RedisConfig,
        url: &str,
        handler: Handler,
    ) -> Result<JoinHandle<()>, String> {
        let subscriber = builder(config, url)
            .map_err(|error| error.to_string())?
            .build_subscriber_client()
            .map_err(|error| error.to_string())?;
        let channel = format!("{}{CHANNEL}", config.key_prefix);
        let mut messages = subscriber.message_rx();
        let mut reconnects = subscriber.reconnect_rx();
        subscriber.connect();
        subscriber.manage_subscriptions();
        // Queued by the client until connected; replayed after every reconnect.
        let _ = subscriber.subscribe(channel.clone()).await;
        Ok(tokio::spawn(async move {
            let _keep_alive = subscriber;
            loop {
                tokio::select! {
                    message = messages.recv() => match message {
                        Ok(message) if message.channel == channel => {
                            if let Some(change) = message.value.as_str().and_then(|text| Invalidation::parse(text.as_ref())) {
                                handler(change);
                            }
                        }
                        Ok(_) => {}
                        // Lagged: some messages were lost, so drop everything.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => forget_everything(&handler),
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                    reconnected = reconnects.recv() => match reconnected {
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => forget_everything(&handler),
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        }))
    }
}

fn forget_everything(handler: &Handler) {
    handler(Invalidation::Identities);
    handler(Invalidation::Schemas);
    handler(Invalidation::AllReports);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn kinds_round_trip_through_their_wire_names() {
        for kind in [
            Invalidation::Identities,
            Invalidation::Schemas,
            Invalidation::LateEvents(Uuid::now_v7()),
            Invalidation::AllReports,
        ] {
            assert_eq!(Invalidation::parse(&kind.encode()), Some(kind));
        }
        assert_eq!(Invalidation::parse("other"), None);
    }

    #[tokio::test]
    async fn without_redis_changes_apply_locally() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorder = Arc::clone(&seen);
        let bus = InvalidationBus::new(
            None,
            Arc::new(move |change| recorder.lock().unwrap().push(change)),
        );
        bus.publish(Invalidation::Schemas).await;
        assert_eq!(*seen.lock().unwrap(), [Invalidation::Schemas]);
    }
}
