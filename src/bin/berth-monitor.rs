//! The second stage of a container's monitor: the small image that stays resident while the
//! container runs. Started only by `berth` (see `berth::runtime::supervise`).

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = berth::runtime::supervise::main_with_args(&args);
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
