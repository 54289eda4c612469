//! Every flag of every command, defined once.
//!
//! `--help`, the shell completions and the man page are all generated from
//! these definitions, so they cannot disagree. The global flags are docker
//! compose's, so muscle memory works; their environment variables
//! (`COMPOSE_FILE`, `COMPOSE_PROJECT_NAME`, `COMPOSE_PROFILES`,
//! `COMPOSE_ENV_FILES`) are read by the loader, because compose also reads
//! them from the project's `.env` file, which clap cannot see.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "stack",
    version,
    about = "Run multi-container applications from Compose files, with stack's own container runtime",
    long_about = None,
    propagate_version = true,
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Stack file to read (repeat to merge several; `-` reads standard input).
    /// Default: $COMPOSE_FILE, else the first of compose.yaml, compose.yml,
    /// docker-compose.yaml, docker-compose.yml, stack.yml found in the current
    /// directory or a parent, with its .override file.
    #[arg(short = 'f', long = "file", global = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Project name. Default: $COMPOSE_PROJECT_NAME, the file's top-level
    /// `name`, else the project directory's name.
    #[arg(short = 'p', long = "project-name", global = true, value_name = "NAME")]
    pub project_name: Option<String>,

    /// Directory that relative paths resolve against (default: the first file's directory).
    #[arg(long, global = true, value_name = "DIR")]
    pub project_directory: Option<PathBuf>,

    /// Environment file to read instead of the project's .env (repeatable;
    /// default: $COMPOSE_ENV_FILES, comma-separated).
    #[arg(long = "env-file", global = true, value_name = "FILE")]
    pub env_files: Vec<PathBuf>,

    /// Profile to enable (repeatable; `*` enables all; default: $COMPOSE_PROFILES).
    #[arg(long = "profile", global = true, value_name = "PROFILE")]
    pub profiles: Vec<String>,

    /// Directory where stack keeps its state.
    #[arg(
        long,
        global = true,
        env = "STACK_ROOT",
        default_value = "/var/lib/stack",
        value_name = "DIR"
    )]
    pub root: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the stack and print it normalized, like `docker compose config`.
    Config(ConfigArgs),
    /// Manage volumes: list, inspect, remove, prune.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Print a shell completion script.
    Completion {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page (roff) to standard output.
    Man,
    /// Low-level container runtime access (for tests and benchmarks).
    #[command(hide = true)]
    Runtime {
        #[command(subcommand)]
        command: Box<super::runtime::RuntimeCommand>,
    },
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// List volumes.
    Ls {
        /// Only the names.
        #[arg(short, long)]
        quiet: bool,
        #[arg(long, value_enum, default_value_t = Format::Yaml, hide_possible_values = true)]
        format: Format,
    },
    /// Show volumes in detail (JSON).
    Inspect {
        #[arg(required = true, value_name = "VOLUME")]
        names: Vec<String>,
    },
    /// Remove volumes that no container uses (their data is lost).
    Rm {
        #[arg(required = true, value_name = "VOLUME")]
        names: Vec<String>,
    },
    /// Remove unused anonymous volumes (with --all, every unused volume).
    Prune {
        /// Also remove unused named volumes.
        #[arg(short, long)]
        all: bool,
        /// Do not ask for confirmation (`-f` is the global --file flag).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Yaml,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Only these services (their profiles are enabled).
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    pub format: Format,

    /// Print the service names, one per line.
    #[arg(long = "services")]
    pub list_services: bool,

    /// Print the volume names, one per line.
    #[arg(long)]
    pub volumes: bool,

    /// Print the network names, one per line.
    #[arg(long)]
    pub networks: bool,

    /// Print the profile names, one per line.
    #[arg(long = "profiles", id = "list_profiles")]
    pub list_profiles: bool,

    /// Print the image of each service, one per line.
    #[arg(long)]
    pub images: bool,

    /// Print the configuration hash of a service (`*` for every service).
    #[arg(long, value_name = "SERVICE")]
    pub hash: Option<String>,

    /// Print each variable the files use, its value and where it came from.
    #[arg(long)]
    pub variables: bool,

    /// Only validate; print nothing.
    #[arg(short, long)]
    pub quiet: bool,

    /// Write the output to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn flag_definitions_are_consistent() {
        super::Cli::command().debug_assert();
    }
}
