//! The command line: parse flags, call the modules, print, return an exit code.
//!
//! Thin by design (DESIGN.md): each command wires options to the pipeline
//! and renders the result. Exit codes: 0 success; 1 the operation failed;
//! 2 the command line is wrong; 3 the stack file is invalid.

pub mod args;
mod config;
mod down;
mod events;
mod generate;
mod image;
mod plan;
mod pull;
pub mod render;
pub mod runtime;
mod up;
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
    let cli = match Cli::try_parse() {
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
    let result = match &cli.command {
        args::Command::Config(a) => config::run(&cli.global, a),
        args::Command::Volume(v) => volume::run(&cli.global, v),
        args::Command::Completion { shell } => generate::completion(*shell),
        args::Command::Man => generate::man(),
        args::Command::Plan(a) => return plan::main(&cli.global, a),
        args::Command::Down(a) => return down::main(&cli.global, a),
        args::Command::Up(a) => return up::up(&cli.global, a),
        args::Command::Watch(a) => return up::watcher(&cli.global, a),
        args::Command::Events(a) => events::run(&cli.global, a),
        args::Command::Ps(a) => return up::ps(&cli.global, a),
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
