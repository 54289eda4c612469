//! Shared helpers for the image tests: a real registry on 127.0.0.1, test
//! images built from the static busybox with umoci and skopeo, and crafted
//! tar archives. Included by `tests/images_*.rs` with
//! `#[path = "support/images.rs"] mod images;`.
#![allow(dead_code)]

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs a command and panics with its output when it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Debian's docker-registry on 127.0.0.1, with its own storage; killed
/// (by pid) when dropped, also when the test fails.
pub struct Registry {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        Registry::start_with(None)
    }

    /// A registry requiring basic auth (bcrypt htpasswd).
    pub fn start_with_auth(user: &str, password: &str) -> Registry {
        Registry::start_with(Some((user, password)))
    }

    fn start_with(auth: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let auth_yaml = match auth {
            Some((user, password)) => {
                let line = run(Command::new("htpasswd").args(["-Bbn", user, password]));
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, line.trim()).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                    path.display()
                )
            }
            None => String::new(),
        };
        for _ in 0..5 {
            // Let the kernel pick a free port, then hand it to the registry.
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth_yaml}",
                    dir.path().join("data").display()
                ),
            )
            .unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("docker-registry (Debian package docker-registry) must be installed");
            let mut child = child;
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Registry { child, port, dir };
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // Port taken in between, or slow start: try another port.
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry did not start");
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// How many blob downloads (GET .../blobs/...) the registry served.
    pub fn blob_gets(&self) -> usize {
        let log = std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains("\"GET /v2/") && l.contains("/blobs/sha256:"))
            .count()
    }

    /// The manifest the registry stores for `repo:tag`.
    pub fn manifest(&self, repo: &str, tag: &str) -> serde_json::Value {
        let link = self.dir.path().join(format!(
            "data/docker/registry/v2/repositories/{repo}/_manifests/tags/{tag}/current/link"
        ));
        let digest = std::fs::read_to_string(link).unwrap();
        serde_json::from_slice(&std::fs::read(self.blob_file(digest.trim())).unwrap()).unwrap()
    }

    /// The file a blob is stored in.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.path().join(format!(
            "data/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal root file system: the static busybox, one symlink per applet,
/// /etc/passwd and /etc/group, reproducible times.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    let ldd = Command::new("ldd")
        .arg("/bin/busybox")
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    let out =
        String::from_utf8_lossy(&ldd.stdout).into_owned() + &String::from_utf8_lossy(&ldd.stderr);
    assert!(
        out.contains("not a dynamic executable"),
        "/bin/busybox must be static (busybox-static): {out}"
    );
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in run(Command::new("/bin/busybox").arg("--list")).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nnobody:x:65534:\n").unwrap();
    for f in ["etc/hosts", "etc/resolv.conf", "etc/hostname"] {
        std::fs::write(root.join(f), "").unwrap();
    }
    run(Command::new("sh").arg("-c").arg(format!(
        "find {} -exec touch -h -d @0 {{}} +",
        root.display()
    )));
    root
}

/// An OCI layout at `layout` holding image `tag`: busybox, plus for each
/// of `extra_layers` one more layer with those files, config `cmd` and
/// `arch`. Returns the manifest digest.
pub fn umoci_image(
    work: &Path,
    layout: &Path,
    tag: &str,
    arch: &str,
    extra_layers: &[Vec<(&str, Vec<u8>)>],
) -> String {
    if !layout.join("oci-layout").exists() {
        run(Command::new("umoci").args(["init", "--layout"]).arg(layout));
    }
    let image = format!("{}:{tag}", layout.display());
    run(Command::new("umoci").args(["new", "--image", &image]));
    let bundle = work.join(format!("bundle-{tag}"));
    run(Command::new("umoci")
        .args(["unpack", "--image", &image])
        .arg(&bundle));
    let rootfs = busybox_rootfs(&work.join(format!("src-{tag}")));
    run(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", rootfs.display()))
        .arg(bundle.join("rootfs")));
    run(Command::new("umoci")
        .args(["repack", "--refresh-bundle", "--image", &image])
        .arg(&bundle));
    for layer in extra_layers {
        for (name, data) in layer {
            let path = bundle.join("rootfs").join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, data).unwrap();
        }
        run(Command::new("umoci")
            .args(["repack", "--refresh-bundle", "--image", &image])
            .arg(&bundle));
    }
    run(Command::new("umoci").args([
        "config",
        "--image",
        &image,
        "--config.cmd",
        "sh",
        "--config.env",
        "GREETING=hello",
        "--config.workingdir",
        "/tmp",
        "--architecture",
        arch,
        "--created",
        "2020-01-01T00:00:00Z",
    ]));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .map(|m| m["digest"].as_str().unwrap().to_owned())
        .unwrap()
}

/// Adds to `layout` an image index tagged `tag` over the manifests given
/// with their (os, architecture).
pub fn add_index(layout: &Path, tag: &str, entries: &[(&str, &str)]) {
    use sha2::Digest as _;
    let manifests: Vec<serde_json::Value> = entries
        .iter()
        .map(|(digest, arch)| {
            let size = std::fs::metadata(
                layout
                    .join("blobs/sha256")
                    .join(digest.trim_start_matches("sha256:")),
            )
            .unwrap()
            .len();
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest, "size": size,
                "platform": {"os": "linux", "architecture": arch}
            })
        })
        .collect();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .unwrap();
    let digest = format!("sha256:{:x}", sha2::Sha256::digest(&index));
    std::fs::write(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
        &index,
    )
    .unwrap();
    let path = layout.join("index.json");
    let mut top: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    top["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest, "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag}
        }));
    std::fs::write(&path, serde_json::to_vec(&top).unwrap()).unwrap();
}

/// `skopeo copy` from an OCI layout to `dest` (`docker://...`,
/// `docker-archive:FILE:NAME`, `oci:DIR:NAME`).
pub fn skopeo_copy(layout: &Path, tag: &str, dest: &str, extra: &[&str]) {
    let src = format!("oci:{}:{tag}", layout.display());
    let mut cmd = Command::new("skopeo");
    cmd.args(["--insecure-policy", "copy", "-q"])
        .args(extra)
        .arg(&src)
        .arg(dest);
    run(&mut cmd);
}

/// Pushes an image of the layout to the registry as `repo:tag`.
pub fn push(registry: &Registry, layout: &Path, tag: &str, repo: &str, extra: &[&str]) -> String {
    let dest = format!("docker://{}/{repo}:{tag}", registry.host());
    let mut args = vec!["--dest-tls-verify=false"];
    args.extend_from_slice(extra);
    skopeo_copy(layout, tag, &dest, &args);
    format!("{}/{repo}:{tag}", registry.host())
}

/// The `stack` binary with a root and no docker config of the user's.
pub fn stack(root: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stack"));
    cmd.arg("--root")
        .arg(root)
        .env("DOCKER_CONFIG", root.join("no-docker-config"))
        .stdin(Stdio::null());
    cmd
}

/// A tar archive written entry by entry with raw names, so that hostile
/// names (`..`, absolute) the tar crate's builder refuses can be made.
pub struct RawTar(pub Vec<u8>);

impl RawTar {
    pub fn new() -> RawTar {
        RawTar(Vec::new())
    }

    pub fn entry(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        link: &str,
        data: &[u8],
        mode: u32,
    ) -> &mut RawTar {
        let mut header = tar::Header::new_ustar();
        {
            let raw = header.as_old_mut();
            raw.name[..name.len()].copy_from_slice(name.as_bytes());
            raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        if matches!(
            kind,
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo
        ) {
            header
                .set_device_major(if kind == tar::EntryType::Fifo { 0 } else { 1 })
                .unwrap();
            header
                .set_device_minor(if kind == tar::EntryType::Fifo { 0 } else { 3 })
                .unwrap();
        }
        header.set_cksum();
        self.0.extend_from_slice(header.as_bytes());
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut RawTar {
        self.entry(name, tar::EntryType::Regular, "", data, 0o644)
    }

    pub fn dir(&mut self, name: &str) -> &mut RawTar {
        self.entry(name, tar::EntryType::Directory, "", b"", 0o755)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut RawTar {
        self.entry(name, tar::EntryType::Symlink, target, b"", 0o777)
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut RawTar {
        self.entry(name, tar::EntryType::Link, target, b"", 0o644)
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = self.0.clone();
        out.extend(std::iter::repeat_n(0u8, 1024));
        out
    }
}

/// Writes bytes to a file (creating parents).
pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(bytes).unwrap();
}
