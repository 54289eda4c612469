//! Layer unpacking against hostile archives, and whiteouts through a real
//! overlayfs mount.

#[path = "support/images.rs"]
mod images;

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use images::RawTar;
use stack::runtime::image::unpack::unpack_layer;

/// A layer directory inside a sandbox, with a sibling `outside` directory
/// holding a file `victim` that no layer may touch.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("layer")).unwrap();
        images::write(&dir.path().join("outside/victim"), b"original");
        Sandbox { dir }
    }
    fn layer(&self) -> PathBuf {
        self.dir.path().join("layer")
    }
    fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }
    /// Everything under the sandbox except the layer directory.
    fn outside_listing(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(self.dir.path(), &self.layer(), &mut out);
        out.sort();
        out
    }
    fn assert_outside_untouched(&self) {
        assert_eq!(self.outside_listing(), ["outside", "outside/victim"]);
        assert_eq!(
            std::fs::read(self.outside().join("victim")).unwrap(),
            b"original"
        );
        assert_eq!(
            std::fs::metadata(self.outside().join("victim"))
                .unwrap()
                .nlink(),
            1
        );
    }
}

fn walk(dir: &Path, skip: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p == skip {
            continue;
        }
        out.push(
            p.strip_prefix(skip.parent().unwrap())
                .unwrap()
                .display()
                .to_string(),
        );
        if e.file_type().unwrap().is_dir() {
            walk(&p, skip, out);
        }
    }
}

fn refused(tar: &mut RawTar, entry: &str) {
    let sandbox = Sandbox::new();
    let bytes = tar.finish();
    let err = unpack_layer(&bytes[..], &sandbox.layer())
        .expect_err("a hostile layer must be refused")
        .to_string();
    assert!(
        err.contains(&format!("`{entry}`")),
        "the error names the entry `{entry}`: {err}"
    );
    assert!(err.contains("refused"), "{err}");
    sandbox.assert_outside_untouched();
}

#[test]
fn dot_dot_entries_are_refused() {
    refused(
        RawTar::new()
            .file("ok", b"1")
            .file("../outside/pwned", b"x"),
        "../outside/pwned",
    );
    refused(
        RawTar::new().file("a/../../outside/victim", b"x"),
        "a/../../outside/victim",
    );
}

#[test]
fn absolute_entries_are_refused() {
    let sandbox = Sandbox::new();
    let target = format!("{}/pwned", sandbox.outside().display());
    refused(RawTar::new().file(&target, b"x"), &target);
}

#[test]
fn writing_through_a_symlink_that_leaves_is_refused() {
    // Relative escape.
    refused(
        RawTar::new()
            .symlink("link", "../outside")
            .file("link/pwned", b"x"),
        "link/pwned",
    );
    // Absolute escape (resolved against the host, not the layer).
    let sandbox = Sandbox::new();
    let outside = sandbox.outside().display().to_string();
    refused(
        RawTar::new()
            .symlink("abs", &outside)
            .file("abs/pwned", b"x"),
        "abs/pwned",
    );
    // A directory entry through the symlink, and a chain of symlinks.
    refused(
        RawTar::new().symlink("abs", &outside).dir("abs/newdir"),
        "abs/newdir",
    );
    refused(
        RawTar::new()
            .symlink("a", "b")
            .symlink("b", "../outside")
            .file("a/pwned", b"x"),
        "a/pwned",
    );
}

#[test]
fn hardlinks_to_files_outside_are_refused() {
    refused(RawTar::new().hardlink("hl", "../outside/victim"), "hl");
    let sandbox = Sandbox::new();
    let outside = sandbox.outside().display().to_string();
    refused(
        RawTar::new().hardlink("hl", &format!("{outside}/victim")),
        "hl",
    );
    refused(
        RawTar::new()
            .symlink("s", &outside)
            .hardlink("hl", "s/victim"),
        "hl",
    );
    // A target that is simply not in the layer.
    refused(RawTar::new().hardlink("hl", "missing"), "hl");
}

#[test]
fn a_file_entry_replaces_a_symlink_instead_of_writing_through_it() {
    let sandbox = Sandbox::new();
    let victim = sandbox.outside().join("victim").display().to_string();
    let bytes = RawTar::new()
        .symlink("f", &victim)
        .file("f", b"new content")
        .finish();
    unpack_layer(&bytes[..], &sandbox.layer()).unwrap();
    let f = sandbox.layer().join("f");
    assert!(std::fs::symlink_metadata(&f).unwrap().is_file());
    assert_eq!(std::fs::read(&f).unwrap(), b"new content");
    sandbox.assert_outside_untouched();
}

#[test]
fn metadata_is_kept_as_the_layer_says() {
    let sandbox = Sandbox::new();
    let mut tar = RawTar::new();
    tar.dir("bin")
        .entry("bin/su", tar::EntryType::Regular, "", b"#!", 0o4755);
    tar.symlink("bin/sh", "/bin/busybox")
        .hardlink("bin/su2", "bin/su");
    tar.entry("dev/null", tar::EntryType::Char, "", b"", 0o666);
    tar.entry("run/fifo", tar::EntryType::Fifo, "", b"", 0o600);
    tar.entry("private", tar::EntryType::Directory, "", b"", 0o700);
    let mut bytes = tar.finish();
    // Owner 1000:1001 on `private`: patch the header in place.
    {
        let header_at = bytes.len() - 1024 - 512;
        let mut header = tar::Header::from_byte_slice(&bytes[header_at..header_at + 512]).clone();
        header.set_uid(1000);
        header.set_gid(1001);
        header.set_cksum();
        bytes[header_at..header_at + 512].copy_from_slice(header.as_bytes());
    }
    let unpacked = unpack_layer(&bytes[..], &sandbox.layer()).unwrap();
    // The DiffID is the digest of the uncompressed stream.
    use sha2::Digest as _;
    assert_eq!(
        unpacked.diff_id,
        format!("sha256:{:x}", sha2::Sha256::digest(&bytes))
    );
    let l = sandbox.layer();
    let su = std::fs::metadata(l.join("bin/su")).unwrap();
    assert_eq!(su.permissions().mode() & 0o7777, 0o4755);
    assert_eq!(su.nlink(), 2);
    assert_eq!(
        std::fs::read_link(l.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert!(
        std::fs::metadata(l.join("dev/null"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert!(
        std::fs::metadata(l.join("run/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    let private = std::fs::metadata(l.join("private")).unwrap();
    assert_eq!(
        (private.uid(), private.gid(), private.mode() & 0o7777),
        (1000, 1001, 0o700)
    );
    assert_eq!(su.mtime(), 0);
    sandbox.assert_outside_untouched();
}

#[test]
fn gzip_and_zstd_layers_unpack_to_the_same_diff_id() {
    let plain = RawTar::new().dir("d").file("d/f", b"hello").finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &plain).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&plain[..], 1).unwrap();
    let ids: Vec<String> = [&plain[..], &gz[..], &zst[..]]
        .iter()
        .map(|blob| {
            let sandbox = Sandbox::new();
            let u = unpack_layer(*blob, &sandbox.layer()).unwrap();
            assert_eq!(
                std::fs::read(sandbox.layer().join("d/f")).unwrap(),
                b"hello"
            );
            u.diff_id
        })
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[0], ids[2]);
}

/// An overlayfs mount, unmounted when dropped (also when the test fails).
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn whiteouts_and_opaque_directories_merge_as_expected_under_overlayfs() {
    let work = tempfile::tempdir().unwrap();
    let (lower, upper, merged) = (
        work.path().join("l1"),
        work.path().join("l2"),
        work.path().join("merged"),
    );
    for d in [&lower, &upper, &merged] {
        std::fs::create_dir_all(d).unwrap();
    }
    let base = RawTar::new()
        .dir("a")
        .file("a/x", b"x")
        .file("a/y", b"y")
        .file("b", b"b")
        .dir("c")
        .file("c/z", b"z")
        .dir("d")
        .file("d/keep", b"k")
        .finish();
    let top = RawTar::new()
        .file("a/.wh.x", b"")
        .file(".wh.b", b"")
        .dir("c")
        .file("c/.wh..wh..opq", b"")
        .file("c/new", b"n")
        .file("d/added", b"a")
        .finish();
    unpack_layer(&base[..], &lower).unwrap();
    unpack_layer(&top[..], &upper).unwrap();
    // In the layer directory: a 0/0 character device and an opaque xattr.
    let wh = std::fs::metadata(upper.join("a/x")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    assert!(!upper.join("a/.wh.x").exists());

    let options = format!("lowerdir={}:{}", upper.display(), lower.display());
    let status = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &options])
        .arg(&merged)
        .status()
        .unwrap();
    assert!(status.success(), "overlay mount failed");
    let _mount = Mount(merged.clone());
    let mut seen = Vec::new();
    walk(&merged, &merged.join("none"), &mut seen);
    let mut seen: Vec<String> = seen
        .iter()
        .map(|s| s.strip_prefix("merged/").unwrap_or(s).to_owned())
        .collect();
    seen.sort();
    assert_eq!(seen, ["a", "a/y", "c", "c/new", "d", "d/added", "d/keep"]);
}

#[test]
fn flattening_applies_whiteouts_and_opaque_directories() {
    use stack::runtime::image::unpack::{Whiteouts, unpack_layer_with};
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("flat");
    std::fs::create_dir_all(&dest).unwrap();
    let base = RawTar::new()
        .dir("a")
        .file("a/x", b"x")
        .file("a/y", b"y")
        .file("b", b"b")
        .dir("c")
        .file("c/z", b"z")
        .dir("c/sub")
        .file("c/sub/deep", b"d")
        .dir("e")
        .file("e/f", b"f")
        .finish();
    let top = RawTar::new()
        .file("a/.wh.x", b"")
        .file(".wh.b", b"")
        .dir("c")
        .file("c/.wh..wh..opq", b"")
        .file("c/new", b"n")
        .file("e", b"now a file")
        .finish();
    unpack_layer_with(&base[..], &dest, Whiteouts::Apply).unwrap();
    unpack_layer_with(&top[..], &dest, Whiteouts::Apply).unwrap();
    let mut seen = Vec::new();
    walk(&dest, &dest.join("none"), &mut seen);
    let mut seen: Vec<String> = seen
        .iter()
        .map(|s| s.strip_prefix("flat/").unwrap_or(s).to_owned())
        .collect();
    seen.sort();
    assert_eq!(seen, ["a", "a/y", "c", "c/new", "e"]);
    assert_eq!(std::fs::read(dest.join("e")).unwrap(), b"now a file");
}

#[test]
fn a_directory_entry_over_a_symlink_does_not_touch_its_target() {
    // The shape of CVE-2026-33056: symlink `d` -> outside, then directory `d/.`.
    let sandbox = Sandbox::new();
    let outside = sandbox.outside().display().to_string();
    let before = std::fs::metadata(sandbox.outside())
        .unwrap()
        .permissions()
        .mode();
    let bytes = RawTar::new()
        .symlink("d", &outside)
        .entry("d/.", tar::EntryType::Directory, "", b"", 0o777)
        .finish();
    unpack_layer(&bytes[..], &sandbox.layer()).unwrap();
    assert!(
        std::fs::symlink_metadata(sandbox.layer().join("d"))
            .unwrap()
            .is_dir()
    );
    assert_eq!(
        std::fs::metadata(sandbox.outside())
            .unwrap()
            .permissions()
            .mode(),
        before
    );
    sandbox.assert_outside_untouched();
}

/// One PAX record: `<length> <key>=<value>\n`, the length counting itself.
fn pax_record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}").len() + body.len() != len {
        len += 1;
    }
    format!("{len}{body}")
}

#[test]
fn pax_records_give_extended_attributes_and_large_owners() {
    let sandbox = Sandbox::new();
    let records = [
        ("SCHILY.xattr.user.origin", "layer"),
        ("uid", "3000000"),
        ("gid", "3000001"),
    ]
    .iter()
    .map(|(k, v)| pax_record(k, v))
    .collect::<String>();
    let bytes = RawTar::new()
        .entry(
            "PaxHeader/big",
            tar::EntryType::XHeader,
            "",
            records.as_bytes(),
            0o644,
        )
        .entry("big", tar::EntryType::Regular, "", b"hi", 0o640)
        .finish();
    unpack_layer(&bytes[..], &sandbox.layer()).unwrap();
    let big = sandbox.layer().join("big");
    let meta = std::fs::metadata(&big).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (3_000_000, 3_000_001));
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    let mut value = [0u8; 16];
    let n = rustix::fs::getxattr(&big, "user.origin", &mut value[..]).unwrap();
    assert_eq!(&value[..n], b"layer");
}
