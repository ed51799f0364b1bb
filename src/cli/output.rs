//! Where the registry's lines and its result file go.

use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::say;

/// Where the registry's lines go: standard output, or standard error when standard output
/// carries JSON only (`--format json`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Out {
    pub(crate) json_stdout: bool,
}

impl Out {
    /// A line for the operator.
    pub(crate) fn status(self, line: std::fmt::Arguments) {
        if self.json_stdout {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
        } else {
            say(line);
        }
    }

    /// Whether the stream the status lines go to is a terminal (a progress bar is drawn).
    pub(crate) fn terminal(self) -> bool {
        if self.json_stdout {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        }
    }
}

/// `--json PATH`: opened before the registry listens, rewritten whole as each run ends and
/// at exit (a file that is not a regular one, a pipe say, is written once, at exit).
pub(crate) struct ResultFile {
    file: std::fs::File,
    pub(crate) path: PathBuf,
    pub(crate) regular: bool,
}

impl ResultFile {
    pub(crate) fn create(path: &std::path::Path) -> Result<ResultFile> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let regular = file.metadata().is_ok_and(|m| m.is_file());
        Ok(ResultFile {
            file,
            path: path.to_path_buf(),
            regular,
        })
    }

    /// Replaces the file's contents with `text`.
    pub(crate) fn write(&mut self, text: &str) -> std::io::Result<()> {
        use std::io::Seek as _;
        if self.regular {
            self.file.set_len(0)?;
            self.file.rewind()?;
        }
        self.file.write_all(text.as_bytes())?;
        self.file.write_all(b"\n")?;
        self.file.flush()
    }
}
