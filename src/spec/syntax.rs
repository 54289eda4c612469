//! Compose's short syntaxes, parsed: ports, volumes, durations, byte sizes,
//! shell words.
//!
//! These are the little languages inside Compose strings: `"127.0.0.1:8000-8001:80-81/udp"`,
//! `"./data:/var/lib/data:ro,z"`, `"1m30s"`, `"512m"`, `"sh -c 'echo hi'"`.
//! Each parser is a pure function from the string to the long form and
//! returns a message that says what is wrong and how it should look; the
//! normalizer attaches the place in the file.

use std::path::{Component, Path, PathBuf};

use super::model::{BindOptions, Bytes, Duration, Mount, MountType, Port, VolumeOptions};

/// `[host_ip:][published[-end]:]target[-end][/protocol]`. A target range
/// with a published range of the same length expands to one port per pair,
/// as docker does.
pub fn parse_port(spec: &str) -> Result<Vec<Port>, String> {
    let bad = |why: &str| {
        format!(
            "`{spec}` is not a port: {why} (write `TARGET`, `PUBLISHED:TARGET` or `HOST_IP:PUBLISHED:TARGET`, with `-` ranges and an optional `/tcp` or `/udp`)"
        )
    };
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_string()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad(&format!("unknown protocol `{protocol}`")));
    }
    // An IPv6 host address is bracketed, or recognizable by having more colons.
    let (host_ip, rest) = if let Some(after) = rest.strip_prefix('[') {
        let (ip, after) = after
            .split_once(']')
            .ok_or_else(|| bad("an opening `[` without `]`"))?;
        let after = after
            .strip_prefix(':')
            .ok_or_else(|| bad("a host address must be followed by `:`"))?;
        (Some(ip.to_string()), after)
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            1 | 2 => (None, rest),
            3 => (Some(parts[0].to_string()), &rest[parts[0].len() + 1..]),
            _ => {
                // host_ip is IPv6 without brackets: the last two parts are the ports.
                let cut = rest
                    .rmatch_indices(':')
                    .nth(1)
                    .map(|(i, _)| i)
                    .ok_or_else(|| bad("too many `:`"))?;
                (Some(rest[..cut].to_string()), &rest[cut + 1..])
            }
        }
    };
    let (published, target) = match rest.split_once(':') {
        Some((p, t)) => (Some(p), t),
        None => (None, rest),
    };
    let (t0, t1) =
        range(target).ok_or_else(|| bad(&format!("`{target}` is not a port or range")))?;
    if t0 == 0 {
        return Err(bad("port 0 cannot be a container port"));
    }
    let published = match published {
        None | Some("") => None,
        Some(p) => Some(range(p).ok_or_else(|| bad(&format!("`{p}` is not a port or range")))?),
    };
    let host_ip = host_ip.filter(|ip| !ip.is_empty());
    let port = |target: u16, published: Option<String>| Port {
        name: None,
        mode: "ingress".to_string(),
        host_ip: host_ip.clone(),
        target,
        published,
        protocol: protocol.clone(),
        app_protocol: None,
    };
    let count = t1 - t0;
    match published {
        Some((p0, p1)) if count > 0 => {
            if p1 - p0 != count {
                return Err(bad(
                    "the published range and the target range differ in length",
                ));
            }
            Ok((0..=count)
                .map(|i| port(t0 + i, Some((p0 + i).to_string())))
                .collect())
        }
        Some((p0, p1)) => {
            let published = if p0 == p1 {
                p0.to_string()
            } else {
                format!("{p0}-{p1}")
            };
            Ok(vec![port(t0, Some(published))])
        }
        None => Ok((t0..=t1).map(|t| port(t, None)).collect()),
    }
}

fn range(s: &str) -> Option<(u16, u16)> {
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (a.parse().ok()?, b.parse().ok()?);
            (a <= b).then_some((a, b))
        }
        None => {
            let n = s.parse().ok()?;
            Some((n, n))
        }
    }
}

/// `[SOURCE:]TARGET[:MODE]`. A source that is a path (absolute, `.`, `~`)
/// is a bind mount resolved against `base`; a bare name is a named volume;
/// no source is an anonymous volume.
pub fn parse_volume(spec: &str, base: &Path, home: Option<&Path>) -> Result<Mount, String> {
    let bad = |why: &str| {
        format!(
            "`{spec}` is not a volume: {why} (write `TARGET`, `SOURCE:TARGET` or `SOURCE:TARGET:ro`)"
        )
    };
    if spec.starts_with("\\\\.\\pipe") || spec.starts_with("//./pipe") {
        return Err(bad("named pipes exist only on Windows"));
    }
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => (None, *t, None),
        [s, t] => (Some(*s), *t, None),
        [s, t, m] => (Some(*s), *t, Some(*m)),
        _ => return Err(bad("too many `:`")),
    };
    if target.is_empty() {
        return Err(bad("the container path is empty"));
    }
    if !target.starts_with('/') {
        return Err(bad(&format!(
            "the container path `{target}` must be absolute"
        )));
    }
    let mut mount = Mount {
        kind: MountType::Volume,
        source: None,
        target: clean_container_path(target),
        read_only: false,
        bind: None,
        volume: None,
        tmpfs: None,
        consistency: None,
    };
    if let Some(source) = source {
        if source.is_empty() {
            return Err(bad("the source is empty"));
        }
        if is_path(source) {
            mount.kind = MountType::Bind;
            mount.source = Some(resolve_path(source, base, home).display().to_string());
            mount.bind = Some(BindOptions {
                create_host_path: Some(true),
                ..BindOptions::default()
            });
        } else {
            mount.source = Some(source.to_string());
        }
    }
    for option in mode.into_iter().flat_map(|m| m.split(',')) {
        match option {
            "ro" => mount.read_only = true,
            "rw" => mount.read_only = false,
            "z" | "Z" => {
                mount.bind.get_or_insert_with(BindOptions::default).selinux = Some(option.into())
            }
            "nocopy" => {
                mount
                    .volume
                    .get_or_insert_with(VolumeOptions::default)
                    .nocopy = true;
            }
            "cached" | "delegated" | "consistent" => mount.consistency = Some(option.into()),
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                mount
                    .bind
                    .get_or_insert_with(BindOptions::default)
                    .propagation = Some(option.into())
            }
            "" => {}
            other => {
                return Err(bad(&format!(
                    "unknown option `{other}` (known: ro, rw, z, Z, nocopy, shared, slave, private and their r- forms)"
                )));
            }
        }
    }
    Ok(mount)
}

/// A volume source is a host path when it looks like one.
pub fn is_path(source: &str) -> bool {
    source.starts_with('/') || source.starts_with('.') || source.starts_with('~')
}

/// Resolves `~` and relative paths; keeps absolute ones; cleans `.` and `..`.
pub fn resolve_path(path: &str, base: &Path, home: Option<&Path>) -> PathBuf {
    let joined = if path == "~" {
        home.map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("~"))
    } else if let (Some(rest), Some(home)) = (path.strip_prefix("~/"), home) {
        home.join(rest)
    } else {
        base.join(path)
    };
    clean(&joined)
}

/// Lexical clean-up of `.` and `..` (no symlinks are followed: the path may not exist yet).
pub fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

fn clean_container_path(path: &str) -> String {
    let cleaned = clean(Path::new(path)).display().to_string();
    if cleaned.is_empty() {
        "/".into()
    } else {
        cleaned
    }
}

/// Go-style durations: `1h30m`, `10s`, `1.5s`, `100ms`, `2us`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "`{text}` is not a duration (write a number followed by a unit: h, m, s, ms, us or ns, e.g. `1m30s`)"
        )
    };
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration(std::time::Duration::from_secs(seconds)));
    }
    let mut rest = text.trim();
    if rest.is_empty() || rest.starts_with('-') {
        return Err(bad());
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "h" => 3.6e12,
            "m" => 6e10,
            "s" => 1e9,
            "ms" => 1e6,
            "us" | "µs" | "μs" => 1e3,
            "ns" => 1.0,
            _ => return Err(bad()),
        };
        nanos += value * scale;
        rest = &rest[u..];
    }
    if !nanos.is_finite() || nanos > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(Duration(std::time::Duration::from_nanos(
        nanos.round() as u64
    )))
}

/// Docker's byte sizes: `1024`, `512k`, `512m`, `1.5g`, `2gb`, `1GiB` (units are powers of 1024).
pub fn parse_bytes(text: &str) -> Result<Bytes, String> {
    let bad = || {
        format!(
            "`{text}` is not a size in bytes (write a number with an optional unit b, k, m, g, t or p, e.g. `512m`)"
        )
    };
    let lower = text.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let scale: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0f64.powi(3),
        "t" => 1024.0f64.powi(4),
        "p" => 1024.0f64.powi(5),
        _ => return Err(bad()),
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(Bytes(bytes as i64))
}

/// Splits a command string into words as a POSIX shell would, without
/// expansions: quotes group, backslash escapes (not inside single quotes).
pub fn shell_split(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated single quote in `{text}`")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unterminated double quote in `{text}`")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated double quote in `{text}`")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') | None => {}
                    Some(c) => word.push(c),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> Port {
        let mut ports = parse_port(spec).unwrap();
        assert_eq!(ports.len(), 1, "{spec}");
        ports.remove(0)
    }

    #[test]
    fn ports_short_forms() {
        let p = one("80");
        assert_eq!(
            (p.target, p.published.as_deref(), p.protocol.as_str()),
            (80, None, "tcp")
        );
        let p = one("8080:80/udp");
        assert_eq!(
            (p.target, p.published.as_deref(), p.protocol.as_str()),
            (80, Some("8080"), "udp")
        );
        let p = one("127.0.0.1:8080:80");
        assert_eq!(p.host_ip.as_deref(), Some("127.0.0.1"));
        let p = one("[::1]:8080:80");
        assert_eq!(p.host_ip.as_deref(), Some("::1"));
        let p = one("::1:8080:80");
        assert_eq!((p.host_ip.as_deref(), p.target), (Some("::1"), 80));
        let p = one("127.0.0.1::80");
        assert_eq!(
            (p.host_ip.as_deref(), p.published),
            (Some("127.0.0.1"), None)
        );
        let p = one("9000-9010:80");
        assert_eq!(p.published.as_deref(), Some("9000-9010"));
    }

    #[test]
    fn port_ranges_expand_pairwise() {
        let ports = parse_port("8000-8002:80-82").unwrap();
        let pairs: Vec<_> = ports
            .iter()
            .map(|p| (p.published.clone().unwrap(), p.target))
            .collect();
        assert_eq!(
            pairs,
            [
                ("8000".into(), 80),
                ("8001".into(), 81),
                ("8002".into(), 82)
            ]
        );
        assert_eq!(parse_port("3000-3002").unwrap().len(), 3);
        assert!(
            parse_port("8000-8001:80-82")
                .unwrap_err()
                .contains("differ in length")
        );
        assert!(
            parse_port("80/xyz")
                .unwrap_err()
                .contains("unknown protocol")
        );
        assert!(parse_port("http").is_err());
        assert!(parse_port("70000").is_err());
    }

    #[test]
    fn volumes_short_forms() {
        let base = Path::new("/proj");
        let home = Some(Path::new("/home/u"));
        let m = parse_volume("/data", base, home).unwrap();
        assert_eq!(
            (m.kind, m.source.as_deref(), m.target.as_str()),
            (MountType::Volume, None, "/data")
        );
        let m = parse_volume("db:/var/lib/db:ro", base, home).unwrap();
        assert_eq!(
            (m.kind, m.source.as_deref(), m.read_only),
            (MountType::Volume, Some("db"), true)
        );
        let m = parse_volume("./conf/../etc:/etc/app:ro,z", base, home).unwrap();
        assert_eq!(
            (m.kind, m.source.as_deref()),
            (MountType::Bind, Some("/proj/etc"))
        );
        assert_eq!(m.bind.unwrap().selinux.as_deref(), Some("z"));
        let m = parse_volume("~/x:/x", base, home).unwrap();
        assert_eq!(m.source.as_deref(), Some("/home/u/x"));
        assert!(
            parse_volume("a:relative", base, home)
                .unwrap_err()
                .contains("absolute")
        );
        assert!(
            parse_volume("a:/b:bogus", base, home)
                .unwrap_err()
                .contains("unknown option")
        );
        assert!(
            parse_volume("//./pipe/docker_engine:/p", base, home)
                .unwrap_err()
                .contains("Windows")
        );
    }

    #[test]
    fn durations() {
        let secs = |s: &str| parse_duration(s).unwrap().0.as_secs_f64();
        assert_eq!(secs("1m30s"), 90.0);
        assert_eq!(secs("1h"), 3600.0);
        assert_eq!(secs("1.5s"), 1.5);
        assert_eq!(secs("100ms"), 0.1);
        assert_eq!(secs("30"), 30.0);
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn byte_sizes() {
        let b = |s: &str| parse_bytes(s).unwrap().0;
        assert_eq!(b("1024"), 1024);
        assert_eq!(b("512m"), 512 << 20);
        assert_eq!(b("1g"), 1 << 30);
        assert_eq!(b("1.5GB"), 3 << 29);
        assert_eq!(b("2KiB"), 2048);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("5x").is_err());
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell_split("echo hi").unwrap(), ["echo", "hi"]);
        assert_eq!(
            shell_split(r#"sh -c 'echo "a b"' "x\"y" a\ b ''"#).unwrap(),
            ["sh", "-c", "echo \"a b\"", "x\"y", "a b", ""]
        );
        assert!(shell_split("echo 'open").is_err());
    }
}
