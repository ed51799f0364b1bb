//! Files a test hands to the processes it starts (JSON results, port files, secrets, CSV),
//! removed on drop.

use std::path::PathBuf;

/// A test's output file, fresh for each run and removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn arg(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub fn temp_path(name: &str) -> TempFile {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("rel-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    TempFile(path)
}
