//! `stack systemd`: a unit file that brings the project up at boot.
//!
//! The unit runs `stack up -d` (Type=forking): `up` returns once the
//! project's watcher runs, and the watcher, whose pid is in its lock file
//! (`PIDFile=`), is the service's main process, so systemd restarts the
//! unit when it dies and the new `up -d` adopts the running containers.
//! Stopping the unit runs `stack down` (volumes kept) — but only a stop
//! that was asked for (`$SERVICE_RESULT` is `success`): a watcher that
//! crashed leaves the containers running for the restart to adopt, and
//! `KillMode=process` keeps systemd from killing them itself. Every path
//! is absolute (the stack binary, the files, the state root), so the unit
//! works from any directory.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::Failure;
use super::args::{Global, SystemdArgs};
use crate::spec;

/// Runs `stack systemd`.
pub fn run(global: &Global, args: &SystemdArgs) -> Result<(), Failure> {
    let opts = super::load_options(global, &[])?;
    let project = spec::load(&opts)?;
    let exe = std::env::current_exe().context("cannot find stack's own executable")?;
    let root = std::path::absolute(&global.root)?;
    let unit = unit(
        &exe,
        &root,
        &project.stack.name,
        &project.stack.files,
        &project.stack.project_dir,
        global,
        args.user,
    )?;
    std::io::stdout().lock().write_all(unit.as_bytes())?;
    Ok(())
}

/// Quotes a word for systemd's command lines (double quotes, escapes).
fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:,@+".contains(c))
    {
        return word.to_string();
    }
    let mut q = String::from("\"");
    for c in word.chars() {
        match c {
            '"' | '\\' => {
                q.push('\\');
                q.push(c);
            }
            '$' => q.push_str("$$"),
            '%' => q.push_str("%%"),
            _ => q.push(c),
        }
    }
    q.push('"');
    q
}

/// The unit's text.
pub fn unit(
    exe: &Path,
    root: &Path,
    project: &str,
    files: &[PathBuf],
    project_dir: &Path,
    global: &Global,
    user: bool,
) -> std::io::Result<String> {
    let mut base = vec![
        quote(&exe.display().to_string()),
        "--root".into(),
        quote(&root.display().to_string()),
        "-p".into(),
        quote(project),
    ];
    for f in files {
        base.push("-f".into());
        base.push(quote(&std::path::absolute(f)?.display().to_string()));
    }
    base.push("--project-directory".into());
    base.push(quote(&project_dir.display().to_string()));
    for e in &global.env_files {
        base.push("--env-file".into());
        base.push(quote(&std::path::absolute(e)?.display().to_string()));
    }
    for p in &global.profiles {
        base.push("--profile".into());
        base.push(quote(p));
    }
    let base = base.join(" ");
    let pid_file = root
        .join("run")
        .join("watch")
        .join(format!("{project}.lock"));
    let (after, wanted_by) = if user {
        ("", "default.target")
    } else {
        (
            "Wants=network-online.target\nAfter=network-online.target\n",
            "multi-user.target",
        )
    };
    Ok(format!(
        "# The stack project `{project}`, brought up at boot under its watcher.\n\
         # Install: save as /etc/systemd/system/stack-{project}.service\n\
         # (with --user: ~/.config/systemd/user/), then\n\
         # `systemctl{u} daemon-reload && systemctl{u} enable --now stack-{project}`.\n\
         [Unit]\n\
         Description=stack project {project}\n\
         {after}\
         \n\
         [Service]\n\
         Type=forking\n\
         PIDFile={pid}\n\
         WorkingDirectory={dir}\n\
         ExecStart={base} up -d\n\
         ExecStop=/bin/sh -c 'if [ \"$$SERVICE_RESULT\" = success ]; then exec \"$$0\" \"$$@\"; fi' {base} down\n\
         KillMode=process\n\
         Restart=on-failure\n\
         RestartSec=2\n\
         TimeoutStartSec=15min\n\
         TimeoutStopSec=5min\n\
         \n\
         [Install]\n\
         WantedBy={wanted_by}\n",
        u = if user { " --user" } else { "" },
        pid = pid_file.display(),
        dir = project_dir.display(),
    ))
}
