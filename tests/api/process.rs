//! The real `volcanion` binary as a child process: started on an ephemeral port with its
//! own settings, observed through `/proc`, and stopped with SIGTERM (or killed).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{ADMIN_TOKEN, Backend, TestApp};

pub struct Process {
    pub child: Child,
    pub app: TestApp,
}

/// Starts the binary on an ephemeral port and reads the bound address from its log.
pub async fn start(data_dir: &Path, backend: Backend, settings: &[(&str, &str)]) -> Process {
    let mut child = Command::new(env!("CARGO_BIN_EXE_volcanion"))
        .arg("serve")
        .env_clear()
        .env("VOLCANION_LISTEN", "127.0.0.1:0")
        .env("VOLCANION_DATA_DIR", data_dir)
        .env("VOLCANION_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("VOLCANION_AUTH__PBKDF2_ITERATIONS", "1000")
        .envs(backend.environment())
        .envs(settings.iter().copied())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // A hang guard: on a 3-node cluster, instances starting together on a new keyspace
    // take turns migrating it (tests/cluster_drill.rs).
    let address = tokio::time::timeout(Duration::from_secs(120), async {
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

pub async fn terminate(mut process: Process) {
    process.signal_terminate();
    let status = tokio::time::timeout(Duration::from_secs(30), process.child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status}");
}

impl Process {
    pub fn pid(&self) -> i32 {
        self.child.id().expect("running") as i32
    }

    /// SIGKILL, as an OOM kill or a crash would end it: no shutdown code runs.
    #[allow(dead_code, reason = "used by the drills binary, not the API suite")]
    pub async fn kill(mut self) {
        // SAFETY: sending a signal to our own child process.
        assert_eq!(unsafe { libc::kill(self.pid(), libc::SIGKILL) }, 0);
        self.child.wait().await.expect("the killed child is reaped");
    }

    pub fn signal_terminate(&self) {
        // SAFETY: sending a signal to our own child process.
        assert_eq!(unsafe { libc::kill(self.pid(), libc::SIGTERM) }, 0);
    }

    /// The child's resident memory, from `/proc/PID/status`.
    pub fn resident_bytes(&self) -> u64 {
        resident_bytes_of(self.pid()).expect("VmRSS in /proc/PID/status")
    }
}

/// A process's resident memory (`VmRSS`), while it runs.
pub fn resident_bytes_of(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())?;
    Some(kib * 1024)
}
