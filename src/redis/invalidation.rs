//! Cache invalidation that reaches every instance: a change is applied to this
//! instance's caches at once and published on a Redis channel that every instance
//! listens to. After a reconnect everything is dropped, since messages may have been
//! missed meanwhile. Without Redis, other instances catch up within their cache TTLs.

use std::sync::Arc;

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
}

impl Invalidation {
    fn as_str(self) -> &'static str {
        match self {
            Invalidation::Identities => "identities",
            Invalidation::Schemas => "schemas",
        }
    }

    fn parse(text: &str) -> Option<Invalidation> {
        match text {
            "identities" => Some(Invalidation::Identities),
            "schemas" => Some(Invalidation::Schemas),
            _ => None,
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
        if let Some(redis) = &self.redis {
            let channel = redis.key(CHANNEL);
            redis
                .call(
                    "publish",
                    redis
                        .client()
                        .publish::<i64, _, _>(channel, change.as_str()),
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn kinds_round_trip_through_their_wire_names() {
        for kind in [Invalidation::Identities, Invalidation::Schemas] {
            assert_eq!(Invalidation::parse(kind.as_str()), Some(kind));
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
