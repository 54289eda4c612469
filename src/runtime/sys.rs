//! The system calls the runtime makes on files and mounts, behind a trait.
//!
//! Building a container is a long sequence of small side effects: create a
//! cgroup directory, write a limit into one of its files, mount a filesystem,
//! remove a directory. Whether the sequence is *right* (which files, which
//! values, in which order) is pure logic, and it is tested against
//! [`Recording`], a fake that performs nothing and remembers every call. The
//! real implementation, [`Linux`], is exercised by the root-only integration
//! tests (`tests/runtime_*.rs`). The idea is youki's `Syscall` trait: keep
//! the trait narrow, one method per kernel operation, so the fake stays
//! trivially correct.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

/// The operations the cgroup and mount code performs.
pub trait Syscalls {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()>;
    fn umount(&self, target: &Path, flags: MntFlags) -> io::Result<()>;
    /// `mkdir -p`.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Removes an empty directory (cgroup directories are removed this way:
    /// they look non-empty to `rm -r` because of their control files).
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// Writes `data` to an existing file without truncating or creating it,
    /// as cgroup and procfs control files expect.
    fn write_file(&self, path: &Path, data: &str) -> io::Result<()>;
    fn read_file(&self, path: &Path) -> io::Result<String>;
    fn exists(&self, path: &Path) -> bool;
    /// Attaches a device filter program to a cgroup v2 directory.
    fn attach_device_filter(
        &self,
        dir: &Path,
        rules: &[crate::runtime::cgroup::devices::Rule],
    ) -> io::Result<()>;
}

/// The real kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct Linux;

impl Syscalls for Linux {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        nix::mount::mount(source, target, fstype, flags, data).map_err(io::Error::from)
    }

    fn umount(&self, target: &Path, flags: MntFlags) -> io::Result<()> {
        nix::mount::umount2(target, flags).map_err(io::Error::from)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn write_file(&self, path: &Path, data: &str) -> io::Result<()> {
        use std::io::Write;
        // One write(2): control files act on each write, so a value must
        // arrive whole.
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.write_all(data.as_bytes())
    }

    fn read_file(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn attach_device_filter(
        &self,
        dir: &Path,
        rules: &[crate::runtime::cgroup::devices::Rule],
    ) -> io::Result<()> {
        crate::runtime::cgroup::devices::attach(dir, rules)
            .map_err(|e| io::Error::other(e.to_string()))
    }
}

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Mount {
        source: Option<PathBuf>,
        target: PathBuf,
        fstype: Option<String>,
        flags: MsFlags,
        data: Option<String>,
    },
    Umount(PathBuf),
    CreateDirAll(PathBuf),
    RemoveDir(PathBuf),
    Write(PathBuf, String),
    AttachDeviceFilter(PathBuf, usize),
}

/// A fake kernel for unit tests: performs nothing, records every call, and
/// answers reads from a table the test fills in.
#[derive(Debug, Default)]
pub struct Recording {
    calls: RefCell<Vec<Call>>,
    files: RefCell<BTreeMap<PathBuf, String>>,
}

impl Recording {
    pub fn new() -> Recording {
        Recording::default()
    }

    /// Makes `path` readable with `content` (and makes it exist).
    pub fn with_file(self, path: impl Into<PathBuf>, content: &str) -> Recording {
        self.files
            .borrow_mut()
            .insert(path.into(), content.to_string());
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    /// Only the writes, as (path, value) pairs.
    pub fn writes(&self) -> Vec<(PathBuf, String)> {
        self.calls
            .borrow()
            .iter()
            .filter_map(|c| match c {
                Call::Write(p, v) => Some((p.clone(), v.clone())),
                _ => None,
            })
            .collect()
    }
}

impl Syscalls for Recording {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        self.calls.borrow_mut().push(Call::Mount {
            source: source.map(Path::to_path_buf),
            target: target.to_path_buf(),
            fstype: fstype.map(str::to_string),
            flags,
            data: data.map(str::to_string),
        });
        Ok(())
    }

    fn umount(&self, target: &Path, _flags: MntFlags) -> io::Result<()> {
        self.calls
            .borrow_mut()
            .push(Call::Umount(target.to_path_buf()));
        Ok(())
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.calls
            .borrow_mut()
            .push(Call::CreateDirAll(path.to_path_buf()));
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.calls
            .borrow_mut()
            .push(Call::RemoveDir(path.to_path_buf()));
        Ok(())
    }

    fn write_file(&self, path: &Path, data: &str) -> io::Result<()> {
        self.calls
            .borrow_mut()
            .push(Call::Write(path.to_path_buf(), data.to_string()));
        Ok(())
    }

    fn read_file(&self, path: &Path) -> io::Result<String> {
        self.files
            .borrow()
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn exists(&self, path: &Path) -> bool {
        self.files.borrow().contains_key(path)
    }

    fn attach_device_filter(
        &self,
        dir: &Path,
        rules: &[crate::runtime::cgroup::devices::Rule],
    ) -> io::Result<()> {
        self.calls
            .borrow_mut()
            .push(Call::AttachDeviceFilter(dir.to_path_buf(), rules.len()));
        Ok(())
    }
}
