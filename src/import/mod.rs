//! `berth import compose`: a Compose file (with `.env` and `${VAR}` interpolation) turned
//! into berth's desired-state files, one per service plus networks, volumes, secrets and
//! configs, with a comment on every translated key and a list of what could not be carried
//! over. Uses `spec` to write only what berth accepts (image references, names, durations).
//! `berth import quadlet` does the same for Podman Quadlet units (`quadlet/`).

mod compose;
pub mod interpolate;
mod quadlet;
mod toml_out;
mod values;
mod yaml;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub use quadlet::{QuadletOptions, quadlet};
pub use yaml::Pos;

/// A key that could not be carried over, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// "service web", "network back", "secret db_password", "file".
    pub scope: String,
    /// The Compose key, dotted ("deploy.resources.reservations"); empty for the whole entry.
    pub key: String,
    pub at: Pos,
    pub reason: String,
    /// The file `at` is in, when the import read several (Quadlet units); else the source.
    pub file: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// The process environment: it wins over `.env`, as in Compose.
    pub environment: BTreeMap<String, String>,
    /// The variables file (default: `.env` beside the Compose file, if there is one).
    pub env_file: Option<PathBuf>,
    /// Where subnets come from for networks that name none.
    pub subnet_pool: ipnet::Ipv4Net,
}

/// The files to write (name, content) and what was left out.
#[derive(Debug)]
pub struct Import {
    pub source: PathBuf,
    pub files: Vec<(String, String)>,
    pub dropped: Vec<Dropped>,
    /// Services imported, and in the Compose file.
    pub services: usize,
    pub services_total: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}:{error}")]
    Yaml {
        path: PathBuf,
        error: yaml::YamlError,
    },
    #[error("{path}: {error}")]
    Dotenv {
        path: PathBuf,
        error: interpolate::DotenvError,
    },
    #[error("{path}:{}:{}: {error}", at.line, at.column)]
    Interpolate {
        path: PathBuf,
        at: Pos,
        error: interpolate::InterpolateError,
    },
    #[error(
        "service `{service}` would be written to {file}, which another part of the import uses: rename the service"
    )]
    FileClash { service: String, file: String },
    #[error("{path}:{}:{}: {error}", at.line, at.column)]
    Unit {
        path: PathBuf,
        at: Pos,
        error: quadlet::UnitError,
    },
    #[error("no Quadlet units (.container, .network, .volume) in {}", paths.join(", "))]
    NoUnits { paths: Vec<String> },
    #[error(
        "{kind} `{name}` would be written to {file}, which another part of the import uses: rename the unit"
    )]
    UnitClash {
        kind: &'static str,
        name: String,
        file: String,
    },
    #[error("{path} exists: pass --force to overwrite it")]
    Exists { path: PathBuf },
    #[error("cannot write {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

fn read(path: &Path) -> Result<String, ImportError> {
    std::fs::read_to_string(path).map_err(|error| ImportError::Read {
        path: path.to_path_buf(),
        error,
    })
}

/// Read and translate a Compose file; `out_dir` is where the files will be written (paths in
/// them are relative to it).
pub fn compose(file: &Path, out_dir: &Path, options: &Options) -> Result<Import, ImportError> {
    let absolute = |p: &Path| values::normal(&std::path::absolute(p).unwrap_or_else(|_| p.into()));
    let file_abs = absolute(file);
    let compose_dir = file_abs.parent().unwrap_or(Path::new("/")).to_path_buf();
    let out_dir = absolute(out_dir);
    let text = read(file)?;
    let (env_path, required) = match &options.env_file {
        Some(p) => (p.clone(), true),
        None => (compose_dir.join(".env"), false),
    };
    let dotenv = match std::fs::read_to_string(&env_path) {
        Ok(t) => t,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => {
            return Err(ImportError::Read {
                path: env_path,
                error,
            });
        }
    };
    let vars = interpolate::Variables::with_dotenv(options.environment.clone(), &dotenv).map_err(
        |error| ImportError::Dotenv {
            path: env_path.clone(),
            error,
        },
    )?;
    let shown = file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let project = translate_text(
        &text,
        file,
        &compose_dir,
        &out_dir,
        &vars,
        options.subnet_pool,
    )?;
    let header = |what: &str| {
        vec![
            format!("{what}, imported from {shown} by `berth import compose`."),
            "Lines marked \"translated from\" differ from the Compose spelling.".to_string(),
        ]
    };
    let mut files = Vec::new();
    for (kind, tables) in [
        ("networks", &project.networks),
        ("volumes", &project.volumes),
        ("secrets", &project.secrets),
        ("configs", &project.configs),
    ] {
        if !tables.is_empty() {
            files.push((
                format!("00-{kind}.toml"),
                toml_out::file(&header(&format!("The project's {kind}")), tables),
            ));
        }
    }
    for (name, tables) in &project.services {
        let file = format!("{name}.toml");
        if files.iter().any(|(f, _)| *f == file) {
            return Err(ImportError::FileClash {
                service: name.clone(),
                file,
            });
        }
        files.push((
            file,
            toml_out::file(&header(&format!("Service {name}")), tables),
        ));
    }
    let mut dropped = project.dropped;
    dropped.sort_by(|a, b| a.scope.cmp(&b.scope).then(a.at.cmp(&b.at)));
    Ok(Import {
        source: PathBuf::from(shown),
        files,
        dropped,
        services: project.services.len(),
        services_total: project.services_total,
    })
}

/// Parse, interpolate and translate a Compose file's text.
fn translate_text(
    text: &str,
    file: &Path,
    compose_dir: &Path,
    out_dir: &Path,
    vars: &interpolate::Variables,
    subnet_pool: ipnet::Ipv4Net,
) -> Result<compose::Project, ImportError> {
    let mut doc = yaml::parse(text).map_err(|error| ImportError::Yaml {
        path: file.to_path_buf(),
        error,
    })?;
    doc.map_scalars(&mut |s, at| {
        interpolate::interpolate(s, vars).map_err(|error| ImportError::Interpolate {
            path: file.to_path_buf(),
            at,
            error,
        })
    })?;
    let cx = compose::Context {
        compose_dir,
        out_dir,
        vars,
        subnet_pool,
    };
    Ok(compose::translate(&doc, &cx))
}

/// Write the files into `dir` (created if missing); refuses to replace any existing file
/// unless `force`, checked for all before the first is written.
pub fn write(import: &Import, dir: &Path, force: bool) -> Result<(), ImportError> {
    if !force {
        for (name, _) in &import.files {
            let path = dir.join(name);
            if path.symlink_metadata().is_ok() {
                return Err(ImportError::Exists { path });
            }
        }
    }
    std::fs::create_dir_all(dir).map_err(|error| ImportError::Write {
        path: dir.to_path_buf(),
        error,
    })?;
    for (name, text) in &import.files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|error| ImportError::Write { path, error })?;
    }
    Ok(())
}

/// What could not be carried over, per Compose entry and key, then the verdict.
pub fn report(import: &Import) -> String {
    report_counting(import, "services")
}

/// The report of a Quadlet import: its entries are units, counted as containers.
pub fn quadlet_report(import: &Import) -> String {
    report_counting(import, "containers")
}

pub(crate) fn report_counting(import: &Import, counted: &str) -> String {
    let mut out = String::new();
    let mut scope = "";
    for d in &import.dropped {
        if d.scope != scope {
            scope = &d.scope;
            let _ = writeln!(out, "{scope}:");
        }
        let key = if d.key.is_empty() {
            "(whole entry)"
        } else {
            &d.key
        };
        let file = d
            .file
            .clone()
            .unwrap_or_else(|| import.source.display().to_string());
        let _ = writeln!(
            out,
            "  {key} ({file}:{}:{}): not carried over: {}",
            d.at.line, d.at.column, d.reason
        );
    }
    if import.dropped.is_empty() {
        let _ = writeln!(
            out,
            "import complete: {} of {} {counted}, every key carried over",
            import.services, import.services_total
        );
    } else {
        let _ = writeln!(
            out,
            "import incomplete: {} of {} {counted}, {} not carried over (listed above)",
            import.services,
            import.services_total,
            import.dropped.len()
        );
    }
    out
}
