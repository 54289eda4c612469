//! The cgroup v2 device filter, for real. On a v1 host with a cgroup2
//! hierarchy beside it (CI's hybrid layout) the program can still be
//! attached to a cgroup2 directory of our own, under `stack/`.

#[path = "support/runtime.rs"]
mod support;

use std::path::PathBuf;
use std::process::Command;

use stack::runtime::cgroup::devices::{Rule, attach};
use stack::runtime::cgroup::{DEFAULT_DEVICE_RULES, Hierarchy};

/// A cgroup2 directory of this test, removed on drop.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
        let _ = std::fs::remove_dir(self.0.parent().unwrap());
    }
}

fn cgroup2_root() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    if let Some(Hierarchy::V2(root)) = Hierarchy::from_mountinfo(&mountinfo) {
        return Some(root);
    }
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let point = left.split(' ').nth(4)?;
        right.starts_with("cgroup2 ").then(|| PathBuf::from(point))
    })
}

#[test]
fn the_device_program_denies_all_but_the_standard_devices() {
    if !support::can_run() {
        return;
    }
    let Some(root) = cgroup2_root() else {
        eprintln!("skipped: no cgroup2 hierarchy on this host");
        return;
    };
    let dir = Dir(root.join(format!("stack/devtest-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let rules: Vec<Rule> = DEFAULT_DEVICE_RULES
        .iter()
        .map(|(allow, t, ma, mi, acc)| {
            let n = |v: &Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
            Rule::parse(*allow, &format!("{t} {}:{} {acc}", n(ma), n(mi))).unwrap()
        })
        .collect();
    attach(&dir.0, &rules).unwrap();
    // A shell moves itself into the cgroup, then tries two devices.
    let script = format!(
        "echo $$ > {}/cgroup.procs && \
         (head -c 1 /dev/zero >/dev/null && echo zero-ok || echo zero-denied) && \
         (head -c 1 /dev/kmsg >/dev/null 2>&1 && echo kmsg-ok || echo kmsg-denied)",
        dir.0.display()
    );
    let out = Command::new("/bin/busybox")
        .args(["sh", "-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["zero-ok", "kmsg-denied"],
        "{text}"
    );
}
