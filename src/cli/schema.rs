use std::io::Write;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write the schema to this file instead of standard output.
    #[arg(long, short)]
    output: Option<std::path::PathBuf>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut text = serde_json::to_string_pretty(&berth::spec::schema::json_schema())?;
    text.push('\n');
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}
