#![forbid(unsafe_code)]

use std::process::ExitCode;

/// Stack of the pool's threads, which run the whole command: the main thread's usual 8 MiB.
const STACK_BYTES: usize = 8 << 20;

fn main() -> ExitCode {
    // The command runs on a worker of the rayon pool (as many threads as RAYON_NUM_THREADS
    // or the CPUs, as before): the serial parts of a training step then start each parallel
    // region from inside the pool instead of waking it from outside and waiting for it. A
    // fast-protocol run switches context a quarter as often and its step is 0.4–0.9 ms
    // shorter (docs/performance.md). Results do not depend on it.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let result = match rayon::ThreadPoolBuilder::new()
        .stack_size(STACK_BYTES)
        .build()
    {
        Ok(pool) => pool.install(move || clica::cli::run(args)),
        Err(_) => clica::cli::run(args),
    };
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
