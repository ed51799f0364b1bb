//! Start-up: the ring, the checks that the kernel can run it, and the loop thread's core.

use io_uring::{IoUring, Probe, opcode};

use super::DriverError;
use crate::limits::{RING_COMPLETION_ENTRIES_MAX, RING_SUBMISSION_ENTRIES};

/// The oldest kernel with every operation and flag the driver uses (multishot accept).
const KERNEL_REQUIRED: (u32, u32) = (5, 19);

/// The kernel release, e.g. "6.1.0-13-amd64", or "unknown".
pub(crate) fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|text| text.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Major and minor version of a release string, if it parses.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Creates the ring and checks it supports every operation the driver submits.
pub(crate) fn ring(max_connections: usize) -> Result<IoUring, DriverError> {
    let kernel = kernel_release();
    if let Some(version) = kernel_version(&kernel)
        && version < KERNEL_REQUIRED
    {
        return Err(DriverError::KernelTooOld { kernel });
    }
    // Room for a receive and a send per connection plus the listener and console, so the
    // completion queue does not overflow in normal operation.
    let completion_entries = u32::try_from(max_connections.saturating_mul(2).saturating_add(64))
        .unwrap_or(u32::MAX)
        .checked_next_power_of_two()
        .unwrap_or(RING_COMPLETION_ENTRIES_MAX)
        .clamp(2 * RING_SUBMISSION_ENTRIES, RING_COMPLETION_ENTRIES_MAX);
    // One thread submits and reaps (SINGLE_ISSUER), and completions' task work runs only when
    // that thread asks for completions (DEFER_TASKRUN, Linux 6.1): no interrupts of the loop
    // while it works, and batches of completions; TASKRUN_FLAG tells a non-blocking submit
    // that completions wait to be run, so it asks for them. Older kernels get a plain ring.
    let ring = IoUring::builder()
        .setup_cqsize(completion_entries)
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_taskrun_flag()
        .build(RING_SUBMISSION_ENTRIES)
        .or_else(|_| {
            IoUring::builder()
                .setup_cqsize(completion_entries)
                .build(RING_SUBMISSION_ENTRIES)
        })
        .map_err(|error| DriverError::Unavailable {
            kernel: kernel.clone(),
            error,
        })?;
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|error| DriverError::Unavailable {
            kernel: kernel.clone(),
            error,
        })?;
    let needed = [
        (opcode::AcceptMulti::CODE, "accept"),
        (opcode::Connect::CODE, "connect"),
        (opcode::Recv::CODE, "recv"),
        (opcode::Send::CODE, "send"),
        (opcode::SendMsg::CODE, "sendmsg"),
        (opcode::AsyncCancel::CODE, "async cancel"),
    ];
    for (code, operation) in needed {
        if !probe.is_supported(code) {
            return Err(DriverError::MissingOperation { kernel, operation });
        }
    }
    Ok(ring)
}

/// Ignores SIGPIPE for the process: a write to a closed socket is an error value, not death.
pub(crate) fn ignore_sigpipe() {
    // SAFETY: setting SIGPIPE's disposition to SIG_IGN installs no handler code and touches
    // no memory of ours; it only changes how the kernel treats the signal.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Pins the calling thread to `core` (or `process id % cores`); warns and stays unpinned if
/// that core does not exist. Returns the core the thread is pinned to.
pub(crate) fn pin(core: Option<usize>) -> Option<usize> {
    let Some(cores) = core_affinity::get_core_ids().filter(|cores| !cores.is_empty()) else {
        tracing::warn!("cannot list cores; loop thread not pinned");
        return None;
    };
    let chosen = core.unwrap_or_else(|| cores[std::process::id() as usize % cores.len()].id);
    let Some(core_id) = cores.into_iter().find(|candidate| candidate.id == chosen) else {
        tracing::warn!(core = chosen, "no such core; loop thread not pinned");
        return None;
    };
    if core_affinity::set_for_current(core_id) {
        tracing::debug!(core = chosen, "loop thread pinned");
        Some(chosen)
    } else {
        tracing::warn!(core = chosen, "pinning failed; loop thread not pinned");
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_parse() {
        assert_eq!(kernel_version("6.1.0-13-amd64"), Some((6, 1)));
        assert_eq!(kernel_version("5.19"), Some((5, 19)));
        assert_eq!(kernel_version("weird"), None);
        assert!(kernel_version("5.4.0").unwrap() < KERNEL_REQUIRED);
    }

    /// The probe that chooses a trunk's credit says what this kernel's release says:
    /// `TCP_RTO_MAX_MS` came with Linux 6.15.
    #[test]
    fn links_outlast_closed_windows_from_linux_6_15() {
        let release = kernel_release();
        let Some(version) = kernel_version(&release) else {
            eprintln!("*** SKIPPED: kernel release {release:?} does not parse ***");
            return;
        };
        assert_eq!(
            super::super::links_outlast_closed_windows(),
            version >= (6, 15),
            "kernel {release}"
        );
    }
}
