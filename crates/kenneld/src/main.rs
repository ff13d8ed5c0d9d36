//! `kenneld`: Kennel's API service. It serves the `kennel-ve` library
//! over REST (HTTPS and a root-only Unix socket), with per-tenant tokens,
//! an event stream, Prometheus metrics and browser consoles. Kennel's
//! core stays daemonless: VEs never depend on this process, and a
//! restart picks up where the kernel is.
//!
//! * [`serve`]: listeners and connections; [`access`]: who is asking;
//!   [`api`]: the endpoints and the OpenAPI document; [`backend`]: how
//!   changes run (in `kennel` processes); [`events`]: the event stream;
//!   [`jobs`]: long operations; [`audit`]: the audit log.

mod access;
mod api;
mod app;
mod audit;
mod backend;
mod error;
mod events;
mod jobs;
mod metrics;
mod serve;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use kennel_api::TokenStore;
use kennel_ve::lifecycle::batch::Op;
use kennel_ve::lifecycle::Executables;
use kennel_ve::Kennel;

#[derive(Debug, Parser)]
#[command(
    name = "kenneld",
    version,
    about = "Kennel's API service: REST over HTTPS and a Unix socket"
)]
struct Args {
    /// Kennel's state root (as `kennel --root`).
    #[arg(long, env = "KENNEL_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,
    /// Address for HTTPS, or `none` for the Unix socket only.
    #[arg(long, default_value = "127.0.0.1:8443", value_name = "ADDR:PORT")]
    listen: String,
    /// The Unix socket (default: kenneld.sock in Kennel's run directory).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// The certificate to serve (PEM); default: a self-signed one made
    /// on the first start.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Ask a token of /metrics clients on loopback too (by default the
    /// host itself may scrape without one).
    #[arg(long)]
    metrics_token_always: bool,
    /// HTTPS connections open at once at most (one client address holds
    /// at most 512 of them; root's Unix socket has its own).
    #[arg(long, default_value_t = serve::budget::MAX_TCP, value_name = "N")]
    max_connections: usize,
    /// Failed authentications a minute from one address before it is
    /// refused for the rest of the minute.
    #[arg(long, default_value_t = access::limiter::MAX_FAILS, value_name = "N")]
    auth_failures: u32,
    /// Event streams one token may have open at once.
    #[arg(long, default_value_t = access::slots::STREAMS_PER_TOKEN, value_name = "N")]
    streams_per_token: usize,
    /// Console and shell sessions one token may have open at once.
    #[arg(long, default_value_t = access::slots::TERMINALS_PER_TOKEN, value_name = "N")]
    terminals_per_token: usize,
    /// Console and shell sessions open at once over all tokens (each
    /// holds one of the host's pseudo-terminals and a process).
    #[arg(long, default_value_t = access::slots::TERMINALS, value_name = "N")]
    terminals: usize,
    /// Where backups made through the API are kept (default: api/backups
    /// in Kennel's lib directory, /var/lib/kennel/api/backups).
    #[arg(long, value_name = "DIR")]
    backup_dir: Option<PathBuf>,
    /// The largest template tarball `PUT /v1/templates/NAME` takes, in
    /// bytes.
    #[arg(long, default_value_t = api::MAX_UPLOAD, value_name = "BYTES")]
    max_upload: u64,
    /// Backups kept at most of one VE in the backup directory; another
    /// is refused (409) until one is deleted.
    #[arg(long, default_value_t = app::BACKUPS_PER_VE, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    backups_per_ve: u16,
    /// Snapshots one VE may have at most, for a snapshot taken through
    /// the API (each can come to hold as much of the pool as the VE's
    /// disk); another is refused (409) until one is deleted.
    #[arg(long, default_value_t = app::SNAPSHOTS_PER_VE, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    snapshots_per_ve: u16,
    /// The `kennel` program to run changes with (default: beside kenneld).
    #[arg(long, value_name = "PATH")]
    kennel: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the OpenAPI document and exit.
    Openapi,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Some(Command::Openapi) = args.command {
        println!("{}", api::openapi_json());
        return std::process::ExitCode::SUCCESS;
    }
    init_logging();
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kenneld: {}", error::one_line(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KENNEL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn run(args: Args) -> Result<()> {
    let me = std::env::current_exe().context("find the kenneld executable")?;
    let kennel_exe = args
        .kennel
        .clone()
        .unwrap_or_else(|| me.with_file_name("kennel"));
    let exe = Executables {
        monitor: kennel_exe.with_file_name("kennel-monitor"),
        kennel: kennel_exe.clone(),
    };
    let kennel = Kennel::open(args.root.as_deref(), exe).context("open Kennel's state")?;
    let lib = kennel.paths().lib.clone();
    let run_dir = kennel.paths().run.clone();
    // Absolute: it is given to `kennel` commands, and names no option.
    let backup_dir = std::path::absolute(
        args.backup_dir
            .clone()
            .unwrap_or_else(|| lib.join("api").join("backups")),
    )
    .context("the backup directory (--backup-dir)")?;
    let (cert, key, make) = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone(), false),
        _ => {
            let (c, k) = serve::tls::default_paths(&lib);
            (c, k, true)
        }
    };
    let cli = backend::KennelCli {
        exe: kennel_exe,
        root: args.root.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kenneld")
        .build()
        .context("start the async runtime")?;
    runtime.block_on(async move {
        let events = events::EventLog::open(&run_dir).context("open the event journal")?;
        let cursors = events::cursor::CursorKey::load_or_make(&lib.join("api").join("cursor.key"))
            .context("the key of tenants' event cursors")?;
        let kennel = Arc::new(kennel);
        events::spawn_watcher(Arc::clone(&kennel), Arc::clone(&events)).context("start the event watcher")?;
        let app = Arc::new(app::App {
            kennel: Arc::clone(&kennel),
            workers: Arc::new(backend::Workers::new(cli.clone())),
            changes: Arc::default(),
            backups: Arc::new(backend::Changes::with_limit(backend::changes::MAX_BACKUPS)),
            cli,
            access: access::Access::new(
                TokenStore::new(&lib),
                access::FailLimiter::new(args.auth_failures),
            ),
            audit: audit::Audit::new(&lib),
            events,
            jobs: Arc::default(),
            cursors,
            slots: Arc::new(access::slots::Slots::new(access::slots::SlotLimits {
                streams_per_token: args.streams_per_token,
                terminals_per_token: args.terminals_per_token,
                terminals: args.terminals,
            })),
            settings: app::Settings {
                metrics_open_on_loopback: !args.metrics_token_always,
                backup_dir,
                max_upload: args.max_upload,
                backups_per_ve: args.backups_per_ve.into(),
                snapshots_per_ve: args.snapshots_per_ve.into(),
            },
        });
        app.workers.warm(&[Op::Start, Op::Kill]);
        let router = api::router(Arc::clone(&app));
        let budget = Arc::new(serve::budget::Budget::for_this_process(args.max_connections));
        let socket = args.socket.clone().unwrap_or_else(|| run_dir.join("kenneld.sock"));
        let unix = serve::unix::bind(&socket)
            .with_context(|| format!("listen on {}", socket.display()))?;
        // The socket is this kenneld's alone now: what uploads a kenneld
        // that died left half-written are no one's.
        api::sweep_uploads(&lib, &app.settings.backup_dir);
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(serve::unix::serve(unix, router.clone(), Arc::clone(&budget.unix)));
        let mut said = format!("kenneld: listening on unix:{}", socket.display());
        if args.listen != "none" {
            let tls = serve::tls::server_config(&cert, &key, make)?;
            let tcp = tokio::net::TcpListener::bind(&args.listen)
                .await
                .with_context(|| format!("listen on {} (use --listen ADDR:PORT)", args.listen))?;
            said.push_str(&format!(" and https://{}", tcp.local_addr()?));
            tasks.spawn(serve::tcp::serve(tcp, tls, router, budget));
        }
        tracing::info!("{said}");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("catch SIGTERM")?;
        tokio::select! {
            _ = term.recv() => tracing::info!("kenneld: stopping (SIGTERM); the VEs keep running"),
            _ = tokio::signal::ctrl_c() => tracing::info!("kenneld: stopping; the VEs keep running"),
            _ = tasks.join_next() => tracing::error!("kenneld: a listener ended"),
        }
        let _ = std::fs::remove_file(&socket);
        Ok(())
    })
}
