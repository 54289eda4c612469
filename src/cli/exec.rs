//! `stack exec`: a command in a running container of a service.
//!
//! The runtime's exec helper (`stack __exec`, see
//! [`crate::runtime::shim::exec`]) does the work: it joins the container's
//! cgroup and namespaces and takes its user, capabilities, seccomp filter,
//! environment and working directory before executing the command. This
//! command picks the container (`--index`), decides on a terminal (`-t`,
//! the default when standard input is one; `-T` never) and passes the
//! helper our standard streams, so the command's output is ours, its exit
//! code is ours, and with a terminal the helper switches ours to raw mode
//! and follows its size. `-d` starts it in the background and returns.

use std::io::IsTerminal as _;
use std::process::{ExitCode, Stdio};

use anyhow::{Context as _, anyhow};

use super::Failure;
use super::args::{ExecArgs, Global, StdinArgs};
use super::containers;
use crate::runtime::shim::exec::ExecRequest;

/// Whether to give the command a terminal: `-t`, else when standard input is one.
pub fn want_tty(a: &StdinArgs) -> bool {
    a.tty || (!a.no_tty && a.interactive && std::io::stdin().is_terminal())
}

/// The exit status of a child as a shell reports it.
pub fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(s)) => 128u8.wrapping_add(s as u8),
        _ => 1,
    }
}

extern "C" fn ignore(_: libc::c_int) {}

/// Keeps a terminal's Ctrl-C (which reaches the whole process group) from
/// killing us while a helper that forwards it to the container runs: a
/// handler that does nothing, not SIG_IGN, which the helper would inherit.
pub fn shield_signals() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(ignore),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in [
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTERM,
        Signal::SIGHUP,
    ] {
        // SAFETY: the handler does nothing, which is async-signal-safe.
        let _ = unsafe { sigaction(s, &action) };
    }
}

/// Runs `stack exec` and returns the command's exit code.
pub fn main(global: &Global, args: &ExecArgs) -> ExitCode {
    match run(global, args) {
        Ok(code) => ExitCode::from(code),
        Err(f) => ExitCode::from(super::report(f)),
    }
}

fn run(global: &Global, args: &ExecArgs) -> Result<u8, Failure> {
    let scope = containers::scope(global)?;
    let rt = containers::tokio()?;
    let (name, runtime, paused, running) = rt.block_on(async {
        let host = containers::open_host(global, &scope).await?;
        let list =
            containers::containers(&host, &scope, std::slice::from_ref(&args.service), false).await;
        let found = list.and_then(|l| {
            let c = containers::replica(&l, &args.service, args.index)?;
            Ok((c.name.clone(), c.paused(), c.status.is_running()))
        });
        let runtime = host.runtime().clone();
        host.close().await;
        let (name, paused, running) = found?;
        Ok::<_, Failure>((name, runtime, paused, running))
    })?;
    drop(rt);
    if paused {
        return Err(anyhow!(
            "container {name} is paused; `stack unpause {}` first",
            args.service
        )
        .into());
    }
    if !running {
        return Err(anyhow!(
            "container {name} is not running; `stack start {}` starts it",
            args.service
        )
        .into());
    }
    let tty = !args.detach && want_tty(&args.stdin);
    let req = ExecRequest {
        args: args.command.clone(),
        env: args.env.clone(),
        user: args.user.clone(),
        workdir: args.workdir.clone(),
        tty,
    };
    let mut cmd = runtime
        .exec_command(&name, &req)
        .map_err(anyhow::Error::from)?;
    if args.detach {
        // Its own session: it outlives us and no terminal signal reaches it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start the exec helper")?;
        return Ok(0);
    }
    if !args.stdin.interactive && !tty {
        cmd.stdin(Stdio::null());
    }
    shield_signals();
    let status = cmd.status().context("cannot start the exec helper")?;
    Ok(exit_code(status))
}
