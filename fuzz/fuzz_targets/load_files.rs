//! Fuzz the desired-state loader end to end.
//!
//! Input format: the bytes are split on the separator byte 0xFF into at most 4 files
//! (`splitn(4, ..)`: the first three 0xFF bytes separate files, any later 0xFF stays in the
//! last file). 0xFF never occurs in UTF-8, so a plain TOML seed is a single file. Each part
//! is converted with `String::from_utf8_lossy` and named `desired/fN.toml` (N = 0..3).
//!
//! Checks that nothing panics while: loading, hashing every resource, formatting every
//! diagnostic (plain `Display` and `render_fancy`), and serializing the model to JSON.
#![no_main]

use std::path::PathBuf;

use berth::spec::{InputFile, hash::all_hashes, load_files};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let files: Vec<InputFile> = data
        .splitn(4, |b| *b == 0xFF)
        .enumerate()
        .map(|(i, part)| InputFile {
            path: PathBuf::from(format!("desired/f{i}.toml")),
            text: String::from_utf8_lossy(part).into_owned(),
        })
        .collect();

    let loaded = load_files(&files);

    // Hashing may legitimately return an error, but must not panic.
    let _ = all_hashes(&loaded.desired);

    for d in &loaded.diagnostics {
        let plain = d.to_string();
        assert!(!plain.is_empty());
        let fancy = d.render_fancy();
        assert!(!fancy.is_empty());
    }

    serde_json::to_string(&loaded.desired).expect("the model serializes to JSON");
});
