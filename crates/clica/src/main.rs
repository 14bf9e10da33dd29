#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    // On a worker of a rayon pool: see `clica::in_pool`.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let result = clica::in_pool(move || clica::cli::run(args));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, joined.
            let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", msg.join(": "));
            // 130 (as for SIGINT) for a run stopped by a signal; 2 for everything else.
            match e.downcast_ref::<clica::Error>() {
                Some(clica::Error::Interrupted { .. }) => ExitCode::from(130),
                _ => ExitCode::from(2),
            }
        }
    }
}
