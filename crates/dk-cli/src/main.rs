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

/// `mi_option_purge_delay` of mimalloc's `mi_option_e` (v2 and v3 alike: the index before
/// `mi_option_use_numa_nodes`, which the bindings name; they do not name this one). The unit test
/// below checks it reads as the documented default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t =
    libmimalloc_sys::mi_option_use_numa_nodes - 1;

/// For commands that stream data (`dk run`): memory freed by finished batches goes back to the
/// operating system at once instead of after mimalloc's purge delay (1 s in mimalloc v3, which
/// the `mimalloc` crate builds), so a sync's resident memory does not hold the pages of the
/// batches of the last second (`bench/sync`).
pub fn return_freed_memory_at_once() {
    // SAFETY: mi_option_set only stores an option value; any value is valid for this option.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

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

#[cfg(test)]
mod allocator_tests {
    /// The option index the purge delay is set through is mimalloc's purge delay: it reads as
    /// mimalloc v3's default, 1000 ms (the environment may override it: MIMALLOC_PURGE_DELAY).
    #[test]
    fn purge_delay_option_index_is_mimallocs() {
        let idx = super::MI_OPTION_PURGE_DELAY;
        let expected = std::env::var("MIMALLOC_PURGE_DELAY")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        // SAFETY: reading an option value.
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(idx) }, expected);
        super::return_freed_memory_at_once();
        // SAFETY: as above.
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(idx) }, 0);
    }
}
