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

    /// Run the command on the kenneld API service at URL (list, status,
    /// config, stat, start, stop, restart, kill, destroy, template list;
    /// the token from KENNEL_TOKEN, the service's certificate from
    /// KENNEL_CA or --ca).
    #[arg(long, global = true, value_name = "URL")]
    pub remote: Option<String>,

    /// Act only on the VE with this uuid (the API service, for a tenant:
    /// a VE made since under the same id is reported missing).
    #[arg(long, global = true, hide = true, value_name = "UUID")]
    pub expect_uuid: Option<String>,

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
    /// Change a VE's network, hostname, resources, features, boot settings
    /// or a user's password: saved, and applied at once to a running VE.
    Set(SetArgs),
    /// Start VEs: boot each one's init in its own namespaces (several at
    /// once, bounded by the CPUs).
    Start(StartArgs),
    /// Shut VEs down the way their init expects; kill each after the
    /// timeout.
    Stop(StopArgs),
    /// Stop (if running) and start a VE.
    Restart(RestartArgs),
    /// Kill VEs at once (all their processes).
    Kill(KillArgs),
    /// Show whether a VE runs, with its init, uptime, processes and memory.
    Status(StatusArgs),
    /// Show a running VE's resource counters (held, peak, limit, fails), or
    /// without an id every VE that hit a limit since its start.
    Stat(StatArgs),
    /// Run a command inside a running VE; its exit status becomes kennel's.
    Exec(ExecArgs),
    /// Open an interactive root shell inside a running VE; Ctrl-] hangs up.
    Enter(EnterArgs),
    /// Attach to a VE's console (its getty); detach with Ctrl-].
    Console(ConsoleArgs),
    /// List VEs (running ones unless --all).
    List(ListArgs),
    /// Show a VE's configuration.
    Config(ConfigArgs),
    /// Delete a VE and all its files.
    Destroy(DestroyArgs),
    /// Check that this host can run VEs, and size its shared kernel
    /// pools (PIDs, ptys, ...) for the VEs defined or a planned number.
    Check(CheckArgs),
    /// Start every VE marked onboot, highest boot order first, each order's
    /// VEs at once (run at the host's boot by kennel-onboot.service).
    Boot(crate::boot::BootArgs),
    /// Stop every running VE cleanly, lowest boot order first (VEs without
    /// one first of all), each order's VEs at once; kill each after the
    /// timeout (run at the host's shutdown by kennel-onboot.service).
    Shutdown(crate::boot::ShutdownArgs),
    /// Bind a (re)started lxcfs into every running VE, whose /proc views
    /// of its own limits died with the old lxcfs (run by the lxcfs
    /// service after it starts).
    #[command(name = "lxcfs-sync")]
    LxcfsSync(LxcfsSyncArgs),
    /// The storage pool that holds VEs' disks.
    #[command(subcommand)]
    Storage(crate::storage_args::StorageCommand),
    /// Snapshots of a VE's disk.
    #[command(subcommand)]
    Snapshot(crate::storage_args::SnapshotCommand),
    /// Back up a VE into one file or stream (full, or incremental with
    /// --since); `kennel backup verify FILE` checks one.
    Backup(crate::storage_args::BackupArgs),
    /// Make a new VE from a backup (new ids, uuid and MACs; no addresses).
    Restore(crate::storage_args::RestoreArgs),
    /// Copy a VE to a new one (new ids, uuid, MACs and hostname; no addresses).
    Clone(crate::storage_args::CloneArgs),
    /// Give a VE fresh files from its template, keeping its configuration
    /// and id (and --keep paths).
    Reinstall(crate::storage_args::ReinstallArgs),
    /// Give a stopped VE a new id.
    Rename(crate::storage_args::RenameArgs),
    /// The API service's access: tokens with a role and a tenant's VEs.
    #[command(subcommand)]
    Api(crate::api_cmds::ApiCommand),
    /// Print a shell's completion script for kennel (bash, zsh, fish, ...).
    Completions(crate::gen_docs::CompletionsArgs),
    /// Write kennel's man pages (kennel.1, one per command) into a directory.
    Man(crate::gen_docs::ManArgs),
    /// Teardown after a VE's init ended (run by the VE's monitor).
    #[command(name = "__ve-exited", hide = true)]
    VeExited(VeExitedArgs),
    /// One worker of `start|stop|kill` of many VEs: ids on stdin, one
    /// report line each on stdout (kennel_ve::lifecycle::batch).
    #[command(name = "__batch-worker", hide = true)]
    BatchWorker(BatchWorkerArgs),
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
pub struct CheckArgs {
    /// Size the host's shared pools for this many running VEs (instead
    /// of the VEs defined), each with the default plan.
    #[arg(long, value_name = "N")]
    pub ves: Option<u64>,
    /// With --ves: VEs made from this template (its init decides what
    /// each takes); busybox's costs without it.
    #[arg(long, value_name = "NAME", requires = "ves")]
    pub template: Option<String>,
}

#[derive(Debug, Args)]
pub struct LxcfsSyncArgs {
    /// Wait up to this many seconds for lxcfs to serve.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub wait: u64,
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
    #[command(flatten)]
    pub resources: ResourceArgs,
    #[command(flatten)]
    pub disk: crate::storage_args::DiskArgs,
    /// Opt-in features, comma-separated: tun, fuse, nesting, keyring (see docs/SECURITY.md).
    #[arg(long, value_name = "LIST")]
    pub features: Option<String>,
    #[command(flatten)]
    pub net: CreateNetArgs,
}

/// What a VE may use (docs/RESOURCES.md). Each left out comes from the
/// host's default plan.
#[derive(Debug, Args, Default)]
pub struct ResourceArgs {
    /// Memory limit, e.g. 512M or 2G, or unlimited.
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Swap on top of --memory, e.g. 1G (0 for none).
    #[arg(long, value_name = "SIZE")]
    pub swap: Option<String>,
    /// CPU time in CPUs, e.g. 1 or 0.5.
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,
    /// CPU time as a percentage of one CPU, e.g. 50% or 150%, or unlimited (OpenVZ's cpulimit).
    #[arg(long, value_name = "PERCENT")]
    pub cpu_limit: Option<String>,
    /// Share of CPU time against other VEs, 1-10000 (100 is even; OpenVZ's cpuunits / 10).
    #[arg(long, value_name = "WEIGHT")]
    pub cpu_weight: Option<String>,
    /// Host CPUs the VE runs on, e.g. 0-1,3.
    #[arg(long, value_name = "LIST")]
    pub cpumask: Option<String>,
    /// Processes and threads, or unlimited.
    #[arg(long, value_name = "N")]
    pub numproc: Option<String>,
    /// Ptys the VE may have open, its console included (default 16).
    #[arg(long, value_name = "N")]
    pub numpty: Option<String>,
    /// Open files per process (the hard limit; the soft one stays 1024).
    #[arg(long, value_name = "N")]
    pub nofile: Option<String>,
    /// Share of disk time against other VEs, 1-10000 (100 is even).
    #[arg(long, value_name = "WEIGHT")]
    pub io_weight: Option<String>,
    /// Disk bandwidth per second, reads and writes each, e.g. 50M, or unlimited.
    #[arg(long, value_name = "RATE")]
    pub io_limit: Option<String>,
    /// Disk operations per second, reads and writes each, or unlimited.
    #[arg(long, value_name = "N")]
    pub iops_limit: Option<String>,
}

/// The network options of `create`.
#[derive(Debug, Args)]
pub struct CreateNetArgs {
    /// A routed address on the VE's eth0, with an optional /prefix
    /// (repeat for more; IPv4 and IPv6).
    #[arg(long = "ip", visible_alias = "ipadd", value_name = "ADDR[/PREFIX]")]
    pub ips: Vec<String>,
    /// A bridged interface: NAME,bridge=BRIDGE[,mac=MAC][,ip=ADDR/PREFIX][,gw=ADDR][,dhcp=yes] (repeat for more).
    #[arg(long = "netif", value_name = "SPEC")]
    pub netifs: Vec<String>,
    /// A DNS server for the VE's /etc/resolv.conf (repeat for more).
    #[arg(long = "nameserver", value_name = "ADDR")]
    pub nameservers: Vec<String>,
    /// A DNS search domain (repeat for more).
    #[arg(long = "searchdomain", value_name = "DOMAIN")]
    pub searchdomains: Vec<String>,
    /// Traffic limit per interface: RATE for both ways (100mbit), or egress=RATE,ingress=RATE.
    #[arg(long, value_name = "RATE")]
    pub rate: Option<String>,
    /// Masquerade the VE's IPv4 addresses behind this host interface.
    #[arg(long = "nat-via", value_name = "UPLINK")]
    pub nat_via: Option<String>,
    /// Forward a host port to the VE: PROTO:[HOSTADDR:]HOSTPORT:VEPORT (repeat for more).
    #[arg(long = "forward", value_name = "SPEC")]
    pub forwards: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    pub id: String,
    #[arg(long)]
    pub hostname: Option<String>,
    /// Add a routed address (repeat for more).
    #[arg(long = "ip-add", visible_alias = "ipadd", value_name = "ADDR[/PREFIX]")]
    pub ip_add: Vec<String>,
    /// Remove a routed address, or `all` (repeat for more).
    #[arg(long = "ip-del", visible_alias = "ipdel", value_name = "ADDR|all")]
    pub ip_del: Vec<String>,
    /// Add (or replace, by name) a bridged interface: NAME,bridge=BRIDGE[,mac=MAC][,ip=..][,gw=..][,dhcp=yes].
    #[arg(long = "netif", visible_alias = "netif-add", value_name = "SPEC")]
    pub netif_add: Vec<String>,
    /// Remove a bridged interface by name.
    #[arg(long = "netif-del", value_name = "NAME")]
    pub netif_del: Vec<String>,
    /// Traffic limit: RATE (both ways), egress=RATE,ingress=RATE, or none.
    #[arg(long, value_name = "RATE")]
    pub rate: Option<String>,
    /// DNS servers (repeat; replaces the list; `none` empties it).
    #[arg(long = "nameserver", value_name = "ADDR")]
    pub nameservers: Vec<String>,
    /// DNS search domains (repeat; replaces the list; `none` empties it).
    #[arg(long = "searchdomain", value_name = "DOMAIN")]
    pub searchdomains: Vec<String>,
    /// Masquerade behind UPLINK, or `none` to stop.
    #[arg(long = "nat-via", value_name = "UPLINK|none")]
    pub nat_via: Option<String>,
    /// Add a port forward PROTO:[HOSTADDR:]HOSTPORT:VEPORT.
    #[arg(long = "forward-add", value_name = "SPEC")]
    pub forward_add: Vec<String>,
    /// Remove a port forward PROTO:[HOSTADDR:]HOSTPORT:VEPORT.
    #[arg(long = "forward-del", value_name = "SPEC")]
    pub forward_del: Vec<String>,
    /// Resources, changed live on a running VE (disk limits and nofile
    /// from its next start).
    #[command(flatten)]
    pub resources: ResourceArgs,
    #[command(flatten)]
    pub disk: crate::storage_args::SetDiskArgs,
    /// Opt-in features, comma-separated (tun, fuse, nesting, keyring), or
    /// none; they take effect at the VE's next start.
    #[arg(long, value_name = "LIST")]
    pub features: Option<String>,
    /// Set a user's password with the VE's own chpasswd (the VE must run).
    /// Without ":PASSWORD" the password is read from standard input.
    #[arg(long, value_name = "USER[:PASSWORD]")]
    pub userpasswd: Option<String>,
    /// Start the VE at the host's boot (`kennel boot`): yes or no.
    #[arg(long, value_name = "yes|no")]
    pub onboot: Option<String>,
    /// Its place in the host's boot: higher starts earlier and stops
    /// later; none (the default) starts last and stops first.
    #[arg(long = "boot-order", value_name = "N|none")]
    pub boot_order: Option<String>,
}

/// Which VEs a `start`, `stop` or `kill` acts on, and how many at once.
#[derive(Debug, Args)]
pub struct ManyArgs {
    /// VE ids, one or more: 1-32 characters a-z, 0-9 and '-' each (e.g. 101).
    #[arg(
        value_name = "ID",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub ids: Vec<String>,
    /// Every VE this applies to: for start the stopped ones, for stop and
    /// kill the running ones.
    #[arg(long)]
    pub all: bool,
    /// VEs at most at once (default: four per CPU; for stop, which
    /// mostly waits, 128 per CPU).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: Option<u16>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub many: ManyArgs,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    #[command(flatten)]
    pub many: ManyArgs,
    /// Seconds to wait for a clean shutdown before killing.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    #[command(flatten)]
    pub many: ManyArgs,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    pub id: String,
    /// Seconds to wait for a clean shutdown before killing.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct StatArgs {
    pub id: Option<String>,
    #[arg(long)]
    pub json: bool,
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
    /// With a terminal: the key that ends the session and hangs up on the
    /// command, as ^X, or none.
    #[arg(long, default_value = "^]", value_name = "KEY")]
    pub escape: String,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct EnterArgs {
    /// VE id: 1-32 characters a-z, 0-9 and '-' (e.g. 101).
    pub id: String,
    /// The key that ends the session and hangs up on the shell, as ^X,
    /// or none.
    #[arg(long, default_value = "^]", value_name = "KEY")]
    pub escape: String,
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
        long_help = "Columns, comma-separated. Available: id, state, hostname, ip, netif, rate, template, procs, memory, memlimit, cpus, numproc, swap, cpu, fails, uptime, init, uid_base, layer, storage, disk, diskinodes, uuid, created, onboot, bootorder"
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
pub struct BatchWorkerArgs {
    /// start | stop --timeout SECS | kill, then --skip-idle (`Op::worker_args`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub op: Vec<String>,
}

#[derive(Debug, Args)]
pub struct VeExitedArgs {
    pub id: String,
    #[arg(long)]
    pub how: String,
}
