//! Hears a container exit the moment it happens, instead of at the next relist.
//!
//! CRI has container events only from containerd 1.7 on; Debian's 1.6 has none, and polling
//! faster costs CPU on every idle node. A pidfd on the container's init process (Linux 5.3+)
//! becomes readable when that process exits, at no cost until then. The PID comes from the
//! runtime's verbose ContainerStatus (containerd and CRI-O both report it). If anything here fails
//! (another PID namespace, an old kernel), the relist still notices the exit, just later.

use std::io;

use tokio::io::{Interest, unix::AsyncFd};

/// Resolves when process `pid` exits (or is already gone).
pub async fn process_exit(pid: i32) -> io::Result<()> {
    let pid = rustix::process::Pid::from_raw(pid).ok_or_else(|| io::Error::other("PID 0"))?;
    let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
    // SAFETY: the OwnedFd moves into the AsyncFd, which owns it until dropped; nothing else can
    // close it or make its raw fd refer to another file meanwhile.
    #[allow(unsafe_code)]
    let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
        .map_err(|e| io::Error::other(e.to_string()))?;
    fd.readable().await?.retain_ready();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exit_of_a_child_process_is_heard() {
        let mut child = std::process::Command::new("sleep").arg("0.2").spawn().unwrap();
        let pid = child.id() as i32;
        let waited = tokio::time::timeout(std::time::Duration::from_secs(10), process_exit(pid)).await;
        assert!(waited.is_ok_and(|r| r.is_ok()));
        child.wait().unwrap();
    }
}
