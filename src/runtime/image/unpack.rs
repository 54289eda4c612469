//! Safe layer unpacking: a layer tarball from a stranger becomes a directory
//! that overlayfs can use as a lower layer.
//!
//! An image layer is a tar archive (possibly gzip- or zstd-compressed) of the
//! files that layer adds or changes. Deletions are written as *whiteouts*:
//! an empty entry `dir/.wh.NAME` means "NAME no longer exists", and
//! `dir/.wh..wh..opq` means "dir hides everything the layers below put in
//! it" (an opaque directory). Overlayfs spells the same two ideas as a
//! character device 0/0 named NAME, and as the xattr
//! `trusted.overlay.opaque=y` on the directory; this module translates one
//! into the other, so the unpacked layer directories can be stacked as
//! `lowerdir=` without any further copying.
//!
//! Layers come from strangers, and tar is an old format with many ways to
//! escape: entries named `../x` or `/etc/x`, a symlink `evil -> /etc`
//! followed by an entry `evil/passwd` written through it, a hardlink whose
//! target is a file outside. Checking names as strings is not enough (the
//! symlink case passes every string check), so every path is resolved by the
//! kernel with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` relative to
//! a file descriptor of the layer directory: any resolution that would leave
//! the directory fails with `EXDEV`, whatever symlinks the archive created
//! earlier. The last component of every entry is then created with the `*at`
//! calls relative to its (already safely opened) parent directory, with
//! `O_EXCL | O_NOFOLLOW`, so an existing symlink at that name is replaced, not
//! followed. `RESOLVE_BENEATH` is chosen over `RESOLVE_IN_ROOT` on purpose:
//! a layer that writes through an absolute symlink is refused rather than
//! silently redirected; real layers never write through their own symlinks.
//!
//! Refused outright, with the entry's name: `..` components, absolute
//! names, any resolution that leaves the directory, hardlinks whose target
//! is outside or not in this layer. Kept as the layer says: modes (setuid
//! included), owners, modification times, device nodes, fifos and extended
//! attributes (PAX `SCHILY.xattr.*`, e.g. file capabilities).
//!
//! The DiffID (the SHA-256 of the uncompressed tar stream, which the image
//! configuration lists) is computed while unpacking, so the caller can check
//! that the layer is the one the image promised.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::AsRawFd;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps};
use sha2::{Digest as _, Sha256};

/// Why a layer could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The layer tried to reach outside its directory, or is otherwise hostile.
    #[error(
        "layer entry `{entry}` {reason}; the layer was refused and nothing was written outside the layer directory. Do not use this image, or ask its publisher to fix the layer"
    )]
    Unsafe {
        entry: String,
        reason: String,
        dest: PathBuf,
    },
    /// A system call failed for one entry.
    #[error("cannot {action} layer entry `{entry}` in {}: {source}", dest.display())]
    Io {
        action: &'static str,
        entry: String,
        dest: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The archive itself is damaged or truncated.
    #[error("the layer archive is damaged or truncated ({0}); pull or load the image again")]
    Archive(#[source] io::Error),
    /// The entry uses a tar feature stack does not implement.
    #[error("layer entry `{entry}` is a {kind} entry, which stack cannot unpack yet")]
    Unsupported { entry: String, kind: String },
}

/// What unpacking produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// `sha256:<hex>` of the uncompressed tar stream.
    pub diff_id: String,
    /// Bytes of the uncompressed tar stream.
    pub size: u64,
}

/// The compression a layer blob uses, recognised by its magic bytes rather
/// than the media type (registries and archives mislabel them; docker does
/// the same sniffing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Recognises the compression from the first bytes of a blob.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Wraps a blob reader in the decompressor its magic bytes ask for.
pub fn decompress<'a, R: Read + 'a>(reader: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::with_capacity(256 * 1024, reader);
    let head = buffered.fill_buf()?;
    Ok(match Compression::sniff(head) {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::Decoder::with_buffer(buffered)?),
        Compression::None => Box::new(buffered),
    })
}

/// A reader that hashes and counts what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads to the end, then returns `sha256:<hex>` and the byte count.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((format!("sha256:{:x}", self.hasher.finalize()), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// What to do with whiteouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// Write them as overlayfs whiteouts: for a layer directory of its own.
    Overlay,
    /// Apply them to what `dest` already holds (the layers below, unpacked
    /// there before): `.wh.NAME` deletes NAME, an opaque marker empties
    /// its directory of everything but this layer's entries. For a
    /// flattened copy of an image (volume copy-up, export).
    Apply,
}

/// Unpacks a layer blob (compressed or not) into the directory `dest`,
/// which must exist and should be empty. Whiteouts become overlayfs
/// whiteouts. On error, `dest` holds a partial layer that the caller
/// must discard; nothing outside it was touched.
pub fn unpack_layer(blob: impl Read, dest: &Path) -> Result<Unpacked, UnpackError> {
    unpack_layer_with(blob, dest, Whiteouts::Overlay)
}

/// [`unpack_layer`], choosing what whiteouts become.
pub fn unpack_layer_with(
    blob: impl Read,
    dest: &Path,
    whiteouts: Whiteouts,
) -> Result<Unpacked, UnpackError> {
    let reader = decompress(blob).map_err(UnpackError::Archive)?;
    let mut hashing = HashingReader::new(reader);
    let root: OwnedFd = rustix::fs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::Io {
        action: "open the layer directory for",
        entry: String::from("."),
        dest: dest.to_owned(),
        source: e.into(),
    })?;
    let mut unpacker = Unpacker {
        root: root.as_fd(),
        dest,
        dir_times: Vec::new(),
        whiteouts,
        written: HashSet::new(),
    };
    {
        let mut archive = tar::Archive::new(&mut hashing);
        let entries = archive.entries().map_err(UnpackError::Archive)?;
        for entry in entries {
            let mut entry = entry.map_err(UnpackError::Archive)?;
            unpacker.entry(&mut entry)?;
        }
    }
    unpacker.restore_dir_times()?;
    // The tar end marker may be followed by padding: hash all of it, since
    // the DiffID covers the whole stream.
    let (diff_id, size) = hashing.finish().map_err(UnpackError::Archive)?;
    Ok(Unpacked { diff_id, size })
}

/// The name of an entry, split into its components after the checks that
/// need no file system: no absolute names, no `..`.
fn components<'a>(raw: &'a [u8], shown: &str, dest: &Path) -> Result<Vec<&'a OsStr>, UnpackError> {
    if raw.first() == Some(&b'/') {
        return Err(UnpackError::Unsafe {
            entry: shown.to_owned(),
            reason: "has an absolute name".into(),
            dest: dest.to_owned(),
        });
    }
    let mut parts = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                return Err(UnpackError::Unsafe {
                    entry: shown.to_owned(),
                    reason: "contains a `..` component".into(),
                    dest: dest.to_owned(),
                });
            }
            _ => parts.push(OsStr::from_bytes(part)),
        }
    }
    Ok(parts)
}

/// The relative path of `parts`; `.` when there are none.
fn join(parts: &[&OsStr]) -> PathBuf {
    if parts.is_empty() {
        PathBuf::from(".")
    } else {
        parts.iter().collect()
    }
}

/// Resolution that can never leave the layer directory.
const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);
/// Opening a directory by a path: symlinks inside the layer may be
/// followed, `BENEATH` keeps the resolution inside.
const RESOLVE_DIR: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);
/// Opening a directory entry just created or checked: never a symlink.
const DIR_FLAGS: OFlags = RESOLVE_DIR.union(OFlags::NOFOLLOW);

struct Unpacker<'a> {
    root: BorrowedFd<'a>,
    dest: &'a Path,
    /// Directory modification times, applied at the end because creating
    /// entries inside a directory changes its time.
    dir_times: Vec<(Vec<u8>, u64)>,
    whiteouts: Whiteouts,
    /// Entries this layer wrote (normalized paths): an opaque directory
    /// being applied keeps these and removes what the layers below had.
    written: HashSet<Vec<u8>>,
}

/// The whiteout prefix of the OCI layer format.
const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

impl Unpacker<'_> {
    fn unsafe_entry(&self, entry: &str, reason: impl Into<String>) -> UnpackError {
        UnpackError::Unsafe {
            entry: entry.to_owned(),
            reason: reason.into(),
            dest: self.dest.to_owned(),
        }
    }

    fn io(&self, action: &'static str, entry: &str) -> impl FnOnce(io::Error) -> UnpackError {
        let (entry, dest) = (entry.to_owned(), self.dest.to_owned());
        move |source| {
            // EXDEV and ELOOP from openat2 mean the path tried to leave the
            // directory (or loop); say so instead of printing errno.
            match source.raw_os_error() {
                Some(code)
                    if code == rustix::io::Errno::XDEV.raw_os_error()
                        || code == rustix::io::Errno::LOOP.raw_os_error() =>
                {
                    UnpackError::Unsafe {
                        entry,
                        reason: "resolves outside the layer directory through a symlink".into(),
                        dest,
                    }
                }
                _ => UnpackError::Io {
                    action,
                    entry,
                    dest,
                    source,
                },
            }
        }
    }

    /// Opens the directory `parts` (relative to the layer root) with
    /// `RESOLVE_BENEATH`, creating missing directories (archives may omit
    /// parent entries) one component at a time.
    fn open_dir(&self, parts: &[&OsStr], entry: &str) -> Result<OwnedFd, UnpackError> {
        let resolve = |path: &Path| {
            rustix::fs::openat2(self.root, path, RESOLVE_DIR, Mode::empty(), BENEATH)
                .map_err(io::Error::from)
        };
        match resolve(&join(parts)) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io("open the parent directory of", entry)(e)),
        }
        let mut current = resolve(Path::new(".")).map_err(self.io("open", entry))?;
        for i in 0..parts.len() {
            let prefix = join(&parts[..=i]);
            current = match resolve(&prefix) {
                Ok(fd) => fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    rustix::fs::mkdirat(&current, parts[i], Mode::from_raw_mode(0o755))
                        .map_err(|e| self.io("create a parent directory of", entry)(e.into()))?;
                    resolve(&prefix).map_err(self.io("open a parent directory of", entry))?
                }
                Err(e) => return Err(self.io("open a parent directory of", entry)(e)),
            };
        }
        Ok(current)
    }

    /// Removes whatever is at `name` in `parent`, unless it is a directory
    /// and `keep_dir` says a directory entry is about to be written there.
    /// Returns whether a directory was kept.
    fn clear(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        keep_dir: bool,
        entry: &str,
    ) -> Result<bool, UnpackError> {
        match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(self.io("inspect", entry)(e.into())),
            Ok(st) => {
                let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                if is_dir && keep_dir {
                    return Ok(true);
                }
                self.remove(parent, name, is_dir, entry)?;
                Ok(false)
            }
        }
    }

    /// Removes `name` from `parent`, a directory with all it holds.
    fn remove(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        is_dir: bool,
        entry: &str,
    ) -> Result<(), UnpackError> {
        if !is_dir {
            return rustix::fs::unlinkat(parent, name, AtFlags::empty())
                .map_err(|e| self.io("remove the existing file at", entry)(e.into()));
        }
        // Through the parent's descriptor (/proc/self/fd/N), so the walk is
        // anchored where openat2 confined it; std's remove_dir_all opens
        // the last component without following it and never follows
        // symlinks inside.
        let anchored = PathBuf::from(format!("/proc/self/fd/{}", parent.as_raw_fd())).join(name);
        std::fs::remove_dir_all(&anchored)
            .map_err(self.io("remove the existing directory at", entry))
    }

    /// Empties a directory of what the layers below put there (an opaque
    /// marker being applied): all but this layer's own entries.
    fn make_opaque(
        &self,
        dir: &OwnedFd,
        dir_parts: &[&OsStr],
        entry: &str,
    ) -> Result<(), UnpackError> {
        let listing = rustix::fs::Dir::read_from(dir)
            .map_err(|e| self.io("list the directory of", entry)(e.into()))?;
        let mut doomed = Vec::new();
        for child in listing {
            let child = child.map_err(|e| self.io("list the directory of", entry)(e.into()))?;
            let name = OsStr::from_bytes(child.file_name().to_bytes()).to_owned();
            if name == "." || name == ".." {
                continue;
            }
            let mut key: Vec<&OsStr> = dir_parts.to_vec();
            key.push(&name);
            if !self.written.contains(&key_of(&key)) {
                doomed.push((name.clone(), child.file_type() == FileType::Directory));
            }
        }
        for (name, is_dir) in doomed {
            self.remove(dir, &name, is_dir, entry)?;
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        if kind == tar::EntryType::XGlobalHeader {
            return Ok(());
        }
        let parts = components(&raw, &shown, self.dest)?;
        let header = entry.header().clone();
        let mode = Mode::from_raw_mode(header.mode().map_err(UnpackError::Archive)? & 0o7777);
        let pax = pax_records(entry).map_err(UnpackError::Archive)?;
        // PAX records override the header's octal fields (large ids).
        let uid = match pax.uid {
            Some(uid) => uid,
            None => header.uid().map_err(UnpackError::Archive)?,
        };
        let gid = match pax.gid {
            Some(gid) => gid,
            None => header.gid().map_err(UnpackError::Archive)?,
        };
        let mtime = header.mtime().unwrap_or(0);

        let Some((&name, parent_parts)) = parts.split_last() else {
            // `./` itself: the layer root's own metadata.
            if kind.is_dir() {
                rustix::fs::fchown(self.root, Some(ugid_u(uid)), Some(ugid_g(gid)))
                    .and_then(|()| rustix::fs::fchmod(self.root, mode))
                    .map_err(|e| self.io("set the owner and mode of", &shown)(e.into()))?;
                return Ok(());
            }
            return Err(self.unsafe_entry(
                &shown,
                "names the layer directory itself but is not a directory",
            ));
        };
        let parent = self.open_dir(parent_parts, &shown)?;
        let name_bytes = name.as_bytes();

        // Whiteouts: translate to overlayfs's spelling.
        if name_bytes == OPAQUE && self.whiteouts == Whiteouts::Apply {
            return self.make_opaque(&parent, parent_parts, &shown);
        }
        if name_bytes == OPAQUE {
            rustix::fs::fsetxattr(
                &parent,
                "trusted.overlay.opaque",
                b"y",
                rustix::fs::XattrFlags::empty(),
            )
            .map_err(|e| self.io("mark as opaque the directory of", &shown)(e.into()))?;
            return Ok(());
        }
        if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT) {
            let hidden = OsStr::from_bytes(hidden);
            if hidden.is_empty() {
                return Err(self.unsafe_entry(&shown, "is a whiteout without a name"));
            }
            self.clear(&parent, hidden, false, &shown)?;
            if self.whiteouts == Whiteouts::Apply {
                return Ok(());
            }
            rustix::fs::mknodat(
                &parent,
                hidden,
                FileType::CharacterDevice,
                Mode::empty(),
                rustix::fs::makedev(0, 0),
            )
            .map_err(|e| self.io("create the whiteout for", &shown)(e.into()))?;
            return Ok(());
        }

        self.written.insert(key_of(&parts));
        let xattrs = pax.xattrs;
        let owner = (Some(ugid_u(uid)), Some(ugid_g(gid)));
        match kind {
            tar::EntryType::Directory => {
                if !self.clear(&parent, name, true, &shown)? {
                    rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o700))
                        .map_err(|e| self.io("create the directory", &shown)(e.into()))?;
                }
                let dir = rustix::fs::openat(&parent, name, DIR_FLAGS, Mode::empty())
                    .map_err(|e| self.io("open the directory", &shown)(e.into()))?;
                rustix::fs::fchown(&dir, owner.0, owner.1)
                    .and_then(|()| rustix::fs::fchmod(&dir, mode))
                    .map_err(|e| self.io("set the owner and mode of", &shown)(e.into()))?;
                self.set_xattrs(&dir, &xattrs, &shown)?;
                self.dir_times.push((raw.clone(), mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                self.clear(&parent, name, false, &shown)?;
                // O_EXCL never follows a symlink, and `clear` removed any.
                let fd = rustix::fs::openat(
                    &parent,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| self.io("create the file", &shown)(e.into()))?;
                let mut file = File::from(fd);
                io::copy(entry, &mut file).map_err(UnpackError::Archive)?;
                // chown clears setuid bits, so the mode comes after it.
                rustix::fs::fchown(&file, owner.0, owner.1)
                    .and_then(|()| rustix::fs::fchmod(&file, mode))
                    .map_err(|e| self.io("set the owner and mode of", &shown)(e.into()))?;
                self.set_xattrs(&file, &xattrs, &shown)?;
                let times = timestamps(mtime);
                rustix::fs::futimens(&file, &times)
                    .map_err(|e| self.io("set the time of", &shown)(e.into()))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.unsafe_entry(&shown, "is a symlink without a target"))?
                    .into_owned();
                self.clear(&parent, name, false, &shown)?;
                // A symlink may point anywhere: it is only data until
                // something resolves it, and every resolution here is
                // confined. Inside the container it resolves in its root.
                rustix::fs::symlinkat(OsStr::from_bytes(&target), &parent, name)
                    .map_err(|e| self.io("create the symlink", &shown)(e.into()))?;
                self.set_meta_at(&parent, name, owner, None, mtime, &shown)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.unsafe_entry(&shown, "is a hardlink without a target"))?
                    .into_owned();
                let shown_target = String::from_utf8_lossy(&target).into_owned();
                let target_parts = components(&target, &shown, self.dest).map_err(|_| {
                    self.unsafe_entry(
                        &shown,
                        format!("is a hardlink to `{shown_target}`, outside the layer"),
                    )
                })?;
                let Some((target_name, target_parent)) = target_parts.split_last() else {
                    return Err(self.unsafe_entry(&shown, "is a hardlink to the layer directory"));
                };
                let tparent = rustix::fs::openat2(
                    self.root,
                    join(target_parent),
                    RESOLVE_DIR,
                    Mode::empty(),
                    BENEATH,
                )
                .map_err(|e| match e {
                    rustix::io::Errno::XDEV
                    | rustix::io::Errno::LOOP
                    | rustix::io::Errno::NOENT
                    | rustix::io::Errno::NOTDIR => self.unsafe_entry(
                        &shown,
                        format!(
                            "is a hardlink to `{shown_target}`, which is not a file of this layer"
                        ),
                    ),
                    e => self.io("resolve the hardlink target of", &shown)(e.into()),
                })?;
                self.clear(&parent, name, false, &shown)?;
                // Without AT_SYMLINK_FOLLOW, linkat links the target entry
                // itself (a symlink stays a symlink), never what it points to.
                rustix::fs::linkat(&tparent, *target_name, &parent, name, AtFlags::empty())
                    .map_err(|e| match e {
                        rustix::io::Errno::NOENT => self.unsafe_entry(
                            &shown,
                            format!("is a hardlink to `{shown_target}`, which is not a file of this layer"),
                        ),
                        e => self.io("create the hardlink", &shown)(e.into()),
                    })?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let file_type = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let major = header
                    .device_major()
                    .map_err(UnpackError::Archive)?
                    .unwrap_or(0);
                let minor = header
                    .device_minor()
                    .map_err(UnpackError::Archive)?
                    .unwrap_or(0);
                self.clear(&parent, name, false, &shown)?;
                rustix::fs::mknodat(
                    &parent,
                    name,
                    file_type,
                    mode,
                    rustix::fs::makedev(major, minor),
                )
                .map_err(|e| self.io("create the device node", &shown)(e.into()))?;
                self.set_meta_at(&parent, name, owner, Some(mode), mtime, &shown)?;
            }
            other => {
                return Err(UnpackError::Unsupported {
                    entry: shown,
                    kind: format!("{other:?}"),
                });
            }
        }
        Ok(())
    }

    /// Owner, mode and time of an entry that cannot be opened (symlinks,
    /// device nodes), set through its parent without following it.
    fn set_meta_at(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        owner: (Option<rustix::fs::Uid>, Option<rustix::fs::Gid>),
        mode: Option<Mode>,
        mtime: u64,
        shown: &str,
    ) -> Result<(), UnpackError> {
        rustix::fs::chownat(parent, name, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.io("set the owner of", shown)(e.into()))?;
        if let Some(mode) = mode {
            // Only for device nodes and fifos, which chmod does not follow;
            // umask trimmed the mode mknod got.
            rustix::fs::chmodat(parent, name, mode, AtFlags::empty())
                .map_err(|e| self.io("set the mode of", shown)(e.into()))?;
        }
        rustix::fs::utimensat(parent, name, &timestamps(mtime), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.io("set the time of", shown)(e.into()))
    }

    fn set_xattrs(
        &self,
        fd: impl AsFd,
        xattrs: &[(String, Vec<u8>)],
        shown: &str,
    ) -> Result<(), UnpackError> {
        for (name, value) in xattrs {
            rustix::fs::fsetxattr(&fd, name.as_str(), value, rustix::fs::XattrFlags::empty())
                .map_err(|e| self.io("set an extended attribute of", shown)(e.into()))?;
        }
        Ok(())
    }

    fn restore_dir_times(&self) -> Result<(), UnpackError> {
        // Deepest first is not needed: setting a directory's time does not
        // change its parent's.
        for (raw, mtime) in &self.dir_times {
            let shown = String::from_utf8_lossy(raw);
            let parts = components(raw, &shown, self.dest)?;
            let path = join(&parts);
            let dir = rustix::fs::openat2(self.root, &path, RESOLVE_DIR, Mode::empty(), BENEATH)
                .map_err(|e| self.io("open", &shown)(e.into()))?;
            rustix::fs::futimens(&dir, &timestamps(*mtime))
                .map_err(|e| self.io("set the time of", &shown)(e.into()))?;
        }
        Ok(())
    }
}

/// The normalized form of an entry's path, for the `written` set.
fn key_of(parts: &[&OsStr]) -> Vec<u8> {
    let mut key = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            key.push(b'/');
        }
        key.extend_from_slice(p.as_bytes());
    }
    key
}

fn timestamps(mtime: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn ugid_u(raw: u64) -> rustix::fs::Uid {
    // Ids beyond u32 cannot exist on Linux; map them to nobody rather than
    // truncating into some real user's id.
    rustix::fs::Uid::from_raw(u32::try_from(raw).unwrap_or(65534))
}

fn ugid_g(raw: u64) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(u32::try_from(raw).unwrap_or(65534))
}

/// What an entry's PAX extended header says that stack uses.
#[derive(Default)]
struct Pax {
    /// `SCHILY.xattr.NAME` records: extended attributes.
    xattrs: Vec<(String, Vec<u8>)>,
    uid: Option<u64>,
    gid: Option<u64>,
}

fn pax_records<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Pax> {
    let mut out = Pax::default();
    if let Some(records) = entry.pax_extensions()? {
        for record in records {
            let record = record?;
            let Ok(key) = record.key() else { continue };
            let number = || record.value().ok().and_then(|v| v.parse().ok());
            match key {
                "uid" => out.uid = number(),
                "gid" => out.gid = number(),
                _ => {
                    if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                        out.xattrs
                            .push((name.to_owned(), record.value_bytes().to_vec()));
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_touching_the_disk() {
        let dest = Path::new("/nowhere");
        assert_eq!(
            components(b"./a//b/./c", "x", dest).unwrap(),
            [OsStr::new("a"), OsStr::new("b"), OsStr::new("c")]
        );
        assert!(components(b"./", "x", dest).unwrap().is_empty());
        let err = components(b"a/../../etc", "a/../../etc", dest).unwrap_err();
        assert!(
            err.to_string().contains("`a/../../etc` contains a `..`"),
            "{err}"
        );
        let err = components(b"/etc/passwd", "/etc/passwd", dest).unwrap_err();
        assert!(err.to_string().contains("absolute"), "{err}");
    }

    #[test]
    fn compression_is_recognised_by_magic() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"bin/"), Compression::None);
    }
}
