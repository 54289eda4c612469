//! Wake-ups: what makes the watcher run a round before its next resync.
//!
//! The resync alone converges, but every 0.5 s is too slow to restart a
//! container within milliseconds of its death. Each container's shim
//! records how its process ended by renaming a new `state.json` into the
//! container's directory, and the runtime removes a container's directory
//! with it; one inotify instance (a host has few to give: DESIGN.md)
//! watches `<root>/containers` and every directory in it, so a death, a
//! start or a removal wakes the watcher at once. With `--watch-file`, the
//! directories of the stack files are watched too (directories, not files:
//! editors replace files by renaming), and a change of one of those files
//! also asks for the stack to be loaded again.
//!
//! A dedicated thread blocks in `read` on the inotify descriptor and
//! signals through a [`tokio::sync::Notify`], which remembers one wake-up
//! while nobody waits, so none is lost between two rounds.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use tokio::sync::Notify;

/// What the wake thread signals.
#[derive(Debug, Clone, Default)]
pub struct Wake {
    /// Something happened: run a round.
    pub notify: Arc<Notify>,
    /// A watched stack file changed: load the stack again first.
    pub reload: Arc<AtomicBool>,
}

impl Wake {
    /// Whether a reload was asked for since the last call.
    pub fn take_reload(&self) -> bool {
        self.reload.swap(false, Ordering::AcqRel)
    }
}

/// Starts the thread watching `containers` (created if missing) and the
/// `files`' directories.
pub fn spawn(containers: &Path, files: &[PathBuf]) -> std::io::Result<Wake> {
    std::fs::create_dir_all(containers)?;
    let fd = inotify::init(CreateFlags::CLOEXEC)?;
    let dir_flags = WatchFlags::CREATE
        | WatchFlags::DELETE
        | WatchFlags::MOVED_FROM
        | WatchFlags::MOVED_TO
        | WatchFlags::ONLYDIR;
    let top = inotify::add_watch(&fd, containers, dir_flags)?;
    let container_flags = WatchFlags::MOVED_TO | WatchFlags::ONLYDIR;
    for entry in std::fs::read_dir(containers)?.flatten() {
        let _ = inotify::add_watch(&fd, entry.path(), container_flags);
    }
    // Watch descriptor of a directory → names of stack files in it.
    let mut stack_dirs: BTreeMap<i32, Vec<OsString>> = BTreeMap::new();
    for f in files {
        let f = std::path::absolute(f)?;
        let (Some(dir), Some(name)) = (f.parent(), f.file_name()) else {
            continue;
        };
        let wd = inotify::add_watch(
            &fd,
            dir,
            WatchFlags::CLOSE_WRITE | WatchFlags::MOVED_TO | WatchFlags::CREATE,
        )?;
        stack_dirs.entry(wd).or_default().push(name.to_os_string());
    }
    let wake = Wake::default();
    let signal = wake.clone();
    let containers = containers.to_path_buf();
    std::thread::Builder::new()
        .name("stack-wake".into())
        .spawn(move || {
            let mut buf = [MaybeUninit::<u8>::uninit(); 8192];
            let mut reader = inotify::Reader::new(&fd, &mut buf);
            loop {
                let event = match reader.next() {
                    Ok(e) => e,
                    Err(rustix::io::Errno::INTR) => continue,
                    // The descriptor broke: the resync still converges.
                    Err(_) => return,
                };
                let name = event
                    .file_name()
                    .map(|n| OsString::from(std::ffi::OsStr::from_bytes(n.to_bytes())));
                let wd = event.wd();
                let wanted = if wd == top {
                    if event.events().contains(ReadFlags::ISDIR)
                        && event
                            .events()
                            .intersects(ReadFlags::CREATE | ReadFlags::MOVED_TO)
                        && let Some(n) = &name
                    {
                        let _ = inotify::add_watch(&fd, containers.join(n), container_flags);
                    }
                    true
                } else if let Some(names) = stack_dirs.get(&wd) {
                    let ours = name.as_ref().is_some_and(|n| names.contains(n));
                    if ours {
                        signal.reload.store(true, Ordering::Release);
                    }
                    ours
                } else {
                    event.events().contains(ReadFlags::QUEUE_OVERFLOW)
                        || name.as_deref() == Some(std::ffi::OsStr::new("state.json"))
                };
                if wanted {
                    signal.notify.notify_one();
                }
            }
        })?;
    Ok(wake)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_new_state_record_and_a_changed_stack_file_wake_the_watcher() {
        let dir = tempfile::tempdir().unwrap();
        let containers = dir.path().join("containers");
        let file = dir.path().join("compose.yaml");
        std::fs::write(&file, "a").unwrap();
        let wake = spawn(&containers, std::slice::from_ref(&file)).unwrap();
        let woken = || tokio::time::timeout(Duration::from_secs(5), wake.notify.notified());
        // A new container directory, then its state record renamed in.
        let c = containers.join("p-web-1");
        std::fs::create_dir(&c).unwrap();
        woken().await.unwrap();
        // Its watch is added by the thread right after the wake-up.
        let mut seen = false;
        for _ in 0..50 {
            std::fs::write(c.join("state.json.tmp"), "{}").unwrap();
            std::fs::rename(c.join("state.json.tmp"), c.join("state.json")).unwrap();
            if tokio::time::timeout(Duration::from_millis(100), wake.notify.notified())
                .await
                .is_ok()
            {
                seen = true;
                break;
            }
        }
        assert!(seen);
        assert!(!wake.take_reload());
        std::fs::write(&file, "b").unwrap();
        woken().await.unwrap();
        assert!(wake.take_reload());
    }
}
