//! The `sessiongate` binary: wiring only. Everything lives in the library.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    sessiongate::cli::run()
}
