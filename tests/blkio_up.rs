//! Block I/O through `stack up` (root, real): `blkio_config` device limits
//! reach the container's cgroup, and `stats` counts what the container
//! read from the disk.

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::time::Duration;

#[path = "support/e2e.rs"]
mod e2e;

use e2e::{Project, eventually};

/// The block device (a node in /dev) holding `dir`, and its numbers.
fn device_of(dir: &std::path::Path) -> (std::path::PathBuf, u64, u64) {
    let dev = std::fs::metadata(dir).unwrap().dev();
    let node = std::fs::read_dir("/dev")
        .unwrap()
        .flatten()
        .find(|e| {
            e.metadata()
                .is_ok_and(|m| m.file_type().is_block_device() && m.rdev() == dev)
        })
        .unwrap_or_else(|| panic!("no block device in /dev holds {}", dir.display()))
        .path();
    (
        node,
        rustix::fs::major(dev) as u64,
        rustix::fs::minor(dev) as u64,
    )
}

#[test]
fn device_limits_apply_and_stats_counts_disk_reads() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new("blkio", "name: {project}\nservices: {}\n");
    let (node, major, minor) = device_of(p.dir());
    std::fs::write(
        p.dir().join("compose.yaml"),
        format!(
            r#"name: {}
services:
  reader:
    image: localhost/busybox:latest
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    volumes: ["./data:/data"]
    blkio_config:
      device_read_bps: [{{path: {}, rate: 64mb}}]
      device_write_iops: [{{path: {}, rate: 5000}}]
"#,
            p.name,
            node.display(),
            node.display()
        ),
    )
    .unwrap();
    // A file on the disk and not in the page cache, for the container to read.
    let data = p.dir().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let file = data.join("blob");
    std::fs::write(&file, vec![7u8; 4 << 20]).unwrap();
    let f = std::fs::File::open(&file).unwrap();
    f.sync_all().unwrap();
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    drop(f);

    p.ok(&["up", "-d"]);
    let c = p.container("reader", 1);
    eventually("reader running", Duration::from_secs(20), || p.pid(&c));
    let dir = std::path::Path::new("/sys/fs/cgroup/blkio/stack")
        .join(&p.name)
        .join(&c);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    assert_eq!(
        read("blkio.throttle.read_bps_device").trim(),
        format!("{major}:{minor} {}", 64 << 20)
    );
    assert_eq!(
        read("blkio.throttle.write_iops_device").trim(),
        format!("{major}:{minor} 5000")
    );

    let o = p.exec(&c, &["cat", "/data/blob"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(o.stdout.len(), 4 << 20);
    let stats: serde_json::Value =
        serde_json::from_str(&p.ok(&["stats", "--no-stream", "--format", "json"])).unwrap();
    let block = stats[0]["BlockIO"].as_str().unwrap().to_string();
    // At least the 4 MiB it read (decimal units, as docker: 4.19MB).
    let read_mb: f64 = block
        .split(" / ")
        .next()
        .and_then(|r| r.strip_suffix("MB"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{block}"));
    assert!(read_mb >= 4.0, "{block}");
    p.ok(&["down"]);
    assert!(!dir.exists(), "{} remains", dir.display());
}

#[test]
fn a_limit_on_something_not_a_block_device_is_refused() {
    if !e2e::can_run() {
        return;
    }
    let p = Project::new(
        "blkiobad",
        r#"name: {project}
services:
  a:
    image: localhost/busybox:latest
    command: ["true"]
    blkio_config:
      device_read_bps: [{path: /dev/null, rate: 1mb}]
"#,
    );
    let err = p.fails(1, &["up", "-d"]);
    assert!(err.contains("blkio_config.device_read_bps"), "{err}");
    assert!(err.contains("a block device"), "{err}");
}
