//! `kennel completions SHELL` and `kennel man DIR`: shell completions and
//! man pages made from the command-line grammar itself (`cli.rs`), so they
//! never fall behind the commands. Neither needs root or a state root:
//! packaging and `scripts/quickstart.sh` run them to install both.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use kennel_ve::VeError;

use crate::cli::Cli;
use crate::commands::say;
use crate::output::out;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Where to write the pages (made if missing), e.g.
    /// /usr/local/share/man/man1.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Prints the completion script for `a.shell` on standard output.
pub fn completions(a: &CompletionsArgs) -> Result<i32> {
    let mut cmd = visible(Cli::command());
    // Made in memory first: the generator panics on a write error (a
    // reader that went away), which `outln!` reports instead.
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "kennel", &mut script);
    out!("{}", String::from_utf8_lossy(&script))?;
    Ok(0)
}

/// The grammar without its hidden commands (`__ve-exited`,
/// `__batch-worker`), which bash's generator would offer to complete.
/// The top level is remade from its parts: clap cannot remove a command.
fn visible(cmd: clap::Command) -> clap::Command {
    let subcommands: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let mut top = clap::Command::new("kennel")
        .version(env!("CARGO_PKG_VERSION"))
        .args(cmd.get_arguments().cloned())
        .subcommands(subcommands)
        .subcommand_required(true);
    if let Some(about) = cmd.get_about() {
        top = top.about(about.clone());
    }
    top
}

/// Writes `kennel.1` and one page per command (`kennel-start.1`,
/// `kennel-snapshot-create.1`, ...) into `a.dir`; hidden commands get none.
pub fn man(a: &ManArgs, quiet: bool) -> Result<i32> {
    let dir = &a.dir;
    if dir.exists() && !dir.is_dir() {
        return Err(VeError::BadInput(format!(
            "{} is not a directory: give the directory for the man pages, e.g. /usr/local/share/man/man1",
            dir.display()
        ))
        .into());
    }
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Gives each command its page name (`kennel-start`) and its synopsis
    // name (`kennel start`).
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, dir, &mut written)?;
    say(
        quiet,
        format!("Wrote {} man pages to {}", written.len(), dir.display()),
    )?;
    Ok(0)
}

/// The page of `cmd` and of each of its visible commands, depth first.
fn write_pages(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> Result<()> {
    let page = clap_mangen::Man::new(cmd.clone());
    let path = dir.join(page.get_filename());
    let title = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
    // A temporary file renamed into place: `man` never reads half a page.
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        page.get_filename(),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut roff = Vec::new();
        page.render(&mut roff)?;
        fs::write(&tmp, with_title(&String::from_utf8_lossy(&roff), &title))?;
        fs::rename(&tmp, &path)
    };
    write()
        .inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
        .with_context(|| format!("write {}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}

/// `page` with its `.TH` line naming Kennel as the source and manual.
/// clap_mangen writes an empty date as no argument at all, which shifts
/// the source and the manual into the wrong places.
fn with_title(page: &str, title: &str) -> String {
    let th = format!(
        ".TH {title} 1 \"\" \"Kennel {}\" \"Kennel Manual\"",
        env!("CARGO_PKG_VERSION")
    );
    page.lines()
        .map(|l| {
            if l.starts_with(".TH ") {
                th.as_str()
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_title_line_names_kennel() {
        let page = ".ie x\n.TH kennel-start 1  \"start \"\n.SH NAME\n";
        assert_eq!(
            with_title(page, "kennel-start"),
            format!(
                ".ie x\n.TH kennel-start 1 \"\" \"Kennel {}\" \"Kennel Manual\"\n.SH NAME\n",
                env!("CARGO_PKG_VERSION")
            )
        );
    }
}
