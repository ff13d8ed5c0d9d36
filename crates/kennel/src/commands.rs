//! One function per command: call the library, print the result.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use kennel_runtime::join::{Cwd, Stdio};
use kennel_ve::lifecycle::batch::Op;
use kennel_ve::lifecycle::{CheckLevel, CreateRequest, ExecRequest, Executables, VeStatus};
use kennel_ve::units::human;
use kennel_ve::{Kennel, VeError, VeId};
use serde_json::json;

use crate::cli::{Cli, Command, TemplateCommand};
use crate::output::{self, out, outln};
use kennel_storage::shown::terminal_safe;

/// Prints a command's one-line report, unless `--quiet`.
pub(crate) fn say(quiet: bool, msg: String) -> std::io::Result<()> {
    if !quiet {
        outln!("{msg}")?;
    }
    Ok(())
}

/// Runs the command; the `Ok` value is the process exit status.
pub fn run(cli: Cli) -> Result<i32> {
    let quiet = cli.quiet;
    let say = |msg: String| say(quiet, msg);
    // Made from the grammar alone: no root, no state root.
    match &cli.command {
        Command::Completions(a) => return crate::gen_docs::completions(a),
        Command::Man(a) => return crate::gen_docs::man(a, quiet),
        _ => {}
    }
    let k = Kennel::open(cli.root.as_deref(), Executables::beside_current()?)?;
    k.expect_uuid(cli.expect_uuid.clone());
    match cli.command {
        Command::Template(t) => template(&k, t, quiet),
        Command::Api(a) => crate::api_cmds::run(&k, a, quiet),
        Command::Create(a) => create(&k, a, quiet),
        Command::Set(a) => {
            let id = VeId::parse(&a.id)?;
            let mut req = crate::net_args::set_request(&a)?;
            crate::set_args::add_to_request(&a, &mut req)?;
            let (cfg, notes) = k.set(&id, &req)?;
            for n in notes {
                eprintln!("kennel: note: {}", terminal_safe(&n));
            }
            say(format!(
                "Set VE {id}: hostname {}, addresses {}",
                cfg.hostname,
                crate::net_args::ips_text(&cfg.network)
            ))?;
            Ok(0)
        }
        Command::Start(a) => crate::many::run(&k, Op::Start, &a.many, quiet),
        Command::Stop(a) => crate::many::run(
            &k,
            Op::Stop {
                timeout: Duration::from_secs(a.timeout),
            },
            &a.many,
            quiet,
        ),
        Command::Restart(a) => {
            let id = VeId::parse(&a.id)?;
            let s = k.restart(&id, Duration::from_secs(a.timeout))?;
            say(format!("Restarted VE {id} (init pid {})", s.init_pid))?;
            Ok(0)
        }
        Command::Kill(a) => crate::many::run(&k, Op::Kill, &a.many, quiet),
        Command::Status(a) => {
            let id = VeId::parse(&a.id)?;
            let st = k.status(&id)?;
            if a.json {
                outln!("{}", serde_json::to_string_pretty(&status_json(&st))?)?;
            } else {
                outln!("{}", terminal_safe(&status_line(&st)))?;
            }
            Ok(0)
        }
        Command::Stat(a) => crate::stat::run(&k, a),
        Command::Exec(a) => exec(&k, a),
        Command::Enter(a) => enter(&k, a),
        Command::Console(a) => {
            let id = VeId::parse(&a.id)?;
            let esc = parse_escape(&a.escape)?;
            let mut connected = || {
                if !quiet {
                    eprintln!("Connected to VE {id}'s console. Detach with {}.", a.escape);
                }
            };
            let end = k.console(&id, esc, &mut connected)?;
            if !quiet {
                match end {
                    kennel_runtime::pty::RelayEnd::Detached => {
                        eprintln!("\r\nDetached from VE {id}'s console.")
                    }
                    _ => eprintln!("\r\nVE {id}'s console closed."),
                }
            }
            Ok(0)
        }
        Command::List(a) => list(&k, a),
        Command::Config(a) => {
            let id = VeId::parse(&a.id)?;
            let cfg = k.config(&id)?;
            if a.json {
                outln!("{}", serde_json::to_string_pretty(&cfg_json(&cfg))?)?;
            } else {
                out!("{}", cfg.to_toml()?)?;
            }
            Ok(0)
        }
        Command::Destroy(a) => {
            let id = VeId::parse(&a.id)?;
            k.destroy(&id, a.force)?;
            say(format!("Destroyed VE {id}"))?;
            Ok(0)
        }
        Command::Check(a) => check(&k, &a),
        Command::LxcfsSync(a) => lxcfs_sync(&k, &a, quiet),
        Command::Boot(a) => crate::boot::boot(&k, &a, quiet),
        Command::Shutdown(a) => crate::boot::shutdown(&k, &a, quiet),
        Command::Completions(a) => crate::gen_docs::completions(&a),
        Command::Man(a) => crate::gen_docs::man(&a, quiet),
        Command::Storage(c) => crate::storage_cmds::storage(&k, c, quiet),
        Command::Snapshot(c) => crate::storage_cmds::snapshot(&k, c, quiet),
        Command::Backup(a) => crate::storage_cmds::backup(&k, a, quiet),
        Command::Restore(a) => crate::storage_cmds::restore(&k, a, quiet),
        Command::Clone(a) => crate::storage_cmds::clone(&k, a, quiet),
        Command::Reinstall(a) => crate::storage_cmds::reinstall(&k, a, quiet),
        Command::Rename(a) => crate::storage_cmds::rename(&k, a, quiet),
        Command::VeExited(a) => {
            let id = VeId::parse(&a.id)?;
            k.ve_exited(&id, &a.how)
                .with_context(|| format!("teardown of VE {id}"))?;
            Ok(0)
        }
        Command::BatchWorker(a) => crate::many::worker(&k, &a.op),
    }
}

fn template(k: &Kennel, cmd: TemplateCommand, quiet: bool) -> Result<i32> {
    // Progress names members of a tarball and files of a tree: escaped
    // where they are made (kennel_storage::shown), and made safe here too.
    let mut progress = |m: &str| {
        if !quiet {
            eprintln!("==> {}", terminal_safe(m));
        }
    };
    match cmd {
        TemplateCommand::Create { name, from, mirror } => {
            let source = from.unwrap_or_else(|| name.clone());
            let t = k.template_create(&name, &source, mirror, &mut progress)?;
            if !quiet {
                outln!(
                    "Created template {} ({}, init {}, {})",
                    t.meta.name,
                    human(t.meta.size_bytes),
                    t.meta.init.as_str(),
                    t.meta.source
                )?;
            }
        }
        TemplateCommand::Import { name, tarball } => {
            let t = k.template_import(&name, &tarball, &mut progress)?;
            if !quiet {
                outln!(
                    "Imported template {} ({}, init {})",
                    t.meta.name,
                    human(t.meta.size_bytes),
                    t.meta.init.as_str()
                )?;
            }
        }
        TemplateCommand::List { json } => {
            let ts = k.template_store().list()?;
            if json {
                let v: Vec<_> = ts
                    .iter()
                    .map(|t| json!({"name": t.meta.name, "os": t.meta.os, "init": t.meta.init.as_str(), "size_bytes": t.meta.size_bytes, "created": t.meta.created, "source": t.meta.source}))
                    .collect();
                outln!("{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                let rows = ts
                    .iter()
                    .map(|t| {
                        vec![
                            t.meta.name.clone(),
                            t.meta.init.as_str().into(),
                            human(t.meta.size_bytes),
                            t.meta.os.clone(),
                            t.meta.created.clone(),
                        ]
                    })
                    .collect();
                outln!(
                    "{}",
                    output::table(&["NAME", "INIT", "SIZE", "OS", "CREATED"], rows, &[2], true)
                )?;
            }
        }
        TemplateCommand::Remove { name } => {
            k.template_remove(&name)?;
            if !quiet {
                outln!("Removed template {name}")?;
            }
        }
    }
    Ok(0)
}

fn list(k: &Kennel, a: crate::cli::ListArgs) -> Result<i32> {
    let fields = output::parse_fields(a.output.as_deref().unwrap_or(output::DEFAULT_FIELDS))
        .map_err(VeError::BadInput)?;
    let all = k.list(&mut |id, e| {
        eprintln!(
            "kennel: warning: VE {id} left out: {}",
            terminal_safe(&e.to_string())
        )
    })?;
    let shown: Vec<&VeStatus> = all
        .iter()
        .filter(|s| a.all || s.state.is_running())
        .collect();
    // Counters only when a column needs them: a few more files per VE.
    let counted = fields.iter().any(|f| output::COUNTER_FIELDS.contains(f));
    let accounting: Vec<Option<kennel_ve::lifecycle::stat::Accounting>> = shown
        .iter()
        .map(|s| {
            (counted && s.state.is_running())
                .then(|| k.stat(&s.config.id).ok())
                .flatten()
        })
        .collect();
    if a.json {
        let v: Vec<serde_json::Value> = shown
            .iter()
            .zip(&accounting)
            .map(|(s, acc)| {
                serde_json::Value::Object(
                    fields
                        .iter()
                        .map(|f| (f.to_string(), output::field_json(s, acc.as_ref(), f)))
                        .collect(),
                )
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(0);
    }
    let headers: Vec<&str> = fields
        .iter()
        .filter_map(|f| output::FIELDS.iter().find(|(n, _)| n == f).map(|(_, h)| *h))
        .collect();
    let rows = shown
        .iter()
        .zip(&accounting)
        .map(|(s, acc)| {
            fields
                .iter()
                .map(|f| output::field_text(s, acc.as_ref(), f))
                .collect()
        })
        .collect();
    let numeric: Vec<usize> = fields
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            matches!(
                **f,
                "procs"
                    | "memory"
                    | "memlimit"
                    | "cpus"
                    | "numproc"
                    | "uid_base"
                    | "swap"
                    | "cpu"
                    | "fails"
                    | "bootorder"
            )
        })
        .map(|(i, _)| i)
        .collect();
    let t = output::table(&headers, rows, &numeric, !a.no_header);
    if !t.is_empty() {
        outln!("{t}")?;
    }
    Ok(0)
}

fn status_line(st: &VeStatus) -> String {
    let id = &st.config.id;
    if st.state.is_running() {
        let pid = st.run.as_ref().map_or(0, |r| r.init_pid);
        let oom = match st.usage.oom_kills {
            Some(n) if n > 0 => format!(", {n} killed by the OOM killer of its memory limit"),
            _ => String::new(),
        };
        format!(
            "VE {id} {} (init pid {pid}, up {}, {} processes, {} memory{oom})",
            st.state.as_str(),
            st.uptime_secs.map_or("-".into(), output::uptime),
            st.usage.tasks.map_or("-".into(), |n| n.to_string()),
            st.usage.memory.map_or("-".into(), human)
        )
    } else {
        match &st.last_exit {
            Some(e) => format!(
                "VE {id} {} (last run: {} at {})",
                st.state.as_str(),
                e.how,
                e.at
            ),
            None => format!("VE {id} {}", st.state.as_str()),
        }
    }
}

fn status_json(st: &VeStatus) -> serde_json::Value {
    json!({
        "id": st.config.id.as_str(),
        "state": st.state.as_str(),
        "running": st.state.is_running(),
        "init_pid": st.run.as_ref().map(|r| r.init_pid),
        "monitor_pid": st.run.as_ref().map(|r| r.monitor_pid),
        "started_at": st.run.as_ref().map(|r| r.started_at.clone()),
        "uptime_secs": st.uptime_secs,
        "procs": st.usage.tasks,
        "memory_bytes": st.usage.memory,
        "oom_kills": st.usage.oom_kills,
        "hostname": st.config.hostname,
        "template": st.config.template,
        "last_exit": st.last_exit.as_ref().map(|e| json!({"at": e.at, "how": e.how})),
    })
}

fn cfg_json(c: &kennel_ve::config::VeConfig) -> serde_json::Value {
    json!({
        "id": c.id.as_str(),
        "uuid": c.uuid,
        "hostname": c.hostname,
        "template": c.template,
        "created": c.created,
        "resources": {
            "memory_bytes": crate::output::limit_bytes(c.resources.memory),
            "swap_bytes": c.resources.swap.map(|m| m.bytes()),
            "cpus": c.resources.cpus,
            "cpu_limit": c.resources.cpu_limit.map(|l| l.to_string()),
            "cpu_weight": c.resources.cpu_weight.map(|w| w.get()),
            "cpumask": c.resources.cpumask.as_ref().map(|m| m.to_string()),
            "numproc": c.resources.numproc,
            "numpty": c.resources.numpty(),
            "nofile": c.resources.nofile,
            "io_weight": c.resources.io_weight.map(|w| w.get()),
            "io_limit_bytes": crate::output::limit_bytes(c.resources.io_limit),
            "iops_limit": c.resources.iops_limit,
        },
        "features": c.features.0.iter().map(|f| f.name()).collect::<Vec<_>>(),
        "idmap": {"uid_base": c.idmap.uid_base, "gid_base": c.idmap.gid_base, "size": c.idmap.size},
        "init": {"kind": c.init.kind.as_str(), "path": c.init.path},
        "storage": {
            "layer": c.storage.layer.as_str(),
            "backend": c.storage.backend.as_str(),
            "pool": c.storage.pool,
            "disk_bytes": c.storage.disk.map(|d| d.bytes()),
            "disk_inodes": c.storage.disk_inodes,
        },
        "network": serde_json::to_value(&c.network).unwrap_or(serde_json::Value::Null),
        "boot": {"onboot": c.boot.onboot, "order": c.boot.order},
    })
}

/// `^]` -> 0x1d, `^A` -> 0x01.
fn parse_escape(s: &str) -> Result<u8> {
    let b = s.as_bytes();
    if b.len() == 2 && b[0] == b'^' && (0x40..=0x5f).contains(&b[1].to_ascii_uppercase()) {
        return Ok(b[1].to_ascii_uppercase() - 0x40);
    }
    bail!(VeError::BadInput(format!(
        "invalid --escape '{s}': use ^ and a letter or one of [\\]^_, e.g. ^]"
    )))
}

/// `--escape` of `exec` and `enter`: a key, or `none`.
fn session_escape(s: &str) -> Result<Option<u8>> {
    if s == "none" {
        return Ok(None);
    }
    parse_escape(s).map(Some)
}

fn create(k: &Kennel, a: crate::cli::CreateArgs, quiet: bool) -> Result<i32> {
    let id = VeId::parse(&a.id)?;
    let resources = crate::resource_args::resources(&a.resources)?;
    let features = a
        .features
        .as_deref()
        .map(crate::set_args::features)
        .transpose()?
        .unwrap_or_default();
    let network = crate::net_args::create_network(&a.net)?;
    let disk = a
        .disk
        .disk
        .as_deref()
        .map(|s| crate::resource_args::size_with_unit(s, "--disk"))
        .transpose()?;
    let disk_inodes = a
        .disk
        .disk_inodes
        .as_deref()
        .map(crate::storage_cmds::inode_count)
        .transpose()?;
    let backend = a
        .disk
        .storage
        .as_deref()
        .map(kennel_ve::config::Backend::parse)
        .transpose()?;
    let cfg = k.create(&CreateRequest {
        id,
        template: a.template,
        hostname: a.hostname,
        resources,
        features,
        network,
        disk,
        disk_inodes,
        backend,
    })?;
    say(
        quiet,
        format!(
            "Created VE {} from template {} (hostname {}, host ids {}-{}, {} layer, {})",
            cfg.id,
            cfg.template,
            cfg.hostname,
            cfg.idmap.uid_base,
            cfg.idmap.uid_base as u64 + cfg.idmap.size as u64 - 1,
            cfg.storage.layer.as_str(),
            match cfg.storage.disk {
                Some(d) => format!("disk {d}"),
                None => "no disk limit".into(),
            }
        ),
    )?;
    Ok(0)
}

fn exec(k: &Kennel, a: crate::cli::ExecArgs) -> Result<i32> {
    let id = VeId::parse(&a.id)?;
    let tty = if a.tty {
        true
    } else if a.no_tty {
        false
    } else {
        std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
    };
    let escape = session_escape(&a.escape)?;
    let stdio = if tty {
        Stdio::Terminal { escape }
    } else {
        Stdio::Relay
    };
    for e in &a.env {
        if !e.contains('=') || e.starts_with('=') {
            bail!(VeError::BadInput(format!(
                "invalid --env '{e}': use KEY=value"
            )));
        }
    }
    let out = k.exec(
        &id,
        &ExecRequest {
            argv: a.command,
            env: a.env,
            cwd: Cwd::Required(a.workdir),
            stdio,
            term: std::env::var("TERM").ok(),
        },
    )?;
    Ok(out.status)
}

fn enter(k: &Kennel, a: crate::cli::EnterArgs) -> Result<i32> {
    let id = VeId::parse(&a.id)?;
    let escape = session_escape(&a.escape)?;
    let stdio = if std::io::stdin().is_terminal() {
        Stdio::Terminal { escape }
    } else {
        Stdio::Relay
    };
    let out = k.exec(
        &id,
        &ExecRequest {
            argv: k.enter_argv(),
            env: Vec::new(),
            cwd: Cwd::Preferred("/root".into()),
            stdio,
            term: std::env::var("TERM").ok(),
        },
    )?;
    Ok(out.status)
}

/// `kennel check`: one line per check; exit 10 if VEs cannot start.
fn check(k: &Kennel, a: &crate::cli::CheckArgs) -> Result<i32> {
    let sizing = match a.ves {
        Some(ves) => kennel_ve::lifecycle::Sizing::Planned {
            ves,
            template: a.template.clone(),
        },
        None => kennel_ve::lifecycle::Sizing::Defined,
    };
    let mut worst = 0;
    for c in &k.check(&sizing)? {
        let (mark, code) = match c.level {
            CheckLevel::Ok => ("ok  ", 0),
            CheckLevel::Warn => ("warn", 0),
            CheckLevel::Fail => ("FAIL", 10),
        };
        worst = worst.max(code);
        outln!("{mark}  {:<16} {}", c.name, terminal_safe(&c.detail))?;
    }
    Ok(worst)
}

/// `kennel lxcfs-sync`: one line per running VE; non-zero when one failed.
fn lxcfs_sync(k: &Kennel, a: &crate::cli::LxcfsSyncArgs, quiet: bool) -> Result<i32> {
    let all = k.lxcfs_sync(Duration::from_secs(a.wait))?;
    let mut failed = 0;
    for ve in &all {
        match &ve.result {
            Ok(s) => say(
                quiet,
                format!(
                    "VE {}: {} lxcfs files bound, {} live already",
                    ve.id, s.bound, s.live
                ),
            )?,
            Err(e) => {
                failed += 1;
                eprintln!("kennel: VE {}: {}", ve.id, terminal_safe(&e.to_string()));
            }
        }
    }
    if failed > 0 {
        bail!(
            "lxcfs could not be bound into {failed} of {} running VEs",
            all.len()
        );
    }
    Ok(0)
}
