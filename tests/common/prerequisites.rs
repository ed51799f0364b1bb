//! Programs some tests need beyond the toolchain (iptables, tmux): installed on demand where
//! this process may, and a loud marker for a test that cannot run.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use super::netns_unavailable;

/// Prints the loud marker of a test that did not run, and why: written to the standard error
/// itself, not through `eprintln!`, which the test harness captures and shows only for a
/// failed test, so that the marker is in the output of a passing run too.
pub fn say_skipped(test: &str, why: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {test}: {why}. It did NOT run. ***\n"
    );
}

/// Serializes installs: the tests of one binary run in parallel threads.
static INSTALLS: Mutex<()> = Mutex::new(());

/// Makes `program` available, installing Debian's `package` with apt-get when it is missing
/// and this process may (root, apt-get present): the README's test command then passes on a
/// fresh machine of our kind. `Err` says why it is still missing.
pub fn ensure_command(program: &str, package: &str) -> Result<(), String> {
    ensure(&format!("`{program}`"), package, || {
        present_program(program)
    })
}

/// Makes the Python module `module` importable by `python3`, installing Debian's `package`
/// as [`ensure_command`] does, or, where `python3` on the PATH is not Debian's (a pyenv
/// Python, as on our machines) and so cannot see Debian's package, `module` from PyPI with
/// that Python's pip. `Err` says why it is still missing.
pub fn ensure_python_module(module: &str, package: &str) -> Result<(), String> {
    ensure_command("python3", "python3")?;
    let importable = || {
        Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let debian = ensure(&format!("python3's `{module}`"), package, importable);
    if debian.is_ok() {
        return debian;
    }
    let _guard = INSTALLS.lock().unwrap_or_else(|e| e.into_inner());
    if importable() {
        return Ok(());
    }
    eprintln!("installing `{module}` from PyPI for `python3` (not Debian's Python) with pip");
    let _ = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", module])
        .stdout(Stdio::null())
        .status();
    if importable() {
        Ok(())
    } else {
        debian.map_err(|why| format!("{why}; `python3 -m pip install {module}` did not either"))
    }
}

/// `what` is there once `present` says so, installing `package` first if it is missing.
fn ensure(what: &str, package: &str, present: impl Fn() -> bool) -> Result<(), String> {
    let _guard = INSTALLS.lock().unwrap_or_else(|e| e.into_inner());
    if present() {
        return Ok(());
    }
    if netns_unavailable().is_some() || !present_program("apt-get") {
        return Err(format!(
            "{what} is missing and cannot be installed here (needs root and apt-get; \
             install Debian's `{package}`)"
        ));
    }
    eprintln!("installing Debian's `{package}` for the tests that need {what} (apt-get)");
    let install = || {
        Command::new("apt-get")
            .args([
                "-o",
                "DPkg::Lock::Timeout=300",
                "install",
                "-y",
                "-qq",
                package,
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    // A fresh machine may have no package lists yet: update once, then try again.
    if !install() {
        let _ = Command::new("apt-get")
            .args(["-o", "DPkg::Lock::Timeout=300", "update", "-qq"])
            .stdout(Stdio::null())
            .status();
        install();
    }
    if present() {
        Ok(())
    } else {
        Err(format!(
            "{what} is missing and `apt-get install {package}` did not provide it"
        ))
    }
}

/// Whether `program` is on the PATH.
fn present_program(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
