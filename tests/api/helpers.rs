//! `TestApp`: a real instance of the service on an ephemeral port with its own store,
//! driven over real HTTP. Each test gets a fresh data dir (and, on Cassandra, a fresh
//! keyspace), so tests never share state.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Client, RequestBuilder, Response, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use volcanion::Application;
use volcanion::config::{Config, StoreBackend};
use volcanion::store::Store;
use volcanion::store::cassandra::CassandraStore;

pub const ADMIN_TOKEN: &str = "test-admin-token";
/// Keeps PBKDF2 cheap in tests; production uses the configured 100k.
const TEST_PBKDF2_ITERATIONS: u32 = 1_000;

/// The store a test runs against. Every test runs once per backend (`backend_tests!`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    /// Its own keyspace (named after `keyspace_id`, created by the app at start) on the
    /// cluster named by the variable `nodes_env` (`VOLCANION_TEST_CASSANDRA_NODES`, or
    /// `VOLCANION_TEST_CASSANDRA_CLUSTER` for the 3-node drills).
    Cassandra {
        keyspace_id: u64,
        nodes_env: &'static str,
    },
}

/// Where the Cassandra suite runs. The Cassandra variants are `#[ignore]`d, so a plain
/// `cargo test` lists them as ignored (not passed); `cargo test -- --include-ignored` runs
/// them, and then a missing variable is a failure, never a silent pass.
const CASSANDRA_NODES_ENV: &str = "VOLCANION_TEST_CASSANDRA_NODES";
/// Where `scripts/segment-sdks.sh install DIR` put the browser and Segment libraries.
const SEGMENT_SDKS_ENV: &str = "VOLCANION_TEST_SEGMENT_SDKS";
/// A Chromium to use instead of the one the libraries installed.
const CHROMIUM_ENV: &str = "VOLCANION_TEST_CHROMIUM";
/// The 3-node cluster of `scripts/cluster.sh` (`scripts/cluster.sh nodes` prints it).
const CASSANDRA_CLUSTER_ENV: &str = "VOLCANION_TEST_CASSANDRA_CLUSTER";
/// More than one bucket, so every test also exercises the readers' fan-out and merge.
const TEST_PARTNER_BUCKETS: u32 = 3;
/// Hours fold into rollups soon after their last write, so report tests read both.
const TEST_ROLLUP_SETTLE: &str = "300ms";
/// A child `volcanion` validates its configuration like production, which refuses a
/// settle within the longest write (2 × the default 5 s `request_timeout`, plus 1 s).
const TEST_PROCESS_ROLLUP_SETTLE: &str = "12s";
const TEST_ROLLUP_FOLD_INTERVAL: &str = "100ms";

impl Backend {
    /// A Cassandra backend with a fresh keyspace on the cluster named by
    /// `VOLCANION_TEST_CASSANDRA_NODES`. Panics when it is not set: a Cassandra test runs
    /// only when asked for (`--include-ignored`), and then it must not pass by doing nothing.
    pub fn cassandra_from_env(test: &str) -> Backend {
        assert!(
            cassandra_nodes(CASSANDRA_NODES_ENV).is_some(),
            "{test} needs Cassandra: set {CASSANDRA_NODES_ENV}=host:port \
             (scripts/cassandra.sh start gives 127.0.0.1:9042)"
        );
        Backend::Cassandra {
            keyspace_id: uuid::Uuid::new_v4().as_u64_pair().0,
            nodes_env: CASSANDRA_NODES_ENV,
        }
    }

    #[allow(
        dead_code,
        reason = "used by tests/cluster_drill.rs, not the API suite"
    )]
    /// The same on the 3-node cluster named by `VOLCANION_TEST_CASSANDRA_CLUSTER`, whose
    /// keyspaces replicate 3 times; panics when it is not set.
    pub fn cassandra_cluster_from_env(test: &str) -> Backend {
        assert!(
            cassandra_nodes(CASSANDRA_CLUSTER_ENV).is_some(),
            "{test} needs the 3-node Cassandra cluster: set {CASSANDRA_CLUSTER_ENV}=host:port,... \
             (scripts/cluster.sh start, then scripts/cluster.sh nodes)"
        );
        Backend::Cassandra {
            keyspace_id: uuid::Uuid::new_v4().as_u64_pair().0,
            nodes_env: CASSANDRA_CLUSTER_ENV,
        }
    }

    /// The contact points, comma-separated.
    pub fn cassandra_nodes(self) -> String {
        match self {
            Backend::Embedded => String::new(),
            Backend::Cassandra { nodes_env, .. } => {
                cassandra_nodes(nodes_env).expect("checked by cassandra_from_env")
            }
        }
    }

    /// The replication factor of this backend's keyspace.
    fn replication_factor(self) -> u32 {
        match self {
            Backend::Cassandra {
                nodes_env: CASSANDRA_CLUSTER_ENV,
                ..
            } => 3,
            _ => 1,
        }
    }

    /// Points `config` at this backend's store (a fresh one per test).
    pub fn apply(self, config: &mut Config) {
        match self {
            Backend::Embedded => {
                config.store.breakdown_settle =
                    humantime::parse_duration(TEST_ROLLUP_SETTLE).unwrap();
                config.store.breakdown_fold_interval =
                    humantime::parse_duration(TEST_ROLLUP_FOLD_INTERVAL).unwrap();
            }
            Backend::Cassandra { .. } => {
                config.store.backend = StoreBackend::Cassandra;
                config.cassandra.replication_factor = self.replication_factor();
                config.cassandra.nodes = self
                    .cassandra_nodes()
                    .split(',')
                    .map(|node| node.trim().to_string())
                    .collect();
                config.cassandra.keyspace = self.keyspace();
                config.cassandra.partner_buckets = TEST_PARTNER_BUCKETS;
                config.cassandra.rollup_settle =
                    humantime::parse_duration(TEST_ROLLUP_SETTLE).unwrap();
                config.cassandra.rollup_fold_interval =
                    humantime::parse_duration(TEST_ROLLUP_FOLD_INTERVAL).unwrap();
            }
        }
    }

    /// The same, as environment variables for a child `volcanion` process.
    pub fn environment(self) -> Vec<(String, String)> {
        match self {
            Backend::Embedded => Vec::new(),
            Backend::Cassandra { .. } => vec![
                ("VOLCANION_STORE__BACKEND".into(), "cassandra".into()),
                ("VOLCANION_CASSANDRA__NODES".into(), self.cassandra_nodes()),
                (
                    "VOLCANION_CASSANDRA__REPLICATION_FACTOR".into(),
                    self.replication_factor().to_string(),
                ),
                ("VOLCANION_CASSANDRA__KEYSPACE".into(), self.keyspace()),
                (
                    "VOLCANION_CASSANDRA__PARTNER_BUCKETS".into(),
                    TEST_PARTNER_BUCKETS.to_string(),
                ),
                (
                    "VOLCANION_CASSANDRA__ROLLUP_SETTLE".into(),
                    TEST_PROCESS_ROLLUP_SETTLE.into(),
                ),
                (
                    "VOLCANION_CASSANDRA__ROLLUP_FOLD_INTERVAL".into(),
                    TEST_ROLLUP_FOLD_INTERVAL.into(),
                ),
            ],
        }
    }

    fn keyspace(self) -> String {
        match self {
            Backend::Embedded => String::new(),
            Backend::Cassandra { keyspace_id, .. } => format!("vt_test_{keyspace_id:016x}"),
        }
    }
}

fn cassandra_nodes(variable: &str) -> Option<String> {
    std::env::var(variable)
        .ok()
        .filter(|nodes| !nodes.trim().is_empty())
}

/// Drops a test's keyspace when the test ends, passed or failed (best effort).
pub struct KeyspaceCleanup {
    backend: Backend,
}

impl KeyspaceCleanup {
    pub fn new(backend: Backend) -> KeyspaceCleanup {
        KeyspaceCleanup { backend }
    }
}

impl Drop for KeyspaceCleanup {
    fn drop(&mut self) {
        let mut config = Config::defaults();
        self.backend.apply(&mut config);
        // Drop runs inside the test's runtime, which can't be blocked on: use a thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the clean-up");
            runtime.block_on(CassandraStore::drop_keyspace(&config.cassandra))
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("could not drop the test keyspace: {error}");
        }
    }
}

/// A plain CQL session on the test cluster, for what a test does behind the store's back.
pub async fn cql_session(config: &Config) -> scylla::client::session::Session {
    scylla::client::session_builder::SessionBuilder::new()
        .known_nodes(&config.cassandra.nodes)
        .build()
        .await
        .expect("a CQL session on the test cluster")
}

/// Generates one `#[tokio::test]` per backend for each named `async fn(Backend)`: in
/// `mod embedded`, and in `mod cassandra`, ignored unless asked for with
/// `cargo test -- --include-ignored` (see `Backend::cassandra_from_env`).
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Embedded).await
                }
            )*
        }

        mod cassandra {
            $(
                #[tokio::test]
                #[ignore = "needs Cassandra: VOLCANION_TEST_CASSANDRA_NODES and --include-ignored"]
                async fn $name() {
                    let backend =
                        $crate::helpers::Backend::cassandra_from_env(stringify!($name));
                    let _cleanup = $crate::helpers::KeyspaceCleanup::new(backend);
                    super::$name(backend).await
                }
            )*
        }
    };
}

/// Builds a test configuration; tweak it before `spawn`.
pub struct TestAppBuilder {
    config: Config,
    data_dir: TempDir,
}

impl TestAppBuilder {
    pub fn new(backend: Backend) -> TestAppBuilder {
        let data_dir = TempDir::new().expect("temp dir");
        let mut config = Config::defaults();
        backend.apply(&mut config);
        config.http.listen = "127.0.0.1:0".parse().unwrap();
        config.store.data_dir = data_dir.path().to_path_buf();
        config.auth.admin_token = Some(SecretString::from(ADMIN_TOKEN));
        config.auth.pbkdf2_iterations = TEST_PBKDF2_ITERATIONS;
        config.ingest.linger = Duration::from_millis(5);
        TestAppBuilder { config, data_dir }
    }

    pub fn configure(mut self, change: impl FnOnce(&mut Config)) -> TestAppBuilder {
        change(&mut self.config);
        self
    }

    /// Shares one Redis (under a key prefix of its own) with other instances of this test.
    pub fn with_redis(self, url: &str, key_prefix: &str) -> TestAppBuilder {
        let (url, key_prefix) = (url.to_string(), key_prefix.to_string());
        self.configure(move |config| {
            config.redis.url = Some(SecretString::from(url));
            config.redis.key_prefix = key_prefix;
        })
    }

    pub async fn spawn(self) -> TestApp {
        let store = volcanion::open_store(&self.config)
            .await
            .expect("the store opens");
        self.spawn_on(store).await
    }

    /// Two instances on one store: what a load balancer in front of two servers sees.
    pub async fn spawn_pair(self) -> (TestApp, TestApp) {
        let store = volcanion::open_store(&self.config)
            .await
            .expect("the store opens");
        let twin = TestAppBuilder {
            config: self.config.clone(),
            data_dir: TempDir::new().expect("temp dir"),
        };
        let first = self.spawn_on(Arc::clone(&store)).await;
        let second = twin.spawn_on(store).await;
        (first, second)
    }

    /// Spawns on the configured store as `wrap` wraps it (with a test's hooks before some
    /// of its calls, say: `hooked_store`).
    pub async fn spawn_wrapping(
        self,
        wrap: impl FnOnce(Arc<dyn Store>) -> Arc<dyn Store>,
    ) -> TestApp {
        let store = volcanion::open_store(&self.config)
            .await
            .expect("the store opens");
        self.spawn_on(wrap(store)).await
    }

    /// Spawns, and hands the test the store too (to verify its rollups, say).
    pub async fn spawn_keeping_store(self) -> (TestApp, Arc<dyn Store>) {
        let store = volcanion::open_store(&self.config)
            .await
            .expect("the store opens");
        (self.spawn_on(Arc::clone(&store)).await, store)
    }

    async fn spawn_on(self, store: Arc<dyn Store>) -> TestApp {
        let application = Application::build_with_store(self.config, store)
            .await
            .expect("the app builds");
        let address = application.local_addr();
        let metrics_address = application.metrics_local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            application
                .run_until(async {
                    let _ = stopped.await;
                })
                .await
                .expect("the app shuts down cleanly");
        });
        TestApp {
            address,
            metrics_address,
            client: Client::new(),
            stop: Some(stop),
            _data_dir: self.data_dir,
        }
    }
}

/// User agents the enrichment tests send: a desktop browser, a phone, a crawler.
pub const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
pub const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
pub const GOOGLEBOT: &str =
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// A metric's value in `/metrics` text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.split_whitespace().next() == Some(name))
        .and_then(|line| line.split_whitespace().last()?.parse().ok())
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    TestAppBuilder::new(backend).spawn().await
}

pub struct TestApp {
    pub address: SocketAddr,
    /// `telemetry.metrics_listen`'s address, when the test set it.
    pub metrics_address: Option<SocketAddr>,
    pub client: Client,
    stop: Option<oneshot::Sender<()>>,
    _data_dir: TempDir,
}

/// A partner with one subsystem and a key holding both scopes.
pub struct Tenant {
    pub partner_id: String,
    pub subsystem_id: String,
    pub subsystem_code: String,
    pub key: String,
}

/// Where an event structure applies: to every partner, or to one (where it wins).
#[derive(Debug, Clone, Copy)]
pub enum SchemaScope<'a> {
    Global,
    Partner(&'a str),
}

impl SchemaScope<'_> {
    /// The structure for `event_type`, given in clear: the URL parser encodes it.
    fn path_of(self, event_type: &str) -> String {
        format!("{}/{event_type}", self.path())
    }

    fn path(self) -> String {
        match self {
            SchemaScope::Global => "/api/v1/schemas".to_string(),
            SchemaScope::Partner(partner_id) => format!("/api/v1/partners/{partner_id}/schemas"),
        }
    }
}

/// The reports under `/api/v1/reports`.
#[derive(Debug, Clone, Copy)]
pub enum Report {
    Summary,
    Timeseries,
    Breakdown,
    Funnel,
    Retention,
}

impl Report {
    fn path(self) -> &'static str {
        match self {
            Report::Summary => "/api/v1/reports/summary",
            Report::Timeseries => "/api/v1/reports/timeseries",
            Report::Breakdown => "/api/v1/reports/breakdown",
            Report::Funnel => "/api/v1/reports/funnel",
            Report::Retention => "/api/v1/reports/retention",
        }
    }
}

/// Sends `request`; only a request that never reaches the app fails the test here.
async fn send(request: RequestBuilder) -> Response {
    request.send().await.expect("the request reaches the app")
}

/// The JSON body of a `200 OK` response.
async fn ok_json(response: Response, what: &str) -> Value {
    json_with_status(response, StatusCode::OK, what).await
}

/// The JSON body of a response that must have `status`.
async fn json_with_status(response: Response, status: StatusCode, what: &str) -> Value {
    assert_eq!(response.status(), status, "{what}");
    response.json().await.expect("a JSON body")
}

/// Every management and reading call of the API (API.md), one method each. Those named
/// after the HTTP method (`post_partner`, `patch_subsystem`, …) return the response for
/// the test to check; the others (`partner`, `subsystems`, …) assert success and return
/// the parsed body.
impl TestApp {
    /// A handle on a service started elsewhere (the real binary, in `restart.rs`), which
    /// must take `ADMIN_TOKEN`. Dropping it leaves that service running.
    pub fn attach(address: SocketAddr) -> TestApp {
        TestApp {
            address,
            metrics_address: None,
            client: Client::new(),
            stop: None,
            _data_dir: TempDir::new().expect("temp dir"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub fn admin(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN)
    }

    pub fn with_key(&self, method: reqwest::Method, path: &str, key: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("x-api-key", key)
    }

    /// `GET` without credentials: health, metrics, unknown routes.
    pub async fn get(&self, path: &str) -> Response {
        send(self.client.get(self.url(path))).await
    }

    pub async fn health(&self) -> Value {
        self.get("/health").await.json().await.expect("a JSON body")
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics")
            .await
            .text()
            .await
            .expect("a text body")
    }

    /// Waits until no hour waits to be folded and at least `hours` were.
    pub async fn await_folded(&self, hours: f64) {
        wait_until(
            "the seeded hours are folded",
            Duration::from_secs(30),
            || async {
                let text = self.metrics().await;
                metric(&text, "volcanion_rollup_hours_waiting") == Some(0.0)
                    && metric(&text, "volcanion_rollup_hours_folded_total") >= Some(hours)
            },
        )
        .await;
    }

    // Partners.

    pub async fn post_partner(&self, body: &Value) -> Response {
        send(
            self.admin(reqwest::Method::POST, "/api/v1/partners")
                .json(body),
        )
        .await
    }

    pub async fn list_partners(&self, query: &str) -> Response {
        send(self.admin(reqwest::Method::GET, &format!("/api/v1/partners?{query}"))).await
    }

    pub async fn get_partner(&self, id: &str) -> Response {
        send(self.admin(reqwest::Method::GET, &format!("/api/v1/partners/{id}"))).await
    }

    pub async fn patch_partner(&self, id: &str, body: &Value) -> Response {
        let path = format!("/api/v1/partners/{id}");
        send(self.admin(reqwest::Method::PATCH, &path).json(body)).await
    }

    pub async fn delete_partner(&self, id: &str) -> Response {
        send(self.admin(reqwest::Method::DELETE, &format!("/api/v1/partners/{id}"))).await
    }

    pub async fn create_partner(&self, code: &str) -> Value {
        let body = json!({"code": code, "name": format!("Partner {code}")});
        let response = self.post_partner(&body).await;
        json_with_status(
            response,
            StatusCode::CREATED,
            &format!("create partner {code}"),
        )
        .await
    }

    pub async fn partner(&self, id: &str) -> Value {
        ok_json(self.get_partner(id).await, "get partner").await
    }

    /// One page of partners (`query`: `limit`, `cursor`).
    pub async fn partners(&self, query: &str) -> Value {
        ok_json(self.list_partners(query).await, "list partners").await
    }

    // Subsystems.

    pub async fn post_subsystem(&self, partner_id: &str, body: &Value) -> Response {
        let path = format!("/api/v1/partners/{partner_id}/subsystems");
        send(self.admin(reqwest::Method::POST, &path).json(body)).await
    }

    pub async fn list_subsystems(&self, partner_id: &str) -> Response {
        let path = format!("/api/v1/partners/{partner_id}/subsystems");
        send(self.admin(reqwest::Method::GET, &path)).await
    }

    pub async fn get_subsystem(&self, id: &str) -> Response {
        send(self.admin(reqwest::Method::GET, &format!("/api/v1/subsystems/{id}"))).await
    }

    pub async fn patch_subsystem(&self, id: &str, body: &Value) -> Response {
        let path = format!("/api/v1/subsystems/{id}");
        send(self.admin(reqwest::Method::PATCH, &path).json(body)).await
    }

    pub async fn delete_subsystem(&self, id: &str) -> Response {
        send(self.admin(reqwest::Method::DELETE, &format!("/api/v1/subsystems/{id}"))).await
    }

    /// A `web` subsystem named after its code.
    pub async fn create_subsystem(&self, partner_id: &str, code: &str) -> Value {
        let body = json!({"code": code, "name": code, "type": "web"});
        let response = self.post_subsystem(partner_id, &body).await;
        json_with_status(
            response,
            StatusCode::CREATED,
            &format!("create subsystem {code}"),
        )
        .await
    }

    pub async fn subsystem(&self, id: &str) -> Value {
        ok_json(self.get_subsystem(id).await, "get subsystem").await
    }

    pub async fn subsystems(&self, partner_id: &str) -> Value {
        let response = self.list_subsystems(partner_id).await;
        ok_json(response, "list subsystems").await
    }

    pub async fn update_subsystem(&self, id: &str, body: &Value) -> Value {
        let response = self.patch_subsystem(id, body).await;
        ok_json(response, "update subsystem").await
    }

    // API keys.

    pub async fn post_key(&self, partner_id: &str, body: &Value) -> Response {
        let path = format!("/api/v1/partners/{partner_id}/api-keys");
        send(self.admin(reqwest::Method::POST, &path).json(body)).await
    }

    pub async fn list_keys(&self, partner_id: &str) -> Response {
        let path = format!("/api/v1/partners/{partner_id}/api-keys");
        send(self.admin(reqwest::Method::GET, &path)).await
    }

    /// `body`: `{graceSeconds?}`; `None` sends no body at all.
    pub async fn rotate_key(&self, id: &str, body: Option<&Value>) -> Response {
        let request = self.admin(
            reqwest::Method::POST,
            &format!("/api/v1/api-keys/{id}/rotate"),
        );
        send(match body {
            Some(body) => request.json(body),
            None => request,
        })
        .await
    }

    pub async fn revoke_key(&self, id: &str) -> Response {
        send(self.admin(reqwest::Method::DELETE, &format!("/api/v1/api-keys/{id}"))).await
    }

    pub async fn create_key(&self, partner_id: &str, body: Value) -> Value {
        let response = self.post_key(partner_id, &body).await;
        json_with_status(response, StatusCode::CREATED, "create key").await
    }

    pub async fn keys(&self, partner_id: &str) -> Value {
        ok_json(self.list_keys(partner_id).await, "list keys").await
    }

    // Event structures.

    pub async fn put_schema(
        &self,
        scope: SchemaScope<'_>,
        event_type: &str,
        body: &Value,
    ) -> Response {
        let path = scope.path_of(event_type);
        send(self.admin(reqwest::Method::PUT, &path).json(body)).await
    }

    pub async fn get_schema(&self, scope: SchemaScope<'_>, event_type: &str) -> Response {
        let path = scope.path_of(event_type);
        send(self.admin(reqwest::Method::GET, &path)).await
    }

    pub async fn list_schemas(&self, scope: SchemaScope<'_>) -> Response {
        send(self.admin(reqwest::Method::GET, &scope.path())).await
    }

    pub async fn delete_schema(&self, scope: SchemaScope<'_>, event_type: &str) -> Response {
        let path = scope.path_of(event_type);
        send(self.admin(reqwest::Method::DELETE, &path)).await
    }

    pub async fn schema(&self, scope: SchemaScope<'_>, event_type: &str) -> Value {
        let response = self.get_schema(scope, event_type).await;
        ok_json(response, "get schema").await
    }

    pub async fn schemas(&self, scope: SchemaScope<'_>) -> Value {
        ok_json(self.list_schemas(scope).await, "list schemas").await
    }

    // Tenant set-up and ingestion.

    pub async fn tenant(&self, code: &str) -> Tenant {
        let partner = self.create_partner(code).await;
        let partner_id = id_of(&partner);
        let subsystem_code = format!("{code}-web");
        let subsystem = self.create_subsystem(&partner_id, &subsystem_code).await;
        let key = self
            .create_key(&partner_id, json!({"scopes": ["ingest", "read"]}))
            .await;
        Tenant {
            partner_id,
            subsystem_id: id_of(&subsystem),
            subsystem_code,
            key: key["key"].as_str().unwrap().to_string(),
        }
    }

    pub async fn send_event(&self, key: &str, event: &Value) -> Response {
        send(
            self.with_key(reqwest::Method::POST, "/api/v1/events", key)
                .json(event),
        )
        .await
    }

    pub async fn send_batch(&self, key: &str, events: &[Value]) -> Response {
        let body = json!({ "events": events });
        send(
            self.with_key(reqwest::Method::POST, "/api/v1/events/batch", key)
                .json(&body),
        )
        .await
    }

    /// The legacy endpoint: the key travels in the body, as `apiKey`.
    pub async fn send_legacy(&self, body: &Value) -> Response {
        send(self.client.post(self.url("/api/events/ingest")).json(body)).await
    }

    // Reading.

    pub async fn get_events(&self, key: &str, query: &str) -> Response {
        let path = format!("/api/v1/events?{query}");
        send(self.with_key(reqwest::Method::GET, &path, key)).await
    }

    /// Events read with the admin token, which must name the partner in `query`.
    pub async fn get_events_as_admin(&self, query: &str) -> Response {
        send(self.admin(reqwest::Method::GET, &format!("/api/v1/events?{query}"))).await
    }

    /// Every event a query returns, following cursors to the end.
    pub async fn all_events(&self, key: &str, query: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page_query = match &cursor {
                Some(cursor) => format!("{query}&cursor={cursor}"),
                None => query.to_string(),
            };
            let response = self.get_events(key, &page_query).await;
            assert_eq!(response.status(), StatusCode::OK);
            let page: Value = response.json().await.unwrap();
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["nextCursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return items,
            }
        }
    }

    /// Polls until `query` returns `expected` events: writes land after the 202, once a
    /// batch writer flushes. Fails after a few seconds.
    /// A listing taken while writers are still inserting may see a row on two pages (the
    /// pages are separate reads), so only a listing of distinct events counts as settled.
    pub async fn await_events(&self, key: &str, query: &str, expected: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let items = self.all_events(key, query).await;
            let distinct: std::collections::HashSet<&Value> =
                items.iter().map(|item| &item["eventId"]).collect();
            let settled = items.len() >= expected && distinct.len() == items.len();
            if settled || tokio::time::Instant::now() > deadline {
                assert_eq!(items.len(), expected, "events visible for {query}");
                return items;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn report(&self, key: &str, report: Report, query: &str) -> Response {
        let path = format!("{}?{query}", report.path());
        send(self.with_key(reqwest::Method::GET, &path, key)).await
    }

    pub async fn summary(&self, key: &str, query: &str) -> Value {
        let response = self.report(key, Report::Summary, query).await;
        ok_json(response, "summary").await
    }

    pub async fn timeseries(&self, key: &str, query: &str) -> Value {
        let response = self.report(key, Report::Timeseries, query).await;
        ok_json(response, "timeseries").await
    }

    pub async fn breakdown(&self, key: &str, query: &str) -> Value {
        let response = self.report(key, Report::Breakdown, query).await;
        ok_json(response, "breakdown").await
    }

    pub async fn funnel(&self, key: &str, query: &str) -> Value {
        let response = self.report(key, Report::Funnel, query).await;
        ok_json(response, "funnel").await
    }

    pub async fn retention(&self, key: &str, query: &str) -> Value {
        let response = self.report(key, Report::Retention, query).await;
        ok_json(response, "retention").await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_string()
}

/// Asserts a problem+json answer with `status`, returning its body.
pub async fn assert_problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(content_type, "application/problem+json");
    let correlation = response.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    assert!(body["title"].is_string() && body["type"].is_string() && body["detail"].is_string());
    assert_eq!(body["correlationId"], correlation.as_str());
    body
}

/// The `field` of every entry in a problem's `errors`, in order.
pub fn error_fields(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .expect("a problem with errors")
        .iter()
        .map(|error| error["field"].as_str().expect("a field name"))
        .collect()
}

/// An event for `tenant` with a fixed time, so ordering and reports are predictable.
pub fn event(tenant: &Tenant, event_type: &str, user: &str, timestamp: &str) -> Value {
    json!({
        "eventType": event_type,
        "userId": user,
        "subsystem": tenant.subsystem_code,
        "timestamp": timestamp,
        "properties": {"page": "/home"}
    })
}

/// Polls `condition` every 50 ms until it holds, failing with `what` after `timeout` (a
/// hang guard, not a measurement).
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The installed libraries (`VOLCANION_TEST_SEGMENT_SDKS`), holding every one of `needs`
/// (paths inside it); panics, naming `test`, when asked to run without them.
pub fn installed_libraries(test: &str, needs: &[&str]) -> PathBuf {
    let dir = std::env::var(SEGMENT_SDKS_ENV).unwrap_or_default();
    assert!(
        !dir.trim().is_empty(),
        "{test} needs {needs:?}: run scripts/segment-sdks.sh install DIR, \
         then set {SEGMENT_SDKS_ENV}=DIR"
    );
    let dir = PathBuf::from(dir);
    for need in needs {
        assert!(
            dir.join(need).is_dir(),
            "{SEGMENT_SDKS_ENV}={} holds no {need} (scripts/segment-sdks.sh install it)",
            dir.display()
        );
    }
    dir
}

/// Runs a test script to its end within `timeout`, with `VOLCANION_TEST_CHROMIUM` passed
/// on as `CHROMIUM`; its last stdout line is its findings as JSON.
pub async fn run_script(command: &mut tokio::process::Command, timeout: Duration) -> Value {
    if let Ok(chromium) = std::env::var(CHROMIUM_ENV) {
        command.env("CHROMIUM", chromium);
    }
    command.kill_on_drop(true);
    let output = tokio::time::timeout(timeout, command.output())
        .await
        .expect("the script finishes in time")
        .expect("the script starts");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{:?} failed: {stderr}",
        command.as_std()
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let last = stdout
        .lines()
        .last()
        .expect("the script prints its findings");
    serde_json::from_str(last).expect("its findings as JSON")
}

/// A partner written straight to `store` (for tests that fill a store before any
/// instance runs on it), with the event types ingestion would have recorded.
pub async fn stored_partner(store: &dyn Store, code: &str, event_types: &[&str]) -> uuid::Uuid {
    let now = chrono::Utc::now();
    let partner = volcanion::model::Partner {
        id: uuid::Uuid::now_v7(),
        code: volcanion::model::Code::parse(code).unwrap(),
        name: code.to_string(),
        email: None,
        contact_person: None,
        status: volcanion::model::EntityStatus::Active,
        rate_limit_per_minute: None,
        retention_days: None,
        store_client_ip: false,
        own_hosts: Vec::new(),
        dimensions: Vec::new(),
        created_at: now,
        updated_at: now,
    };
    store.insert_partner(&partner).await.unwrap();
    for event_type in event_types {
        store.add_event_type(partner.id, event_type).await.unwrap();
    }
    partner.id
}

/// Event `id` of `partner` as a store keeps it: a client id, `user`'s, empty payload.
pub fn stored_event(
    partner_id: uuid::Uuid,
    id: &str,
    event_type: &str,
    timestamp: chrono::DateTime<chrono::Utc>,
    user: &str,
) -> volcanion::model::Event {
    volcanion::model::Event {
        event_id: id.to_string(),
        partner_id,
        subsystem_id: uuid::Uuid::nil(),
        event_type: event_type.to_string(),
        timestamp,
        received_at: chrono::Utc::now(),
        user_id: Some(user.to_string()),
        anonymous_id: None,
        properties: volcanion::model::JsonObject::empty(),
        context: volcanion::model::JsonObject::empty(),
        is_valid: true,
        validation_errors: Vec::new(),
        correlation_id: format!("c-{id}"),
        enrichment: None,
        client_event_id: true,
    }
}
