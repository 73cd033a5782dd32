//! `bridgehead completions SHELL` and `bridgehead man DIR`: generated from the clap
//! definition, so they never drift from the real command line.

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use super::Cli;

pub(super) fn completions(shell: clap_complete::Shell) -> anyhow::Result<u8> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "bridgehead", &mut std::io::stdout());
    Ok(0)
}

pub(super) fn man_pages(dir: &Path) -> anyhow::Result<u8> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
    println!("man pages written to {}", dir.display());
    Ok(0)
}
