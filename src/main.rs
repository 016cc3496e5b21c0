//! The `mlbuild` binary: parse, dispatch, render the error once, exit with its code.

use clap::Parser;

use mlbuild::error::Exit;

fn main() {
    let cli = mlbuild::cli::Cli::parse();
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
    let code = match runtime.block_on(mlbuild::commands::dispatch(cli)) {
        Ok(exit) => exit,
        Err(err) => mlbuild::error::render(&err),
    };
    drop(runtime);
    std::process::exit(code as i32);
}
