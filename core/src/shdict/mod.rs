//! `lua_shared_dict` zones: memory shared by the master and every worker,
//! mapped (MAP_SHARED) before the workers fork, each holding one
//! dictionary ([`dict`]) behind a process-shared robust mutex.
//!
//! The zones of a configuration are listed per process in the order of
//! their directives; Lua names a zone by its index ([`with_dict`]). A reload
//! keeps a zone whose name and size are unchanged (its data with it, as
//! OpenResty does) and maps new ones.

pub mod dict;

use std::cell::RefCell;
use std::rc::Rc;

pub use dict::{Dict, Fail, Got, StoreOp, Value};

/// Bytes at the start of a mapping for the mutex (pthread_mutex_t is 40 on
/// x86-64 glibc); the dictionary follows.
const LOCK_LEN: usize = 64;

/// The smallest zone nginx accepts (`lua_shared_dict` refuses sizes below 8k).
pub const MIN_SIZE: u64 = 8192;
/// Offsets inside a zone are 32-bit.
pub const MAX_SIZE: u64 = 4 << 30;

/// One mapped zone.
pub struct Zone {
    name: String,
    size: usize,
    /// The start of the mapping, valid for `size` bytes until drop.
    base: *mut u8,
}

impl Zone {
    /// Maps a zone of `size` bytes and sets up its mutex.
    fn map(name: &str, size: usize) -> std::io::Result<Zone> {
        // SAFETY: an anonymous shared mapping: no file, no existing memory
        // is touched; the result is checked.
        let base = unsafe {
            libc::mmap(std::ptr::null_mut(), size, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1, 0)
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let zone = Zone { name: name.to_string(), size, base: base.cast() };
        // SAFETY: the mapping is fresh, zeroed and LOCK_LEN-aligned (page
        // aligned); no other process sees it before the workers fork.
        let rc = unsafe {
            let m = zone.mutex();
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            libc::pthread_mutexattr_init(&mut attr);
            libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
            // A worker that dies holding the lock cannot leave it held:
            // the next locker is told (EOWNERDEAD) and recovers the zone.
            libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
            // Locking twice in one process is an error, not a deadlock.
            libc::pthread_mutexattr_settype(&mut attr, libc::PTHREAD_MUTEX_ERRORCHECK);
            let rc = libc::pthread_mutex_init(m, &attr);
            libc::pthread_mutexattr_destroy(&mut attr);
            rc
        };
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        Ok(zone)
    }

    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        self.base.cast()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs `f` on the dictionary with the zone locked. None when the lock
    /// cannot be had (only if this process already holds it).
    pub fn with<R>(&self, f: impl FnOnce(&mut Dict<'_>) -> R) -> Option<R> {
        // SAFETY: the mutex was initialised in map() and lives in the mapping.
        let rc = unsafe { libc::pthread_mutex_lock(self.mutex()) };
        let recovered = match rc {
            0 => false,
            libc::EOWNERDEAD => {
                // SAFETY: we hold the mutex (EOWNERDEAD grants it).
                unsafe { libc::pthread_mutex_consistent(self.mutex()) };
                true
            }
            _ => return None,
        };
        struct Unlock<'z>(&'z Zone);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                // SAFETY: this process locked it above.
                unsafe { libc::pthread_mutex_unlock(self.0.mutex()) };
            }
        }
        let _unlock = Unlock(self);
        // SAFETY: the bytes after the mutex belong to the dictionary; the
        // mutex (held, and ERRORCHECK so this process cannot lock it twice)
        // makes this the only reference to them in any process until the
        // guard drops; the slice does not outlive the borrow of `self`.
        let bytes = unsafe { std::slice::from_raw_parts_mut(self.base.add(LOCK_LEN), self.size - LOCK_LEN) };
        if recovered && Dict::is_dirty(bytes) {
            crate::error_log!(
                crate::log::Level::Alert,
                None,
                "a process died while changing lua_shared_dict \"{}\": its entries are dropped",
                self.name
            );
        }
        let mut d = Dict::open(bytes);
        d.begin();
        let r = f(&mut d);
        d.end();
        Some(r)
    }
}

impl Drop for Zone {
    fn drop(&mut self) {
        // SAFETY: the mapping made in map(), unmapped once; other processes
        // keep their own mappings.
        unsafe { libc::munmap(self.base.cast(), self.size) };
    }
}

thread_local! {
    /// This process's zones, in directive order (the master and workers
    /// each run their Lua on one thread).
    static ZONES: RefCell<Vec<Rc<Zone>>> = const { RefCell::new(Vec::new()) };
}

/// A process's zones as they were (to put back when a reload fails).
pub struct Zones(Vec<Rc<Zone>>);

/// The zones now configured.
pub fn current() -> Zones {
    Zones(ZONES.with(|z| z.borrow().clone()))
}

/// Puts back zones taken with [`current`].
pub fn restore(zones: Zones) {
    ZONES.with(|z| *z.borrow_mut() = zones.0);
}

/// Makes `wanted` (name, size) this process's zones: an existing zone of
/// the same name and size is kept with its data, the others are mapped.
pub fn configure(wanted: &[(String, u64)]) -> Result<(), String> {
    let old = ZONES.with(|z| z.take());
    let mut zones = Vec::with_capacity(wanted.len());
    for (name, size) in wanted {
        let size = *size as usize;
        let zone = match old.iter().find(|z| z.name == *name && z.size == size) {
            Some(z) => z.clone(),
            None => Rc::new(Zone::map(name, size).map_err(|e| format!("lua_shared_dict \"{name}\": mmap({size}) failed ({e})"))?),
        };
        zones.push(zone);
    }
    ZONES.with(|z| *z.borrow_mut() = zones);
    Ok(())
}

/// The names of this process's zones, in order (their indexes are what Lua
/// passes to [`with_dict`]).
pub fn names() -> Vec<String> {
    ZONES.with(|z| z.borrow().iter().map(|z| z.name.clone()).collect())
}

/// Runs `f` on zone `index`'s dictionary, locked. None for no such zone.
pub fn with_dict<R>(index: usize, f: impl FnOnce(&mut Dict<'_>) -> R) -> Option<R> {
    let zone = ZONES.with(|z| z.borrow().get(index).cloned())?;
    zone.with(f)
}

/// The zone's whole size (`capacity()`).
pub fn size_of(index: usize) -> Option<usize> {
    ZONES.with(|z| z.borrow().get(index).map(|z| z.size))
}

/// The cached time in ms, the clock expiry is measured with.
pub fn now_ms() -> u64 {
    (crate::log::time::ngx_now() * 1000.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_survive_a_reconfigure_with_the_same_size() {
        configure(&[("a".into(), 64 * 1024), ("b".into(), 64 * 1024)]).unwrap();
        let set = StoreOp { add: false, replace: false, safe: false };
        with_dict(0, |d| d.store(set, b"k", Value::Number(1.0), 0, 0, 0)).unwrap().unwrap();
        with_dict(1, |d| d.store(set, b"k", Value::Number(2.0), 0, 0, 0)).unwrap().unwrap();
        configure(&[("b".into(), 128 * 1024), ("a".into(), 64 * 1024)]).unwrap();
        assert_eq!(names(), ["b", "a"]);
        let got = |i| with_dict(i, |d| d.get(b"k", false, 0).unwrap().map(|g| g.value == Value::Number(1.0))).unwrap();
        assert_eq!(got(1), Some(true), "a kept its data");
        assert_eq!(got(0), None, "b changed size: a new zone");
        assert!(with_dict(2, |_| ()).is_none());
    }

    #[test]
    fn a_process_dying_with_the_lock_leaves_it_usable() {
        configure(&[("dies".into(), 64 * 1024)]).unwrap();
        let set = StoreOp { add: false, replace: false, safe: false };
        with_dict(0, |d| d.store(set, b"before", Value::Number(1.0), 0, 0, 0)).unwrap().unwrap();
        let zone = ZONES.with(|z| z.borrow()[0].clone());
        // SAFETY: the child only locks the zone (mid-change) and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            zone.with(|d| {
                d.store(set, b"half", Value::Number(2.0), 0, 0, 0).unwrap();
                // SAFETY: ends the child at once, holding the lock.
                unsafe { libc::_exit(0) }
            });
            // SAFETY: as above (not reached).
            unsafe { libc::_exit(1) }
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        // The lock is had again; the dictionary the child left half-changed
        // starts afresh rather than being trusted.
        let r = with_dict(0, |d| (d.get(b"before", false, 0).unwrap().is_some(), d.get(b"half", false, 0).unwrap().is_some()));
        assert_eq!(r, Some((false, false)));
        with_dict(0, |d| d.store(set, b"after", Value::Number(3.0), 0, 0, 0)).unwrap().unwrap();
        assert_eq!(with_dict(0, |d| d.get(b"after", false, 0).unwrap().is_some()), Some(true));
    }

    #[test]
    fn locking_twice_in_one_process_is_refused() {
        configure(&[("x".into(), 64 * 1024)]).unwrap();
        let inner = with_dict(0, |_| with_dict(0, |_| ()));
        assert_eq!(inner, Some(None));
    }
}
