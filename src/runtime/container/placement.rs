//! Where the filesystem puts containers' files: a hint to spread them.
//!
//! Every container creates a score of inodes when it is made (its
//! directory, `upper/`, `work/`, mount points, records, logs) and frees
//! them when it is removed. ext4 keeps new inodes near their parent
//! directory, so all of them land in the block group of `containers/`.
//! Without a journal (as on our machines) ext4 also refuses to reuse an
//! inode freed in the last minute or so, and finds the next free one by
//! walking past every such inode of the group, one buffer lookup each: a
//! group churned by a few hundred containers makes every new file cost a
//! third of a millisecond, and that walk was a third of the CPU time of
//! `stack up` of 30 services.
//!
//! The `T` attribute ("top of a directory hierarchy", `chattr +T`) tells
//! ext4's Orlov allocator to place each subdirectory in a block group of
//! its own choosing, by the hash of its name, as it does for directories at
//! the root of the filesystem. Set on `containers/`, each container's
//! files live in their own group and the walk stays short. Filesystems
//! without the attribute refuse it, which changes nothing.

use std::path::Path;

use rustix::fs::{IFlags, Mode, OFlags};

/// Marks `dir` as the top of a directory hierarchy, if its filesystem
/// knows the attribute; a hint only, so every failure is ignored.
pub fn spread_subdirectories(dir: &Path) {
    let Ok(fd) = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    let Ok(flags) = rustix::fs::ioctl_getflags(&fd) else {
        return;
    };
    if !flags.contains(IFlags::TOPDIR) {
        let _ = rustix::fs::ioctl_setflags(&fd, flags | IFlags::TOPDIR);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(dir: &Path) -> Option<IFlags> {
        let fd = rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).ok()?;
        rustix::fs::ioctl_getflags(&fd).ok()
    }

    #[test]
    fn marks_the_directory_where_the_filesystem_has_the_attribute() {
        let dir = tempfile::tempdir().unwrap();
        let before = flags(dir.path());
        spread_subdirectories(dir.path());
        let ext4 = rustix::fs::statfs(dir.path()).is_ok_and(|s| s.f_type == 0xEF53);
        if ext4 {
            assert!(flags(dir.path()).unwrap().contains(IFlags::TOPDIR));
        } else {
            // Elsewhere a hint the filesystem refuses changes nothing.
            let after = flags(dir.path());
            assert!(
                after == before || after.is_some_and(|f| f.contains(IFlags::TOPDIR)),
                "{before:?} became {after:?}"
            );
        }
        // Marked twice: still marked, no error.
        spread_subdirectories(dir.path());
        if ext4 {
            assert!(flags(dir.path()).unwrap().contains(IFlags::TOPDIR));
        }
    }
}
