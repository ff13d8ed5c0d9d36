//! The command-line grammar.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "kennel",
    version,
    about = "Isolated virtual environments (VEs) on one Linux host",
    long_about = "Kennel carves one Linux host into many isolated virtual environments (VEs): each boots its own init, \
                  has its own root user, process tree, files, hostname and network stack, on the host's one kernel.\n\n\
                  Quick start:\n  kennel template create busybox\n  kennel create 101 --template busybox\n  kennel start 101\n  kennel enter 101"
)]
pub struct Cli {
    /// Keep all state below DIR (DIR/lib and DIR/run) instead of
    /// /var/lib/kennel and /run/kennel.
    #[arg(long, global = true, env = "KENNEL_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Print only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage OS templates (the read-only trees VEs are made from).
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Create a VE from a template (copies nothing; takes milliseconds).
    Create(CreateArgs),
    /// Start a VE: boot its init in its own namespaces.
    Start(IdArg),
    /// Shut a VE down the way its init expects; kill it after the timeout.
    Stop(StopArgs),
    /// Stop (if running) and start a VE.
    Restart(StopArgs),
    /// Kill a VE at once (all its processes).
    Kill(IdArg),
    /// Show whether a VE runs, with its init, uptime, processes and memory.
    Status(StatusArgs),
    /// Run a command inside a running VE; its exit status becomes kennel's.
    Exec(ExecArgs),
    /// Open an interactive root shell inside a running VE.
    Enter(IdArg),
    /// Attach to a VE's console (its getty); detach with Ctrl-].
    Console(ConsoleArgs),
    /// List VEs (running ones unless --all).
    List(ListArgs),
    /// Show a VE's configuration.
    Config(ConfigArgs),
    /// Delete a VE and all its files.
    Destroy(DestroyArgs),
    /// Check that this host can run VEs.
    Check,
    /// Teardown after a VE's init ended (run by the VE's monitor).
    #[command(name = "__ve-exited", hide = true)]
    VeExited(VeExitedArgs),
}

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Build a template: `busybox` (from the host's busybox-static, offline, seconds)
    /// or `debian-12` (debootstrap bookworm with systemd).
    Create {
        /// Template name; also the source unless --from is given.
        name: String,
        /// What to build: busybox or debian-12.
        #[arg(long)]
        from: Option<String>,
        /// Debian mirror (default: the host's apt source).
        #[arg(long, value_name = "URL")]
        mirror: Option<String>,
    },
    /// Import a root filesystem tarball (.tar, .tar.gz, .tar.zst) as a template.
    Import { name: String, tarball: PathBuf },
    /// List templates.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a template no VE uses.
    Remove { name: String },
}

#[derive(Debug, Args)]
pub struct IdArg {
    /// VE id: 1-32 characters a-z, 0-9 and '-' (e.g. 101).
    pub id: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    pub id: String,
    /// Template to create the VE from.
    #[arg(long, short = 't')]
    pub template: String,
    /// Hostname (default: the id).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Memory limit, e.g. 512M or 2G.
    #[arg(long)]
    pub memory: Option<String>,
    /// Swap on top of --memory (default 0).
    #[arg(long)]
    pub swap: Option<String>,
    /// CPU limit in CPUs, e.g. 1 or 0.5.
    #[arg(long)]
    pub cpus: Option<String>,
    /// Maximum number of processes and threads.
    #[arg(long)]
    pub numproc: Option<String>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    pub id: String,
    /// Seconds to wait for a clean shutdown before killing.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    pub id: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    pub id: String,
    /// Give the command a terminal (default: when stdin and stdout are terminals).
    #[arg(short = 't', long, conflicts_with = "no_tty")]
    pub tty: bool,
    /// Never give the command a terminal.
    #[arg(short = 'T', long)]
    pub no_tty: bool,
    /// Set an environment variable (KEY=value); repeatable.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the VE.
    #[arg(short = 'w', long, default_value = "/")]
    pub workdir: String,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    pub id: String,
    /// Detach key, as ^X (default ^], i.e. Ctrl-]).
    #[arg(long, default_value = "^]")]
    pub escape: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Include stopped VEs.
    #[arg(short, long)]
    pub all: bool,
    /// Columns, comma-separated (see --help for the list).
    #[arg(
        short,
        long,
        value_name = "FIELDS",
        long_help = "Columns, comma-separated. Available: id, state, hostname, template, procs, memory, memlimit, cpus, numproc, uptime, init, uid_base, layer, uuid, created"
    )]
    pub output: Option<String>,
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// No header line.
    #[arg(short = 'H', long)]
    pub no_header: bool,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    pub id: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    pub id: String,
    /// Kill the VE first if it runs.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct VeExitedArgs {
    pub id: String,
    #[arg(long)]
    pub how: String,
}
