//! `privileged: true` through `stack up` (root, real), as docker gives it:
//! the host's device nodes in /dev (and usable), every capability, no
//! seccomp filter, no masked or read-only /proc paths, /sys writable.

use std::collections::BTreeSet;
use std::os::unix::fs::FileTypeExt;
use std::time::Duration;

#[path = "support/e2e.rs"]
mod e2e;

use e2e::{Project, eventually};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A `Name:\tvalue` line of a /proc/PID/status text.
fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or("")
        .trim()
}

#[test]
fn privileged_containers_get_the_hosts_devices_and_every_privilege() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "priv",
        r#"name: {project}
services:
  box:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    privileged: true
    command: ["sleep", "3600"]
  plain:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sleep", "3600"]
"#,
    );
    p.ok(&["up", "-d"]);
    let b = p.container("box", 1);
    let plain = p.container("plain", 1);
    for c in [&b, &plain] {
        eventually(&format!("{c} running"), Duration::from_secs(10), || {
            p.pid(c)
        });
    }

    // Every device node directly in the host's /dev is in the container's.
    let mut host = BTreeSet::new();
    let mut block = None;
    for e in std::fs::read_dir("/dev").unwrap().flatten() {
        let ft = std::fs::symlink_metadata(e.path()).unwrap().file_type();
        let name = e.file_name().to_string_lossy().into_owned();
        if ft.is_block_device() && block.is_none() {
            block = Some(name.clone());
        }
        if ft.is_char_device() || ft.is_block_device() {
            host.insert(name);
        }
    }
    let listed = stdout(&p.exec(&b, &["ls", "-A", "/dev"]));
    let inside: BTreeSet<String> = listed.split_whitespace().map(String::from).collect();
    let missing: Vec<_> = host.difference(&inside).collect();
    assert!(missing.is_empty(), "host devices missing: {missing:?}");
    // And they work: a block device of the host reads.
    if let Some(dev) = &block {
        let path = format!("/dev/{dev}");
        let o = p.exec(
            &b,
            &[
                "dd",
                &format!("if={path}"),
                "of=/dev/null",
                "bs=512",
                "count=1",
            ],
        );
        assert!(o.status.success(), "{path}: {o:?}");
    }
    // The plain container has the standard few only.
    let plain_dev = stdout(&p.exec(&plain, &["ls", "-A", "/dev"]));
    if let Some(dev) = &block {
        assert!(
            !plain_dev.split_whitespace().any(|d| d == dev),
            "{plain_dev}"
        );
    }

    // Every capability, no seccomp filter.
    let status = stdout(&p.exec(&b, &["cat", "/proc/self/status"]));
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(field(&status, "CapBnd"), field(&own, "CapBnd"), "{status}");
    assert_eq!(field(&status, "CapEff"), field(&own, "CapBnd"), "{status}");
    assert_eq!(field(&status, "Seccomp"), "0", "{status}");
    let plain_status = stdout(&p.exec(&plain, &["cat", "/proc/self/status"]));
    assert_eq!(field(&plain_status, "Seccomp"), "2");

    // Nothing masked or read-only in /proc; /sys is writable.
    let mounts = stdout(&p.exec(&b, &["cat", "/proc/mounts"]));
    assert!(
        !mounts.contains(" /proc/acpi ") && !mounts.contains(" /proc/sys "),
        "{mounts}"
    );
    let sys = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("/sys"))
        .unwrap_or_default();
    assert!(
        sys.split_whitespace()
            .nth(3)
            .unwrap_or("")
            .starts_with("rw"),
        "{sys}"
    );
    let plain_mounts = stdout(&p.exec(&plain, &["cat", "/proc/mounts"]));
    assert!(
        plain_mounts.contains(" /proc/acpi ") && plain_mounts.contains(" /proc/sys "),
        "{plain_mounts}"
    );

    p.ok(&["down", "-v"]);
    let left = p.leftovers();
    assert!(left.is_empty(), "left on the host: {left:?}");
}
