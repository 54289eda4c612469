//! Shell completions and the man page, generated from the flag definitions.

use clap::CommandFactory;

use super::Failure;
use super::args::{Cli, Shell};

pub fn completion(shell: Shell) -> Result<(), Failure> {
    let mut cmd = Cli::command();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "stack", &mut std::io::stdout());
    Ok(())
}

pub fn man() -> Result<(), Failure> {
    let cmd = Cli::command();
    clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
    Ok(())
}
