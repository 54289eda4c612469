//! Helpers for the runtime's root-only integration tests: a busybox root
//! filesystem, a static probe binary, and a guard that removes every
//! container a test created, even when the test fails.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use stack::runtime::container::build::{self, BuildContext, ImageConfig, NetworkMode};
use stack::runtime::container::{ContainerConfig, Exit, Runtime, Status};
use stack::spec::Service;

/// Whether the tests can run: root, and busybox-static installed. Without
/// them each test returns early with a message (CI has both).
pub fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let busybox = Path::new("/bin/busybox").exists();
    if !root || !busybox {
        eprintln!("skipped: needs root and /bin/busybox (apt-get install busybox-static)");
        if std::env::var_os("CI").is_some() {
            panic!("runtime tests must run on CI: run as root with busybox-static installed");
        }
    }
    root && busybox
}

include!("rootfs.rs");

const PROBE_C: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    long r = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0);
    if (r < 0) { printf("keyctl: %s\n", errno == EPERM ? "EPERM" : strerror(errno)); return 1; }
    printf("keyctl: ok\n");
    return 0;
}
"#;

/// Compiles a static program into `rootfs/bin/probe` that calls keyctl(2)
/// and prints `keyctl: EPERM`, `keyctl: ok` or another error.
pub fn install_probe(rootfs: &Path, work: &Path) {
    let src = work.join("probe.c");
    std::fs::write(&src, PROBE_C).unwrap();
    let status = Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(rootfs.join("bin/probe"))
        .arg(&src)
        .status()
        .expect("a C compiler (cc) is needed to build the seccomp probe");
    assert!(status.success(), "cannot build the static probe");
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A test's runtime: its own state root, project and container ids; every
/// container is removed on drop.
pub struct TestRuntime {
    pub dir: tempfile::TempDir,
    pub rt: Runtime,
    pub rootfs: PathBuf,
    pub project: String,
    ids: std::cell::RefCell<Vec<String>>,
}

impl TestRuntime {
    pub fn new() -> TestRuntime {
        let dir = tempfile::Builder::new()
            .prefix("stack-rt-")
            .tempdir()
            .unwrap();
        let rootfs = busybox_rootfs(dir.path());
        let rt = Runtime::new(dir.path().join("state"))
            .unwrap()
            .with_shim_binary(env!("CARGO_BIN_EXE_stack"));
        std::fs::create_dir_all(dir.path().join("state/containers")).unwrap();
        TestRuntime {
            rootfs,
            rt,
            project: format!("test{}", std::process::id()),
            ids: Default::default(),
            dir,
        }
    }

    /// A fresh container id.
    pub fn id(&self, name: &str) -> String {
        let id = format!(
            "{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// The configuration of a container running `cmd`, adjusted by `edit`.
    pub fn config(
        &self,
        id: &str,
        cmd: &[&str],
        edit: impl FnOnce(&mut Service, &mut BuildContext),
    ) -> ContainerConfig {
        let mut service = Service {
            name: "svc".into(),
            command: Some(cmd.iter().map(|s| s.to_string()).collect()),
            ..Service::default()
        };
        let mut ctx = BuildContext {
            id: id.to_string(),
            project: self.project.clone(),
            layers: vec![self.rootfs.clone()],
            network: NetworkMode::None,
            hosts: "127.0.0.1\tlocalhost\n".into(),
            resolv_conf: "nameserver 127.0.0.1\n".into(),
            binds: vec![],
            project_dir: self.dir.path().to_path_buf(),
            joins: Default::default(),
        };
        edit(&mut service, &mut ctx);
        build::container_config(&service, &ImageConfig::default(), &ctx, self.rt.root()).unwrap()
    }

    /// Runs `cmd` to completion; returns the exit and the output lines.
    pub fn run(
        &self,
        name: &str,
        cmd: &[&str],
        edit: impl FnOnce(&mut Service, &mut BuildContext),
    ) -> (Exit, Vec<String>) {
        let id = self.id(name);
        let config = self.config(&id, cmd, edit);
        self.rt.run(&id, &config).unwrap();
        let exit = self.rt.wait(&id).unwrap();
        let lines = self.output(&id);
        (exit, lines)
    }

    /// The container's log lines so far.
    pub fn output(&self, id: &str) -> Vec<String> {
        self.rt
            .logs(id, None)
            .unwrap()
            .into_iter()
            .map(|e| e.text)
            .collect()
    }

    /// Polls until `cond` holds (bounded: panics after 20 s).
    pub fn until(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn wait_running(&self, id: &str) {
        self.until("the container to run", || {
            self.rt
                .state(id)
                .map(|s| s.status == Status::Running)
                .unwrap_or(false)
        });
    }
}

impl Drop for TestRuntime {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            if self.rt.dir(id).exists() {
                let _ = self.rt.remove(id, true);
            }
        }
    }
}

/// `key: value` lines of /proc/<pid>/status-like text.
pub fn status_fields(lines: &[String]) -> BTreeMap<String, String> {
    lines
        .iter()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}
