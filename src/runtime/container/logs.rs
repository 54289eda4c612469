//! The container's log file: one record per line of output.
//!
//! The format is the CRI logging format that Kubernetes uses, one record
//! per line, so it is easy to read back, to follow and to filter by time:
//!
//! ```text
//! 2026-11-25T19:22:07.123456789Z stdout F the whole line
//! 2026-11-25T19:22:07.123456790Z stderr P the first 16 KiB of a long line
//! ```
//!
//! `F` marks a full line, `P` a partial one: a line longer than 16 KiB is
//! written as several records (all `P` but the last) rather than buffered
//! without bound or dropped. Rotation (`max-size`, `max-file`) renames
//! `container.log` to `container.log.1` and so on when the next record would
//! not fit. A write that fails (a full disk) drops that record and counts it:
//! the shim must keep draining the container's pipes, or the container
//! would block forever on its next write.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::build::LogOptions;

/// Longest line kept in one record.
pub const MAX_LINE: usize = 16 * 1024;

/// Which output a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Appends records to `container.log`, rotating it.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    options: LogOptions,
    file: Option<File>,
    size: u64,
    /// Records lost to write errors.
    pub dropped: u64,
}

impl LogWriter {
    pub fn open(path: &Path, options: LogOptions) -> io::Result<LogWriter> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            options,
            file: Some(file),
            size,
            dropped: 0,
        })
    }

    /// Writes one record.
    pub fn write(&mut self, stream: Stream, partial: bool, text: &[u8]) {
        let mut line = Vec::with_capacity(text.len() + 48);
        line.extend_from_slice(crate::time::rfc3339_nanos(SystemTime::now()).as_bytes());
        line.push(b' ');
        line.extend_from_slice(stream.name().as_bytes());
        line.extend_from_slice(if partial { b" P " } else { b" F " });
        line.extend_from_slice(text);
        line.push(b'\n');
        if let Some(max) = self.options.max_size
            && self.size > 0
            && self.size + line.len() as u64 > max
            && self.rotate().is_err()
        {
            self.dropped += 1;
            return;
        }
        match self.file.as_mut().map(|f| f.write_all(&line)) {
            Some(Ok(())) => self.size += line.len() as u64,
            _ => self.dropped += 1,
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let keep = self.options.max_file.max(1);
        let name = |n: u32| {
            if n == 0 {
                self.path.clone()
            } else {
                PathBuf::from(format!("{}.{n}", self.path.display()))
            }
        };
        if keep == 1 {
            std::fs::remove_file(&self.path).or_else(ignore_missing)?;
        } else {
            std::fs::remove_file(name(keep - 1)).or_else(ignore_missing)?;
            for n in (0..keep - 1).rev() {
                std::fs::rename(name(n), name(n + 1)).or_else(ignore_missing)?;
            }
        }
        self.file = Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?,
        );
        self.size = 0;
        Ok(())
    }
}

fn ignore_missing(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

/// Splits a stream's bytes into records: complete lines, and 16 KiB pieces
/// of lines too long to wait for.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds `data`; calls `emit(partial, line)` for each record.
    pub fn feed(&mut self, data: &[u8], mut emit: impl FnMut(bool, &[u8])) {
        self.pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(nl) = self.pending[start..].iter().position(|b| *b == b'\n') {
            let end = start + nl;
            let mut line = &self.pending[start..end];
            while line.len() > MAX_LINE {
                emit(true, &line[..MAX_LINE]);
                line = &line[MAX_LINE..];
            }
            emit(false, line);
            start = end + 1;
        }
        self.pending.drain(..start);
        while self.pending.len() >= MAX_LINE {
            emit(true, &self.pending[..MAX_LINE]);
            self.pending.drain(..MAX_LINE);
        }
    }

    /// Emits what is left when the stream closes.
    pub fn finish(&mut self, mut emit: impl FnMut(bool, &[u8])) {
        if !self.pending.is_empty() {
            emit(false, &self.pending);
            self.pending.clear();
        }
    }
}

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogEntry {
    /// Nanoseconds since the Unix epoch.
    pub time_nanos: u128,
    pub stream: Stream,
    pub partial: bool,
    pub text: String,
}

/// Reads every record of a container's logs, oldest first, across rotated
/// files; `since` keeps records at or after that time.
pub fn read_logs(path: &Path, since: Option<SystemTime>) -> io::Result<Vec<LogEntry>> {
    let since = since.map(nanos).unwrap_or(0);
    let mut files = Vec::new();
    for n in (1..100).rev() {
        let p = PathBuf::from(format!("{}.{n}", path.display()));
        if p.exists() {
            files.push(p);
        }
    }
    files.push(path.to_path_buf());
    let mut out = Vec::new();
    for p in files {
        let f = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in BufReader::new(f).split(b'\n') {
            if let Some(e) = parse_record(&line?).filter(|e| e.time_nanos >= since) {
                out.push(e);
            }
        }
    }
    Ok(out)
}

/// Follows a log file as it grows and rotates (`logs -f`): each
/// [`Follower::poll`] returns the records written since the last one.
/// Rotation is noticed by the live file's inode changing; the rest of the
/// old file is then read from `container.log.1` before starting over.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    inode: Option<u64>,
    offset: u64,
    pending: Vec<u8>,
}

impl Follower {
    /// Starts at the current end of the log (records already there are
    /// read with [`read_logs`]).
    pub fn from_end(path: &Path) -> Follower {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok();
        Follower {
            path: path.to_path_buf(),
            inode: meta.as_ref().map(|m| m.ino()),
            offset: meta.map(|m| m.len()).unwrap_or(0),
            pending: Vec::new(),
        }
    }

    /// Starts at the beginning of the live file.
    pub fn from_start(path: &Path) -> Follower {
        let mut f = Follower::from_end(path);
        f.offset = 0;
        f
    }

    /// New records since the last call.
    pub fn poll(&mut self) -> io::Result<Vec<LogEntry>> {
        use std::io::{Seek, SeekFrom};
        use std::os::unix::fs::MetadataExt;
        let mut bytes = Vec::new();
        let current = std::fs::metadata(&self.path).ok().map(|m| m.ino());
        if current != self.inode {
            // Rotated: finish the previous file, now `.1`.
            let old = PathBuf::from(format!("{}.1", self.path.display()));
            if let Ok(mut f) = File::open(&old)
                && self.inode.is_some()
                && f.metadata()?.ino() == self.inode.unwrap_or_default()
            {
                f.seek(SeekFrom::Start(self.offset))?;
                f.read_to_end(&mut bytes)?;
            }
            self.inode = current;
            self.offset = 0;
        }
        if let Ok(mut f) = File::open(&self.path) {
            f.seek(SeekFrom::Start(self.offset))?;
            let n = f.read_to_end(&mut bytes)?;
            self.offset += n as u64;
        }
        self.pending.extend_from_slice(&bytes);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(nl) = self.pending[start..].iter().position(|b| *b == b'\n') {
            if let Some(e) = parse_record(&self.pending[start..start + nl]) {
                out.push(e);
            }
            start += nl + 1;
        }
        self.pending.drain(..start);
        Ok(out)
    }
}

/// Parses one record; `None` for a line that is not one.
pub fn parse_record(line: &[u8]) -> Option<LogEntry> {
    let text = String::from_utf8_lossy(line);
    let mut parts = text.splitn(4, ' ');
    let time = nanos(crate::time::parse_rfc3339(parts.next()?)?);
    let stream = match parts.next()? {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match parts.next()? {
        "P" => true,
        "F" => false,
        _ => return None,
    };
    Some(LogEntry {
        time_nanos: time,
        stream,
        partial,
        text: parts.next().unwrap_or_default().to_string(),
    })
}

fn nanos(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_split_not_lost() {
        let mut s = LineSplitter::default();
        let mut got = Vec::new();
        let long = vec![b'x'; MAX_LINE * 2 + 5];
        s.feed(b"one\ntw", |p, l| got.push((p, l.len())));
        s.feed(b"o\n", |p, l| got.push((p, l.len())));
        s.feed(&long, |p, l| got.push((p, l.len())));
        s.feed(b"\n", |p, l| got.push((p, l.len())));
        s.feed(b"tail", |p, l| got.push((p, l.len())));
        s.finish(|p, l| got.push((p, l.len())));
        assert_eq!(
            got,
            [
                (false, 3),
                (false, 3),
                (true, MAX_LINE),
                (true, MAX_LINE),
                (false, 5),
                (false, 4)
            ]
        );
    }

    #[test]
    fn rotation_keeps_max_file_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let opts = LogOptions {
            max_size: Some(200),
            max_file: 3,
        };
        let mut w = LogWriter::open(&path, opts).unwrap();
        for i in 0..40 {
            w.write(Stream::Stdout, false, format!("line {i:02}").as_bytes());
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["container.log", "container.log.1", "container.log.2"]
        );
        for n in &names {
            assert!(std::fs::metadata(dir.path().join(n)).unwrap().len() <= 200);
        }
        let entries = read_logs(&path, None).unwrap();
        assert_eq!(entries.last().unwrap().text, "line 39");
        // Oldest first, contiguous.
        let first: u32 = entries[0].text[5..].parse().unwrap();
        assert_eq!(entries.len() as u32, 40 - first);
        let later = read_logs(&path, Some(SystemTime::now() + Duration::from_secs(5))).unwrap();
        assert!(later.is_empty());
    }

    #[test]
    fn a_follower_sees_new_records_across_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let opts = LogOptions {
            max_size: Some(120),
            max_file: 2,
        };
        let mut w = LogWriter::open(&path, opts).unwrap();
        w.write(Stream::Stdout, false, b"before");
        let mut f = Follower::from_end(&path);
        assert!(f.poll().unwrap().is_empty());
        let mut seen = Vec::new();
        for i in 0..10 {
            w.write(Stream::Stderr, false, format!("n{i}").as_bytes());
            // Poll every other record: some polls straddle a rotation.
            if i % 2 == 1 {
                seen.extend(f.poll().unwrap().into_iter().map(|e| e.text));
            }
        }
        let want: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
        assert_eq!(seen, want);
    }
}
