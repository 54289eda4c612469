//! Copying a directory tree exactly: the copy-up of an image's content
//! into a new volume.
//!
//! The source is a container's root filesystem, which came from an image:
//! its symlinks may point anywhere, so they are copied as links and never
//! followed, files are opened without following links, and every entry is
//! created afresh inside a destination that only this copy writes to.
//! Modes, owners, modification times, device nodes, fifos and hard links are
//! kept, as docker's copy-up keeps them.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt, lchown, symlink};
use std::path::Path;

use rustix::fs::{FileType, Mode, Timespec, Timestamps, UTIME_OMIT, mknodat, utimensat};

use super::VolumeError;

/// Copies the contents of `src` into the existing directory `dst`.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<(), VolumeError> {
    let mut links = HashMap::new();
    let meta = fs::symlink_metadata(src).map_err(VolumeError::io("read", src))?;
    copy_dir(src, dst, &mut links)?;
    finish(dst, &meta)
}

/// Inode (device, number) → the first copy's path, for hard links.
type Links = HashMap<(u64, u64), std::path::PathBuf>;

fn copy_dir(src: &Path, dst: &Path, links: &mut Links) -> Result<(), VolumeError> {
    let entries = fs::read_dir(src).map_err(VolumeError::io("read", src))?;
    for entry in entries {
        let entry = entry.map_err(VolumeError::io("read", src))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let meta = fs::symlink_metadata(&from).map_err(VolumeError::io("read", &from))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            fs::create_dir(&to).map_err(VolumeError::io("create", &to))?;
            copy_dir(&from, &to, links)?;
        } else if meta.nlink() > 1
            && !ft.is_symlink()
            && let Some(first) = links.get(&(meta.dev(), meta.ino()))
        {
            fs::hard_link(first, &to).map_err(VolumeError::io("link", &to))?;
            continue;
        } else if ft.is_symlink() {
            let target = fs::read_link(&from).map_err(VolumeError::io("read", &from))?;
            symlink(&target, &to).map_err(VolumeError::io("create", &to))?;
        } else if ft.is_file() {
            copy_file(&from, &to)?;
        } else {
            make_node(&to, &meta)?;
        }
        if meta.nlink() > 1 && !ft.is_dir() {
            links.insert((meta.dev(), meta.ino()), to.clone());
        }
        finish(&to, &meta)?;
    }
    Ok(())
}

fn copy_file(from: &Path, to: &Path) -> Result<(), VolumeError> {
    let mut input = OpenOptions::new()
        .read(true)
        .custom_flags(o_nofollow())
        .open(from)
        .map_err(VolumeError::io("open", from))?;
    let mut output = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(VolumeError::io("create", to))?;
    io::copy(&mut input, &mut output).map_err(VolumeError::io("copy into", to))?;
    Ok(())
}

/// O_NOFOLLOW, taken from rustix so that no libc dependency is needed.
fn o_nofollow() -> i32 {
    // The flag is a small positive bit (0o400000): it fits an i32.
    i32::try_from(rustix::fs::OFlags::NOFOLLOW.bits()).unwrap_or(0)
}

/// Device nodes, fifos and sockets.
fn make_node(to: &Path, meta: &fs::Metadata) -> Result<(), VolumeError> {
    let ft = FileType::from_raw_mode(meta.mode());
    let mode = Mode::from_raw_mode(meta.mode() & 0o7777);
    mknodat(rustix::fs::CWD, to, ft, mode, meta.rdev())
        .map_err(|e| VolumeError::io("create", to)(e.into()))
}

/// Owner, mode and times, in that order (chown clears set-id bits).
fn finish(path: &Path, meta: &fs::Metadata) -> Result<(), VolumeError> {
    lchown(path, Some(meta.uid()), Some(meta.gid())).map_err(VolumeError::io("chown", path))?;
    if !meta.file_type().is_symlink() {
        fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(VolumeError::io("chmod", path))?;
    }
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec(),
        },
    };
    utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| VolumeError::io("set the times of", path)(e.into()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_files_links_modes_and_hard_links_without_following_symlinks() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "host").unwrap();
        let s = src.path();
        fs::create_dir(s.join("d")).unwrap();
        fs::write(s.join("d/f"), "content").unwrap();
        fs::set_permissions(s.join("d/f"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::hard_link(s.join("d/f"), s.join("hard")).unwrap();
        symlink(outside.path().join("secret"), s.join("escape")).unwrap();
        symlink("d/f", s.join("rel")).unwrap();

        copy_tree(s, dst.path()).unwrap();
        let d = dst.path();
        assert_eq!(fs::read_to_string(d.join("d/f")).unwrap(), "content");
        assert_eq!(fs::metadata(d.join("d/f")).unwrap().mode() & 0o777, 0o640);
        assert_eq!(
            fs::metadata(d.join("d/f")).unwrap().ino(),
            fs::metadata(d.join("hard")).unwrap().ino()
        );
        // Symlinks are copied as links, not as the files they name.
        assert!(
            fs::symlink_metadata(d.join("escape"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            fs::read_link(d.join("escape")).unwrap(),
            outside.path().join("secret")
        );
        assert_eq!(fs::read_link(d.join("rel")).unwrap(), Path::new("d/f"));
        assert_eq!(
            fs::metadata(d.join("d/f")).unwrap().mtime(),
            fs::metadata(s.join("d/f")).unwrap().mtime()
        );
    }

    #[test]
    fn fifos_are_recreated() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            src.path().join("pipe"),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        copy_tree(src.path(), dst.path()).unwrap();
        let meta = fs::symlink_metadata(dst.path().join("pipe")).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()));
    }
}
