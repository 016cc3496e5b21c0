//! The `mlbuild` binary: parse, run the command (which renders its error once), exit with its
//! code.

use clap::Parser;

use mlbuild::error::Exit;

#[allow(
    clippy::print_stderr,
    reason = "no runtime means no command and no printer: the one line main prints itself"
)]
fn main() {
    let cli = mlbuild::commands::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(Exit::Error as i32);
        }
    };
    let code = runtime.block_on(mlbuild::commands::main(cli));
    drop(runtime);
    std::process::exit(code as i32);
}
