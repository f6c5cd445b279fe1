//! Schema changes that several instances may make at once: all of them starting together
//! on a new keyspace, or a rolling upgrade whose release adds a table. On Cassandra before
//! 5.1's transactional metadata, two coordinators that create the same table at the same
//! moment give it two ids, and the nodes then disagree about it. So:
//! - every change goes to one coordinator, the same one for every instance (the connected
//!   node with the lowest host id). A node applies schema changes one at a time, so a
//!   second `CREATE ... IF NOT EXISTS` finds the first one's table and does nothing;
//! - after each change the driver waits until every reachable node agrees on the schema
//!   before answering (its `auto_await_schema_agreement`, on by default);
//! - a change that fails for a passing reason (a timeout on a loaded machine, that
//!   coordinator going away, a concurrent change) is retried until `SCHEMA_CHANGE_DEADLINE`,
//!   so an instance that meets a migration in progress waits for it instead of exiting.

use std::time::Duration;

use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use scylla::policies::load_balancing::{NodeIdentifier, SingleTargetLoadBalancingPolicy};
use scylla::statement::unprepared::Statement;
use tokio::time::Instant;
use uuid::Uuid;

use crate::store::StoreError;

/// How long one instance keeps retrying a schema change (or waiting for agreement).
pub const SCHEMA_CHANGE_DEADLINE: Duration = Duration::from_secs(120);
/// A schema change flushes the schema tables on every node: slow on a loaded machine.
const SCHEMA_CHANGE_TIMEOUT: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Applies one DDL statement through the schema coordinator, retrying passing failures.
pub async fn apply(session: &Session, statement_text: &str) -> Result<(), StoreError> {
    let deadline = Instant::now() + SCHEMA_CHANGE_DEADLINE;
    let mut backoff = FIRST_BACKOFF;
    loop {
        let failure = match schema_coordinator(session) {
            Some(coordinator) => {
                let statement = statement_for(statement_text, coordinator);
                match session.query_unpaged(statement, ()).await {
                    Ok(_) => return Ok(()),
                    Err(error) if is_permanent(&error) => {
                        return Err(StoreError::Unavailable(format!(
                            "schema change refused: {error}"
                        )));
                    }
                    Err(error) => error.to_string(),
                }
            }
            None => "no connected node to coordinate the schema change".to_string(),
        };
        if Instant::now() + backoff > deadline {
            return Err(StoreError::Unavailable(format!(
                "schema change not applied within {SCHEMA_CHANGE_DEADLINE:?}: {failure}"
            )));
        }
        tracing::warn!(error = %failure, retry_in = ?backoff, "schema change failed; retrying (another instance may be migrating)");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Waits until every reachable node has the same schema, retrying past the driver's own
/// timeout until `SCHEMA_CHANGE_DEADLINE`.
pub async fn await_agreement(session: &Session) -> Result<(), StoreError> {
    let deadline = Instant::now() + SCHEMA_CHANGE_DEADLINE;
    loop {
        let failure = match session.await_schema_agreement().await {
            Ok(_) => return Ok(()),
            Err(error) => error.to_string(),
        };
        if Instant::now() + MAX_BACKOFF > deadline {
            return Err(StoreError::Unavailable(format!(
                "no schema agreement within {SCHEMA_CHANGE_DEADLINE:?}: {failure}"
            )));
        }
        tracing::warn!(error = %failure, "the nodes do not agree on the schema yet; waiting");
        tokio::time::sleep(MAX_BACKOFF).await;
    }
}

/// The connected node with the lowest host id: every instance sees the same cluster, so
/// they all pick the same node while it is up.
fn schema_coordinator(session: &Session) -> Option<Uuid> {
    session
        .get_cluster_state()
        .get_nodes_info()
        .iter()
        .filter(|node| node.is_connected())
        .map(|node| node.host_id)
        .min()
}

fn statement_for(text: &str, coordinator: Uuid) -> Statement {
    let profile = ExecutionProfile::builder()
        .load_balancing_policy(SingleTargetLoadBalancingPolicy::new(
            NodeIdentifier::HostId(coordinator),
            None,
        ))
        .request_timeout(Some(SCHEMA_CHANGE_TIMEOUT))
        .build();
    let mut statement = Statement::new(text);
    statement.set_execution_profile_handle(Some(profile.into_handle()));
    // `IF NOT EXISTS` throughout: running it twice is harmless.
    statement.set_is_idempotent(true);
    statement
}

/// A statement the server will refuse however often it is sent. "Keyspace … doesn't
/// exist" is not one of them: another node may not have seen the keyspace yet.
fn is_permanent(error: &ExecutionError) -> bool {
    let ExecutionError::LastAttemptError(RequestAttemptError::DbError(db_error, message)) = error
    else {
        return false;
    };
    match db_error {
        DbError::SyntaxError | DbError::Unauthorized | DbError::AuthenticationError => true,
        DbError::Invalid => !message.contains("exist"),
        _ => false,
    }
}
