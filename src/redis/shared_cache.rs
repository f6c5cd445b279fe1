//! Results one instance computed, shared with the others for a while: a read-through
//! cache in Redis under a digest of the result's key. A Redis that is down or slow just
//! means computing locally (every call is bounded by the client's command timeout).

use std::future::Future;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fred::prelude::{Expiration, KeysInterface};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::redis::Redis;

/// The Redis key of a result described by `key` (any serializable description of it).
fn redis_key(redis: &Redis, namespace: &str, key: &impl Serialize) -> String {
    let description = serde_json::to_vec(key).expect("cache keys serialize");
    let digest: [u8; 32] = Sha256::digest(&description).into();
    redis.key(&format!("{namespace}:{}", URL_SAFE_NO_PAD.encode(digest)))
}

/// The value another instance stored under `key` within `ttl_seconds`, else `compute`
/// (then stored for the others).
pub async fn get_or_compute<T, E>(
    redis: &Redis,
    namespace: &str,
    key: &impl Serialize,
    ttl_seconds: i64,
    compute: impl Future<Output = Result<T, E>>,
) -> Result<T, E>
where
    T: Serialize + DeserializeOwned,
{
    let key = redis_key(redis, namespace, key);
    let cached = redis
        .call("cache_get", redis.client().get::<Option<String>, _>(&key))
        .await;
    if let Some(value) = cached
        .flatten()
        .and_then(|json| serde_json::from_str(&json).ok())
    {
        return Ok(value);
    }
    let value = compute.await?;
    if let Ok(json) = serde_json::to_string(&value) {
        let expiry = Some(Expiration::EX(ttl_seconds));
        let set = redis
            .client()
            .set::<(), _, _>(&key, json, expiry, None, false);
        redis.call("cache_set", set).await;
    }
    Ok(value)
}
