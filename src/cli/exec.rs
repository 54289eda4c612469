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

/// A signal sent to us by another process (`kill`), to pass on.
static FORWARD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel hands a valid siginfo to an SA_SIGINFO handler.
    let code = unsafe { (*info).si_code };
    // A terminal's Ctrl-C (si_code SI_KERNEL) reaches the helper too, as
    // the whole foreground process group gets it; one from `kill` (SI_USER,
    // SI_QUEUE) reached only us. Only an atomic store: async-signal-safe.
    if code == libc::SI_USER || code == libc::SI_QUEUE {
        FORWARD.store(sig, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Keeps the signals that would end us from doing so while the helper runs
/// the command (a handler, not SIG_IGN, which the helper would inherit),
/// noting those to pass on to it.
pub fn shield_signals() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, sigaction};
    // No SA_RESTART: a signal interrupts the wait, so it is passed on at once.
    let action = SigAction::new(
        SigHandler::SigAction(on_signal),
        SaFlags::SA_SIGINFO,
        SigSet::empty(),
    );
    for s in super::attach::TERMINATING {
        // SAFETY: the handler only reads its siginfo and stores to an atomic.
        let _ = unsafe { sigaction(s, &action) };
    }
}

/// Waits for the helper, passing on the signals sent to us.
pub fn wait_forwarding(child: &std::process::Child) -> anyhow::Result<u8> {
    use nix::sys::wait::{WaitStatus, waitpid};
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    loop {
        let sig = FORWARD.swap(0, std::sync::atomic::Ordering::Relaxed);
        if let Ok(sig) = nix::sys::signal::Signal::try_from(sig) {
            let _ = nix::sys::signal::kill(pid, sig);
        }
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code as u8),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128u8.wrapping_add(s as u8)),
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(anyhow!("cannot wait for the exec helper: {e}")),
        }
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
    let child = cmd.spawn().context("cannot start the exec helper")?;
    Ok(wait_forwarding(&child)?)
}
