//! `user: name[:group]` to numeric ids, the way Docker reads an image's
//! /etc/passwd and /etc/group.
//!
//! Rules (moby's `user.GetExecUser`): each half may be a name or a number;
//! a name must exist in the image's files, a number need not. The primary
//! group is the user's passwd entry's group unless a group is given; the
//! supplementary groups are the groups listing the user as a member, plus
//! `group_add`. Without a passwd entry the home is `/`.

use super::ContainerError;

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

struct Passwd<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = Passwd<'_>> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 6 || l.starts_with('#') {
            return None;
        }
        Some(Passwd {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 3 || l.starts_with('#') {
            return None;
        }
        let members = f
            .get(3)
            .map(|m| m.split(',').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        Some((f[0], f[2].parse().ok()?, members))
    })
}

/// Resolves `spec` (`user`, `user:group`, `uid`, `uid:gid`, ...) and
/// `group_add` against the contents of /etc/passwd and /etc/group (empty
/// strings when the image has none).
pub fn resolve(
    spec: &str,
    group_add: &[String],
    passwd: &str,
    group: &str,
) -> Result<ExecUser, ContainerError> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let unknown = |what: &str, name: &str| ContainerError::UnknownUser {
        what: what.to_string(),
        name: name.to_string(),
    };
    let mut out = ExecUser {
        uid: 0,
        gid: 0,
        additional_gids: Vec::new(),
        home: "/".into(),
    };
    let mut user_name = None;
    if !user_part.is_empty() {
        let by_number = user_part.parse::<u32>().ok();
        let entry = passwd_entries(passwd).find(|p| match by_number {
            Some(n) => p.uid == n,
            None => p.name == user_part,
        });
        match (entry, by_number) {
            (Some(p), _) => {
                out.uid = p.uid;
                out.gid = p.gid;
                out.home = p.home.to_string();
                user_name = Some(p.name.to_string());
            }
            (None, Some(n)) => out.uid = n,
            (None, None) => return Err(unknown("user", user_part)),
        }
    }
    let find_group = |g: &str| -> Result<u32, ContainerError> {
        if let Ok(n) = g.parse::<u32>() {
            return Ok(n);
        }
        group_entries(group)
            .find(|(name, _, _)| *name == g)
            .map(|(_, gid, _)| gid)
            .ok_or_else(|| unknown("group", g))
    };
    match group_part {
        Some(g) if !g.is_empty() => out.gid = find_group(g)?,
        _ => {
            // Supplementary groups come from membership only when the
            // group was not forced.
            if let Some(name) = &user_name {
                out.additional_gids = group_entries(group)
                    .filter(|(_, gid, members)| *gid != out.gid && members.contains(&name.as_str()))
                    .map(|(_, gid, _)| gid)
                    .collect();
            }
        }
    }
    for g in group_add {
        let gid = find_group(g)?;
        if !out.additional_gids.contains(&gid) {
            out.additional_gids.push(gid);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
        app:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str =
        "root:x:0:\nwheel:x:10:app,root\nstaff:x:50:\napp:x:1000:\nnogroup:x:65534:\n";

    fn r(spec: &str, add: &[&str]) -> Result<ExecUser, ContainerError> {
        let add: Vec<String> = add.iter().map(|s| s.to_string()).collect();
        resolve(spec, &add, PASSWD, GROUP)
    }

    #[test]
    fn names_resolve_with_home_and_memberships() {
        let u = r("app", &[]).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 1000, "/home/app"));
        assert_eq!(u.additional_gids, [10]);
    }

    #[test]
    fn a_given_group_replaces_the_primary_and_memberships() {
        let u = r("app:staff", &[]).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 50));
        assert!(u.additional_gids.is_empty());
        let u = r("nobody:0", &[]).unwrap();
        assert_eq!((u.uid, u.gid), (65534, 0));
    }

    #[test]
    fn numbers_need_no_entry() {
        let u = r("4242", &[]).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (4242, 0, "/"));
        let u = r("1000:77", &[]).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 77, "/home/app"));
    }

    #[test]
    fn group_add_appends_and_unknown_names_fail() {
        let u = r("root", &["staff", "99"]).unwrap();
        assert_eq!(u.additional_gids, [10, 50, 99]);
        assert!(r("ghost", &[]).is_err());
        assert!(r("app:ghosts", &[]).is_err());
        assert!(r("app", &["ghosts"]).is_err());
    }
}
