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
    /// Create and start the stack's containers (`-d`: leave a watcher behind and return).
    Up(UpArgs),
    /// List the project's containers with their state and published ports.
    Ps(PsArgs),
    /// The project's watcher (started by `up -d`).
    #[command(hide = true)]
    Watch(UpArgs),
    /// Run a command in a running container of a service.
    Exec(ExecArgs),
    /// Run a one-off command in a new container of a service.
    Run(RunArgs),
    /// Start the services' existing containers.
    Start(ServicesArgs),
    /// Stop the services' containers (the watcher leaves them stopped).
    Stop(StopArgs),
    /// Restart the services' containers.
    Restart(StopArgs),
    /// Send a signal to the services' containers (default: SIGKILL).
    Kill(KillArgs),
    /// Freeze every process of the services' containers.
    Pause(ServicesArgs),
    /// Thaw paused containers.
    Unpause(ServicesArgs),
    /// Remove the services' stopped containers.
    Rm(RmArgs),
    /// Show the processes running in the services' containers.
    Top(ServicesArgs),
    /// Show the containers' CPU, memory and process usage.
    Stats(StatsArgs),
    /// Print the host address a container port is published on.
    Port(PortArgs),
    /// List the images the project's containers use.
    Images(ImagesArgs),
    /// List every project on this host with its status.
    Ls(LsArgs),
    /// Print stack's version.
    Version(VersionArgs),
    /// Print a systemd unit that brings the project up at boot.
    Systemd(SystemdArgs),
    /// Print what the project's watcher saw and did (deaths, restarts, health, repairs) and follow new events.
    Events(EventsArgs),
    /// Remove an exited `run --rm -d` container (its shim runs this).
    #[command(hide = true)]
    AutoRemove { container: String },
    /// Low-level container runtime access (for tests and benchmarks).
    #[command(hide = true)]
    Runtime {
        #[command(subcommand)]
        command: Box<super::runtime::RuntimeCommand>,
    },
    /// Show what `up` would change, and why, without changing anything.
    Plan(PlanArgs),
    /// Stop and remove the project's containers and networks (`--dry-run`: only show it).
    Down(DownArgs),
    /// Show the output of the project's containers, merged in time order.
    Logs(LogsArgs),
    /// Return the project to its previous applied revision (or revision N).
    Rollback(RollbackArgs),
    /// Pull the images of the stack's services (all, or those named).
    Pull(PullArgs),
    /// Manage the image store: list, inspect, pull, remove, prune, load, import.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
}

/// Output format of `plan` and `down --dry-run`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// Only these services and, unless --no-deps, what they depend on.
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,

    /// Exit 0 when nothing would change, 2 when something would, 1 on an error.
    #[arg(long)]
    pub detailed_exitcode: bool,

    /// Run N containers of SERVICE (repeatable), overriding `scale` and `deploy.replicas`.
    #[arg(long, value_name = "SERVICE=N", value_parser = parse_scale)]
    pub scale: Vec<(String, u32)>,

    /// Recreate containers even if their configuration and image are unchanged.
    #[arg(long, conflicts_with = "no_recreate")]
    pub force_recreate: bool,

    /// Never recreate existing containers, even if they differ from the file.
    #[arg(long)]
    pub no_recreate: bool,

    /// Do not bring the named services' dependencies up, nor wait for them.
    #[arg(long)]
    pub no_deps: bool,

    /// Recreate the dependencies of the named services too.
    #[arg(long, conflicts_with = "no_recreate")]
    pub always_recreate_deps: bool,

    /// Remove containers of services that are no longer in the file.
    #[arg(long)]
    pub remove_orphans: bool,
}

#[derive(Debug, Clone, Default, Args)]
pub struct UpArgs {
    /// Only these services and, unless --no-deps, what they depend on.
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,

    /// Return once the stack is up, leaving the project's watcher running.
    #[arg(short, long)]
    pub detach: bool,

    /// Run N containers of SERVICE (repeatable), overriding `scale` and `deploy.replicas`.
    #[arg(long, value_name = "SERVICE=N", value_parser = parse_scale)]
    pub scale: Vec<(String, u32)>,

    /// Recreate containers even if their configuration and image are unchanged.
    #[arg(long, conflicts_with = "no_recreate")]
    pub force_recreate: bool,

    /// Never recreate existing containers, even if they differ from the file.
    #[arg(long)]
    pub no_recreate: bool,

    /// Do not bring the named services' dependencies up, nor wait for them.
    #[arg(long)]
    pub no_deps: bool,

    /// Remove containers of services that are no longer in the file.
    #[arg(long)]
    pub remove_orphans: bool,

    /// Speak plain HTTP to this registry (`host:port`; repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registries: Vec<String>,

    /// Recreate the dependencies of the named services too.
    #[arg(long, conflicts_with = "no_recreate")]
    pub always_recreate_deps: bool,

    /// Accepted for compose compatibility: a recreated container always
    /// gets new anonymous volumes in stack. (No `-V`: that is `--version`.)
    #[arg(long)]
    pub renew_anon_volumes: bool,

    /// Create the containers (and networks, volumes) without starting them.
    #[arg(long, conflicts_with_all = ["wait", "abort_on_container_exit", "exit_code_from"])]
    pub no_start: bool,

    /// Pull images: always, missing, never, or as each service's pull_policy says (policy).
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = PullFlag::Policy)]
    pub pull: PullFlag,

    /// Do not print pull progress.
    #[arg(long)]
    pub quiet_pull: bool,

    /// Seconds to wait for a container to stop before killing it (overrides stop_grace_period).
    #[arg(short = 't', long = "timeout", value_name = "SECONDS")]
    pub timeout: Option<u64>,

    /// Return once every service is running and healthy (one-shots: exited 0); implies -d.
    #[arg(long, conflicts_with = "abort_on_container_exit")]
    pub wait: bool,

    /// With --wait: give up after this many seconds (exit 1).
    #[arg(long, value_name = "SECONDS", requires = "wait")]
    pub wait_timeout: Option<u64>,

    /// Stop every container when any container exits (exit code: that container's).
    #[arg(long, conflicts_with = "detach")]
    pub abort_on_container_exit: bool,

    /// Exit with this service's exit code (implies --abort-on-container-exit).
    #[arg(long, value_name = "SERVICE", conflicts_with = "detach")]
    pub exit_code_from: Option<String>,

    /// Stream only these services' logs in the foreground (repeatable).
    #[arg(long, value_name = "SERVICE")]
    pub attach: Vec<String>,

    /// Do not stream these services' logs in the foreground (repeatable).
    #[arg(long, value_name = "SERVICE")]
    pub no_attach: Vec<String>,

    #[command(flatten)]
    pub log: LogStyle,

    /// Have the watcher apply the stack file again whenever it changes.
    #[arg(long)]
    pub watch_file: bool,
}

/// `up --pull`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum PullFlag {
    Always,
    Missing,
    Never,
    /// Each service's `pull_policy`.
    #[default]
    Policy,
}

/// How log lines are printed (`up` in the foreground, `logs`).
#[derive(Debug, Clone, Default, Args)]
pub struct LogStyle {
    /// Print without colours.
    #[arg(long)]
    pub no_color: bool,

    /// Print the lines without the `service-1  | ` prefix.
    #[arg(long)]
    pub no_log_prefix: bool,

    /// Print each line's time (RFC 3339).
    #[arg(long)]
    pub timestamps: bool,
}

#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// Only these services.
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,

    /// Keep printing new lines (and new containers' lines) until Ctrl-C.
    /// (`-f` after `logs` means this too, as in compose.)
    #[arg(long)]
    pub follow: bool,

    /// Only the last N lines of each container (`all`: every line).
    #[arg(short = 'n', long, value_name = "N|all", default_value = "all")]
    pub tail: String,

    /// Lines since this time: RFC 3339 (`2026-01-02T15:04:05Z`), a Unix
    /// time, or a duration back from now (`10m`, `1h30m`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// Lines before this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,

    /// Only the container with this replica number.
    #[arg(long, value_name = "N")]
    pub index: Option<u32>,

    /// Print each line's time (RFC 3339).
    #[arg(short = 't', long)]
    pub timestamps: bool,

    /// Print without colours.
    #[arg(long)]
    pub no_color: bool,

    /// Print the lines without the `service-1  | ` prefix.
    #[arg(long)]
    pub no_log_prefix: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    /// The revision to return to (default: the one before the current).
    #[arg(long, value_name = "N")]
    pub to: Option<u64>,

    /// Only show what would change.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    /// Only events of these services.
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,

    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,

    /// Only events since this time: RFC 3339 (`2026-11-25T21:00:00Z`),
    /// Unix seconds, or a duration ago (`10m`, `2h`, `30s`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// Print the events up to this time (same forms as --since) and exit
    /// instead of following new ones.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,

    /// Print the events kept and exit instead of following new ones.
    #[arg(long)]
    pub no_follow: bool,
}

#[derive(Debug, Clone, Args)]
pub struct PsArgs {
    /// Only these services.
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,

    /// Also stopped containers and one-off containers of `stack run`.
    #[arg(short, long)]
    pub all: bool,

    /// Only the container names.
    #[arg(short, long)]
    pub quiet: bool,

    /// Only the service names.
    #[arg(long = "services")]
    pub list_services: bool,

    /// Only containers in this state (repeatable): created, running,
    /// paused, restarting, removing, exited, dead.
    #[arg(long, value_enum, value_name = "STATUS")]
    pub status: Vec<PsStatus>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

/// A container state for `ps --status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PsStatus {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

/// `-i`, compose's default: stdin is kept open (`--interactive=false` to close it).
#[derive(Debug, Clone, Args)]
pub struct StdinArgs {
    /// Keep standard input attached (default; `--interactive=false` detaches it).
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_name = "BOOL")]
    pub interactive: bool,

    /// Allocate a pseudo-terminal (default when standard input is a terminal).
    #[arg(short, long, conflicts_with = "no_tty")]
    pub tty: bool,

    /// Do not allocate a pseudo-terminal.
    #[arg(short = 'T', long)]
    pub no_tty: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ExecArgs {
    /// Run the command in the background.
    #[arg(short, long)]
    pub detach: bool,

    #[command(flatten)]
    pub stdin: StdinArgs,

    /// Run as this user (`name`, `uid`, `uid:gid`).
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,

    /// Set an environment variable (repeatable).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,

    /// Working directory inside the container.
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,

    /// Which replica of the service (default: 1).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub index: u32,

    /// Accepted for compatibility: stack's exec never escalates privileges.
    #[arg(long, hide = true)]
    pub privileged: bool,

    /// The service.
    #[arg(value_name = "SERVICE")]
    pub service: String,

    /// The command and its arguments.
    #[arg(
        value_name = "COMMAND",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,

    /// Run in the background and print the container's name.
    #[arg(short, long)]
    pub detach: bool,

    #[command(flatten)]
    pub stdin: StdinArgs,

    /// Set an environment variable (repeatable).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,

    /// Publish a port (repeatable), as in `ports:` (`8080:80`, `127.0.0.1::80`).
    /// `-p` after `run` means this, as in compose (before it: --project-name).
    #[arg(long = "publish", value_name = "PORT")]
    pub publish: Vec<String>,

    /// Publish the service's own ports too.
    #[arg(short = 'P', long)]
    pub service_ports: bool,

    /// Do not start the service's dependencies.
    #[arg(long)]
    pub no_deps: bool,

    /// Override the image's entrypoint (a command line, split on spaces).
    #[arg(long, value_name = "CMD")]
    pub entrypoint: Option<String>,

    /// Name of the container (default: `<project>-<service>-run-<id>`).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Run as this user (`name`, `uid`, `uid:gid`).
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,

    /// Working directory inside the container.
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,

    /// Mount a volume or bind (repeatable), as in `volumes:`.
    #[arg(short, long = "volume", value_name = "VOLUME")]
    pub volumes: Vec<String>,

    /// Add a label (repeatable).
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,

    /// The service.
    #[arg(value_name = "SERVICE")]
    pub service: String,

    /// The command and its arguments (default: the service's).
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

/// Commands that act on services' containers.
#[derive(Debug, Clone, Args)]
pub struct ServicesArgs {
    /// Only these services (default: all).
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct StopArgs {
    /// Seconds to wait for a container to stop before killing it
    /// (default: its stop_grace_period, else 10).
    #[arg(short, long, value_name = "SECONDS")]
    pub timeout: Option<u64>,

    /// Only these services (default: all).
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct KillArgs {
    /// The signal (`SIGTERM`, `TERM`, `15`).
    #[arg(short, long, default_value = "SIGKILL", value_name = "SIGNAL")]
    pub signal: String,

    /// Also remove containers of services that are no longer in the file.
    #[arg(long)]
    pub remove_orphans: bool,

    /// Only these services (default: all).
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RmArgs {
    /// Do not ask (stack never asks; accepted for compatibility). `-f`
    /// after `rm` means this, as in compose (before it: --file).
    #[arg(long)]
    pub force: bool,

    /// Stop the containers first, if they run.
    #[arg(short, long)]
    pub stop: bool,

    /// Also remove the containers' anonymous volumes (always done).
    #[arg(short, long)]
    pub volumes: bool,

    /// Only these services (default: all).
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    /// Print one sample and exit.
    #[arg(long)]
    pub no_stream: bool,

    /// Also containers that are not running.
    #[arg(short, long)]
    pub all: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,

    /// Only these services (default: all).
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
}

/// `tcp` or `udp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Args)]
pub struct PortArgs {
    /// The port's protocol.
    #[arg(long, value_enum, default_value_t = Protocol::Tcp)]
    pub protocol: Protocol,

    /// Which replica of the service (default: 1).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub index: u32,

    /// The service.
    #[arg(value_name = "SERVICE")]
    pub service: String,

    /// The port inside the container.
    #[arg(value_name = "PRIVATE_PORT")]
    pub port: u16,
}

#[derive(Debug, Clone, Args)]
pub struct ImagesArgs {
    /// Only the image IDs.
    #[arg(short, long)]
    pub quiet: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,

    /// Only these services (default: all).
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct LsArgs {
    /// Also projects with no running container.
    #[arg(short, long)]
    pub all: bool,

    /// Only the project names.
    #[arg(short, long)]
    pub quiet: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

#[derive(Debug, Clone, Args)]
pub struct VersionArgs {
    /// Only the version number.
    #[arg(long)]
    pub short: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = VersionFormat::Pretty)]
    pub format: VersionFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VersionFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct SystemdArgs {
    /// A unit for the user's service manager (`systemctl --user`).
    #[arg(long)]
    pub user: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DownArgs {
    /// Only print what would be removed.
    #[arg(long)]
    pub dry_run: bool,

    /// Also remove the project's named volumes (their data is lost).
    #[arg(short = 'v', long)]
    pub volumes: bool,

    /// Also remove containers of services that are no longer in the file.
    #[arg(long)]
    pub remove_orphans: bool,

    /// Output format (with --dry-run).
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,

    /// Exit 0 when nothing would change, 2 when something would, 1 on an error.
    #[arg(long)]
    pub detailed_exitcode: bool,

    /// Seconds to wait for each container to stop before killing it (overrides stop_grace_period).
    #[arg(short = 't', long = "timeout", value_name = "SECONDS")]
    pub timeout: Option<u64>,

    /// Also remove images the services use: `local` those without an `image:` name, `all` every one.
    #[arg(long, value_enum, value_name = "TYPE")]
    pub rmi: Option<Rmi>,
}

/// `down --rmi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Rmi {
    Local,
    All,
}

/// `web=3` into (`web`, 3).
fn parse_scale(text: &str) -> Result<(String, u32), String> {
    let (service, n) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not SERVICE=N, e.g. web=3"))?;
    let n = n
        .parse()
        .map_err(|_| format!("`{n}` in `{text}` is not a number of replicas"))?;
    if service.is_empty() {
        return Err(format!(
            "`{text}` names no service; write SERVICE=N, e.g. web=3"
        ));
    }
    Ok((service.to_string(), n))
}

/// Registry connection flags shared by `pull` and `image pull`.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Speak plain HTTP to this registry (`host:port`; repeatable).
    /// Registries on localhost and 127.0.0.0/8 always use HTTP.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registries: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct PullArgs {
    /// Only these services.
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,

    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,

    /// Go on with the other services when a pull fails (exit 0).
    #[arg(long)]
    pub ignore_pull_failures: bool,

    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List the images in the store.
    #[command(alias = "list")]
    Ls {
        /// Only the image IDs.
        #[arg(short, long)]
        quiet: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// Print images' details as JSON: configuration, layers, digests.
    Inspect {
        /// Reference (`busybox`, `app:1`, `name@sha256:...`) or ID (prefix).
        #[arg(value_name = "IMAGE", required = true)]
        images: Vec<String>,
    },
    /// Pull one image by reference.
    Pull {
        /// Reference, e.g. `busybox`, `ghcr.io/org/app:1`, `name@sha256:...`.
        #[arg(value_name = "IMAGE")]
        reference: String,
        /// Platform to pull from a multi-platform image (default: the host's).
        #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
        platform: Option<String>,
        /// Print nothing but errors and the image ID.
        #[arg(short, long)]
        quiet: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Remove images by tag or ID (the last tag removes the image).
    #[command(alias = "remove")]
    Rm {
        #[arg(value_name = "IMAGE", required = true)]
        images: Vec<String>,
        /// Remove even if a container uses it, or every tag of an ID.
        /// (No `-f`: that is the global `--file`.)
        #[arg(long)]
        force: bool,
    },
    /// Remove every image no container uses, with its blobs and layers.
    Prune {
        /// Accepted for docker compatibility; prune never asks.
        #[arg(long)]
        force: bool,
    },
    /// Load images from a docker-save archive or an OCI image layout.
    Load {
        /// The archive (a tar, possibly compressed) or layout directory.
        #[arg(short, long, value_name = "FILE")]
        input: PathBuf,
        /// Print only the loaded image IDs.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Make an image from a root file system (a directory or a tar).
    Import {
        /// Directory or tar file.
        #[arg(value_name = "ROOTFS")]
        source: PathBuf,
        /// Name for the image, e.g. `myapp:1`.
        #[arg(value_name = "NAME[:TAG]")]
        reference: String,
        /// Dockerfile instruction for the configuration (repeatable):
        /// CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, STOPSIGNAL, VOLUME.
        #[arg(short, long = "change", value_name = "INSTRUCTION")]
        changes: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    #[default]
    Table,
    Json,
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
