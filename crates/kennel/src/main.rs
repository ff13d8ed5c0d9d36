//! `kennel`: the command line. Parses arguments, calls the `kennel-ve`
//! library, prints tables or JSON, and turns errors into one line and a
//! documented exit status (docs/CLI.md).

mod api_cmds;
mod boot;
mod cli;
mod commands;
mod gen_docs;
mod logging;
mod many;
mod net_args;
mod output;
mod progress;
mod remote;
mod resource_args;
mod set_args;
mod stat;
mod storage_args;
mod storage_cmds;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    set_args::hide_password_in_cmdline(&args);
    if let Some(code) = remote::hand_over(&args) {
        return code;
    }
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help and --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line, like every other kennel error.
            let text = e.render().to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            eprintln!("kennel: {first} (see `kennel --help`)");
            return ExitCode::from(2);
        }
    };
    logging::init(cli.quiet);
    tracing::debug!("kennel: arguments parsed");
    let result = commands::run(cli);
    tracing::debug!("kennel: done");
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        // The reader of our output went away (`kennel list | head -1`):
        // what the command did is done, and there is no one to tell.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let code = exit_code_of(&err);
            eprintln!("kennel: {}", one_line(&err));
            ExitCode::from(code as u8)
        }
    }
}

/// The documented exit status for an error (docs/CLI.md).
fn exit_code_of(err: &anyhow::Error) -> i32 {
    err.chain()
        .find_map(|e| {
            if let Some(e) = e.downcast_ref::<kennel_ve::VeError>() {
                return Some(e.kind().exit_code());
            }
            e.downcast_ref::<kennel_api::ApiAccessError>()
                .map(|e| match e {
                    kennel_api::ApiAccessError::BadInput(_)
                    | kennel_api::ApiAccessError::NoSuchToken(_) => 2,
                    _ => 1,
                })
        })
        .unwrap_or(1)
}

/// The error and its causes on one line, without repeating a cause that
/// the message above already contains. Names from tarballs and VE files
/// are escaped where a message is made (`kennel_storage::shown`); anything
/// a terminal would still act on is escaped here.
fn one_line(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    kennel_storage::shown::terminal_safe(&out.replace('\n', " ")).into_owned()
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
