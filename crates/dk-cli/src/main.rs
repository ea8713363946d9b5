//! `dk` — DataKit: run a data platform as code.
//!
//! This crate is the edge: clap commands (`cli`), one module per command (`commands`), rendering to
//! the terminal, and exit codes (`exit`). Libraries never print; this crate does.

mod cli;
mod commands;
mod exit;
mod output;
mod progress;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: loading a large project allocates many small nodes from several threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code.into(),
        Err(e) => {
            output::print_error(&e);
            exit::Exit::Error.into()
        }
    }
}

/// Rust ignores SIGPIPE, so printing into a closed pipe (`dk … | head`) would panic. Restore the
/// default: like every Unix tool, dk then ends quietly when its reader goes away.
#[cfg(unix)]
fn restore_sigpipe() {
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is always valid.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn restore_sigpipe() {}
