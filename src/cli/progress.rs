//! Pull progress: bars on a terminal (indicatif), one plain line per blob otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use berth::digest::Digest;
use berth::image::registry::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

pub fn for_stderr() -> Arc<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Arc::new(Bars {
            multi: MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
        })
    } else {
        Arc::new(Lines)
    }
}

fn short(d: &Digest) -> String {
    d.hex().chars().take(12).collect()
}

struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
}

impl Progress for Bars {
    fn blob_started(&self, digest: &Digest, size: u64) {
        let bar = self.multi.add(ProgressBar::new(size));
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(short(digest));
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(digest.clone(), bar);
        }
    }
    fn blob_advanced(&self, digest: &Digest, bytes: u64) {
        if let Ok(bars) = self.bars.lock()
            && let Some(bar) = bars.get(digest)
        {
            if bytes == 0 {
                bar.set_position(0);
            } else {
                bar.inc(bytes);
            }
        }
    }
    fn blob_done(&self, digest: &Digest, fetched: bool) {
        if let Ok(bars) = self.bars.lock()
            && let Some(bar) = bars.get(digest)
        {
            bar.finish_with_message("done");
        } else if !fetched {
            let _ = self
                .multi
                .println(format!("{} already present", short(digest)));
        }
    }
    fn retrying(&self, what: &str, attempt: u32, error: &str) {
        let _ = self
            .multi
            .println(format!("retrying {what} (attempt {attempt}): {error}"));
    }
}

struct Lines;

impl Progress for Lines {
    fn blob_started(&self, _: &Digest, _: u64) {}
    fn blob_advanced(&self, _: &Digest, _: u64) {}
    fn blob_done(&self, digest: &Digest, fetched: bool) {
        eprintln!("{} {digest}", if fetched { "fetched" } else { "present" });
    }
    fn retrying(&self, what: &str, attempt: u32, error: &str) {
        eprintln!("retrying {what} (attempt {attempt}): {error}");
    }
}
