//! The command line: parse flags, call the modules, print, return an exit code.
//!
//! Thin by design (DESIGN.md): each command wires options to the pipeline
//! and renders the result. Exit codes: 0 success; 1 the operation failed;
//! 2 the command line is wrong; 3 the stack file is invalid.

pub mod args;
mod attach;
mod config;
mod containers;
mod down;
mod events;
mod exec;
mod foreground;
mod generate;
mod image;
mod images;
mod lifecycle;
mod logs;
mod ls;
mod plan;
mod port;
mod progress;
mod ps;
mod pull;
pub mod render;
mod rollback;
mod run;
pub mod runtime;
mod stats;
mod systemd;
mod top;
mod up;
mod version;
mod volume;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

pub use args::Cli;

/// Exit codes, documented in the README.
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_INVALID_STACK: u8 = 3;

/// Runs stack with the process's arguments and environment.
pub fn main() -> ExitCode {
    let mut cli = match Cli::try_parse_from(compose_shorts(std::env::args_os().collect())) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Under --detailed-exitcode, 2 means "changes"; a wrong command line is an error (1).
            let detailed = std::env::args().any(|a| a == "--detailed-exitcode");
            return if !e.use_stderr() {
                ExitCode::SUCCESS
            } else if detailed {
                ExitCode::from(EXIT_FAILURE)
            } else {
                ExitCode::from(EXIT_USAGE)
            };
        }
    };
    // The root is handed to shims and the watcher, which run from other
    // directories: it must not be relative.
    match std::path::absolute(&cli.global.root) {
        Ok(root) => cli.global.root = root,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "error: the state root {} cannot be made absolute: {e}",
                cli.global.root.display()
            );
            return ExitCode::from(EXIT_USAGE);
        }
    }
    let result = match &cli.command {
        args::Command::Config(a) => config::run(&cli.global, a),
        args::Command::Volume(v) => volume::run(&cli.global, v),
        args::Command::Completion { shell } => generate::completion(*shell),
        args::Command::Man => generate::man(),
        args::Command::Plan(a) => return plan::main(&cli.global, a),
        args::Command::Down(a) => return down::main(&cli.global, a),
        args::Command::Up(a) => return up::up(&cli.global, a),
        args::Command::Watch(a) => return up::watcher(&cli.global, a),
        args::Command::Ps(a) => ps::run(&cli.global, a),
        args::Command::Exec(a) => return exec::main(&cli.global, a),
        args::Command::Run(a) => return run::main(&cli.global, a),
        args::Command::AutoRemove { container } => run::auto_remove(&cli.global, container),
        args::Command::Start(a) => lifecycle::start(&cli.global, a),
        args::Command::Stop(a) => lifecycle::stop(&cli.global, a),
        args::Command::Restart(a) => lifecycle::restart(&cli.global, a),
        args::Command::Kill(a) => lifecycle::kill(&cli.global, a),
        args::Command::Pause(a) => lifecycle::pause(&cli.global, a, true),
        args::Command::Unpause(a) => lifecycle::pause(&cli.global, a, false),
        args::Command::Rm(a) => lifecycle::rm(&cli.global, a),
        args::Command::Top(a) => top::run(&cli.global, a),
        args::Command::Stats(a) => stats::run(&cli.global, a),
        args::Command::Port(a) => port::run(&cli.global, a),
        args::Command::Images(a) => images::run(&cli.global, a),
        args::Command::Ls(a) => ls::run(&cli.global, a),
        args::Command::Version(a) => version::run(a),
        args::Command::Systemd(a) => systemd::run(&cli.global, a),
        args::Command::Logs(a) => return logs::main(&cli.global, a),
        args::Command::Rollback(a) => return rollback::main(&cli.global, a),
        args::Command::Events(a) => events::run(&cli.global, a),
        args::Command::Pull(a) => pull::run(&cli.global, a),
        args::Command::Image { command } => image::run(&cli.global, command),
        args::Command::Runtime { command } => {
            return match runtime::run(&cli.global.root, command) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    let _ = writeln!(std::io::stderr(), "error: {e:#}");
                    ExitCode::from(EXIT_FAILURE)
                }
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => ExitCode::from(report(failure)),
    }
}

/// Gives `-p` after `run`, `-f` after `rm` and `-f` after `logs` compose's
/// meanings (`--publish`, `--force`, `--follow`): in compose, a
/// subcommand's own short flag wins over the global one of the same
/// letter, which clap cannot express.
fn compose_shorts(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    // Global flags that take a value, to find the subcommand.
    const GLOBAL_VALUES: [&str; 8] = [
        "-f",
        "--file",
        "-p",
        "--project-name",
        "--project-directory",
        "--env-file",
        "--profile",
        "--root",
    ];
    // Flags of `run` that take a value, to find its SERVICE.
    const RUN_VALUES: [&str; 18] = [
        "-e",
        "--env",
        "-p",
        "--publish",
        "--entrypoint",
        "--name",
        "-u",
        "--user",
        "-w",
        "--workdir",
        "-v",
        "--volume",
        "-l",
        "--label",
        "-f",
        "--file",
        "--project-directory",
        "--root",
    ];
    const LOGS_VALUES: [&str; 8] = [
        "-n",
        "--tail",
        "--since",
        "--until",
        "--index",
        "--file",
        "--project-directory",
        "--root",
    ];
    let mut i = 1;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        if GLOBAL_VALUES.contains(&a.as_ref()) {
            i += 2;
        } else if a.starts_with('-') {
            i += 1;
        } else {
            break;
        }
    }
    // The subcommand's short flag, its long name, and whether it takes a value.
    let (sub, short, own, takes_value, value_flags): (&str, &str, &str, bool, &[&str]) = match args
        .get(i)
        .map(|a| a.to_string_lossy().into_owned())
        .as_deref()
    {
        Some("run") => ("run", "-p", "--publish", true, &RUN_VALUES),
        Some("rm") => ("rm", "-f", "--force", false, &[]),
        Some("logs") => ("logs", "-f", "--follow", false, &LOGS_VALUES),
        _ => return args,
    };
    i += 1;
    while i < args.len() {
        let a = args[i].to_string_lossy().into_owned();
        if a == "--" || !a.starts_with('-') {
            if sub == "run" {
                // SERVICE: what follows is the container's command.
                break;
            }
            i += 1;
            continue;
        }
        if a == short {
            args[i] = own.into();
            i += if takes_value { 2 } else { 1 };
            continue;
        }
        if !takes_value && a.len() > 2 && !a.starts_with("--") && a.contains('f') {
            // `-sf`, `-ft`: the same letters, `f` as the long flag.
            let rest: String = a[1..].chars().filter(|c| *c != 'f').collect();
            args[i] = format!("-{rest}").into();
            args.insert(i + 1, own.into());
            i += 2;
            continue;
        }
        i += if value_flags.contains(&a.as_str()) {
            2
        } else {
            1
        };
    }
    args
}

/// Prints a failure to standard error and returns its exit code.
pub(crate) fn report(failure: Failure) -> u8 {
    match failure {
        Failure::Invalid(diags) => {
            let _ = writeln!(std::io::stderr(), "{diags}");
            EXIT_INVALID_STACK
        }
        Failure::Other(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            EXIT_FAILURE
        }
    }
}

/// Why a command failed: the input was wrong, or the operation was.
pub enum Failure {
    Invalid(crate::spec::Diagnostics),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::Other(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::Other(e.into())
    }
}

impl From<crate::runtime::image::ImageError> for Failure {
    fn from(e: crate::runtime::image::ImageError) -> Failure {
        Failure::Other(e.into())
    }
}

impl From<crate::spec::Diagnostics> for Failure {
    fn from(d: crate::spec::Diagnostics) -> Failure {
        Failure::Invalid(d)
    }
}

/// Loader options from the global flags and the process.
pub fn load_options(
    global: &args::Global,
    services: &[String],
) -> anyhow::Result<crate::spec::Options> {
    let stdin = if global.files.iter().any(|f| f.as_os_str() == "-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        Some(text)
    } else {
        None
    };
    Ok(crate::spec::Options {
        files: global.files.clone(),
        project_name: global.project_name.clone(),
        project_directory: global.project_directory.clone(),
        env_files: global.env_files.clone(),
        profiles: global.profiles.clone(),
        services: services.to_vec(),
        working_dir: std::env::current_dir()?,
        environment: std::env::vars().collect(),
        stdin,
    })
}

#[cfg(test)]
mod tests {
    use super::compose_shorts;

    fn words(args: &[&str]) -> Vec<String> {
        let v = args.iter().map(std::ffi::OsString::from).collect();
        compose_shorts(v)
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn run_p_publishes_rm_f_forces_and_logs_f_follows_as_in_compose() {
        assert_eq!(
            words(&[
                "stack", "-p", "x", "run", "-e", "A=1", "-p", "80:80", "web", "sh", "-p"
            ]),
            [
                "stack",
                "-p",
                "x",
                "run",
                "-e",
                "A=1",
                "--publish",
                "80:80",
                "web",
                "sh",
                "-p"
            ]
        );
        assert_eq!(
            words(&["stack", "-f", "a.yml", "rm", "-sf", "web"]),
            ["stack", "-f", "a.yml", "rm", "-s", "--force", "web"]
        );
        assert_eq!(words(&["stack", "rm", "-f"]), ["stack", "rm", "--force"]);
        assert_eq!(
            words(&["stack", "-f", "logs", "logs", "-f", "--tail", "5", "web"]),
            [
                "stack", "-f", "logs", "logs", "--follow", "--tail", "5", "web"
            ]
        );
        assert_eq!(
            words(&["stack", "logs", "-ft", "web"]),
            ["stack", "logs", "-t", "--follow", "web"]
        );
        assert_eq!(
            words(&["stack", "-p", "x", "up", "-d"]),
            ["stack", "-p", "x", "up", "-d"]
        );
    }
}
