//! The real `volcanion` binary, stopped with SIGTERM and started again on the same data
//! dir: every event answered with 202 before the signal must be readable afterwards.

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{ADMIN_TOKEN, Backend, TestApp, id_of};

struct Process {
    child: Child,
    app: TestApp,
}

/// Starts the binary on an ephemeral port and reads the bound address from its log.
async fn start(data_dir: &Path, backend: Backend) -> Process {
    let mut child = Command::new(env!("CARGO_BIN_EXE_volcanion"))
        .arg("serve")
        .env_clear()
        .env("VOLCANION_LISTEN", "127.0.0.1:0")
        .env("VOLCANION_DATA_DIR", data_dir)
        .env("VOLCANION_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("VOLCANION_AUTH__PBKDF2_ITERATIONS", "1000")
        // A long linger keeps accepted events in memory when SIGTERM arrives.
        .env("VOLCANION_INGEST__LINGER", "2s")
        .envs(backend.environment())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if entry["message"] == "serving" {
                return entry["address"].as_str().unwrap().parse().unwrap();
            }
        }
        panic!("the binary exited before serving");
    })
    .await
    .expect("the binary reports its address");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Process {
        child,
        app: TestApp::attach(address),
    }
}

async fn terminate(mut process: Process) {
    let pid = process.child.id().expect("running") as i32;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(30), process.child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status}");
}

async fn events_accepted_before_sigterm_are_readable_after_restart(backend: Backend) {
    let data_dir = tempfile::TempDir::new().unwrap();
    let first = start(data_dir.path(), backend).await;
    let partner_id = id_of(&first.app.create_partner("acme").await);
    first.app.create_subsystem(&partner_id, "web").await;
    let key = first
        .app
        .create_key(&partner_id, json!({"scopes": ["ingest", "read"]}))
        .await;
    let key = key["key"].as_str().unwrap();

    let mut accepted = HashSet::new();
    for round in 0..5 {
        let events: Vec<Value> = (0..100)
            .map(|i| json!({"eventType": "e", "userId": format!("u{i}"), "subsystem": "web", "eventId": format!("r{round}-{i}")}))
            .collect();
        let response = first.app.send_batch(key, &events).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.unwrap();
        accepted.extend(
            body["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["eventId"].as_str().unwrap().to_string()),
        );
    }
    for i in 0..20 {
        let single = json!({"eventType": "single", "anonymousId": "a", "subsystem": "web", "eventId": format!("s{i}")});
        let response = first.app.send_event(key, &single).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        accepted.insert(format!("s{i}"));
    }
    terminate(first).await;

    let second = start(data_dir.path(), backend).await;
    let mut stored = HashSet::new();
    for item in second.app.all_events(key, "limit=1000").await {
        assert!(
            stored.insert(item["eventId"].as_str().unwrap().to_string()),
            "no duplicates"
        );
    }
    assert_eq!(stored.len(), 520);
    assert_eq!(stored, accepted);
    terminate(second).await;
}

crate::backend_tests!(events_accepted_before_sigterm_are_readable_after_restart,);
