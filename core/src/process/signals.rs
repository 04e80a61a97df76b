//! Signal plumbing shared by master and workers: both block the signals
//! they handle and read them synchronously (the master with sigtimedwait,
//! a worker through a signalfd on its ring), so no handler ever runs
//! asynchronously.

use std::io;

/// The signals halo handles; everything else keeps its default action.
pub const HANDLED: [libc::c_int; 7] =
    [libc::SIGHUP, libc::SIGQUIT, libc::SIGTERM, libc::SIGINT, libc::SIGCHLD, libc::SIGUSR1, libc::SIGWINCH];

/// A sigset of `HANDLED`.
pub fn handled_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in HANDLED {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Block `HANDLED` for this process (inherited by forked children).
pub fn block_handled() {
    let set = handled_set();
    // SAFETY: set is a valid, initialised sigset_t.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// A non-blocking signalfd for `HANDLED` (which must be blocked).
pub fn signalfd() -> io::Result<i32> {
    let set = handled_set();
    // SAFETY: a valid sigset; -1 asks for a new fd.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Wait up to `ms` for one of `HANDLED`; the signal and the sender's pid,
/// or None on timeout.
pub fn wait(ms: u64) -> Option<(libc::c_int, i32)> {
    let set = handled_set();
    let ts = libc::timespec { tv_sec: (ms / 1000) as _, tv_nsec: ((ms % 1000) * 1_000_000) as _ };
    // SAFETY: valid set, timespec and siginfo out-pointer.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::sigtimedwait(&set, &mut info, &ts);
        (r > 0).then(|| (r, info.si_pid()))
    }
}

/// Send `sig` to `pid`.
pub fn kill(pid: i32, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(pid, sig) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
