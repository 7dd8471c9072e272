//! `fxtor`: the command-line program.
//!
//! `fxtor info` shows what a .torrent file or magnet link describes; `fxtor create` makes a
//! .torrent (hybrid v1+v2 by default); `fxtor download` fetches a torrent (and can seed it
//! after); `fxtor seed` checks a torrent's data and serves it. Exit status: 0 on success, 2 when the input is malformed
//! or an argument is wrong, 1 for any other failure (I/O).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fxtor: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fxtor: {e}");
            ExitCode::from(e.exit_status())
        }
    }
}
