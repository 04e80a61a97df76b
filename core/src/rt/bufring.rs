//! The worker's provided-buffer ring (IORING_REGISTER_PBUF_RING): buffers
//! the kernel fills for multishot receives ([`super::ops::RecvMulti`]). A
//! connection copies the bytes out and gives the buffer straight back, so
//! the ring only holds data between a completion and its reading.
//!
//! Why: a multishot recv stays armed on its socket, so a keep-alive request
//! costs no new recv submission and no new poll arming in the kernel.

use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

/// The buffer group id of the ring.
pub(crate) const GROUP: u16 = 0;
/// Buffers in the ring (a power of two).
const ENTRIES: u16 = 256;
/// Bytes per buffer: a request head usually fits in one.
pub(crate) const BUF_SIZE: usize = 4096;

pub(crate) struct BufRing {
    /// ENTRIES ring entries, page-aligned (mmap), shared with the kernel.
    entries: *mut BufRingEntry,
    /// The buffers themselves, BUF_SIZE each, in buffer-id order. Raw: the
    /// kernel writes into them behind Rust's back.
    bufs: *mut u8,
    /// Our copy of the ring's tail (the kernel reads the published one).
    tail: u16,
}

impl BufRing {
    /// Maps the ring, registers it with `ring` and provides every buffer.
    pub fn new(ring: &IoUring) -> io::Result<BufRing> {
        let size = usize::from(ENTRIES) * std::mem::size_of::<BufRingEntry>();
        // SAFETY: a fresh anonymous private mapping; checked below.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), size, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_ANONYMOUS | libc::MAP_PRIVATE, -1, 0) };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let bufs = Box::into_raw(vec![0u8; usize::from(ENTRIES) * BUF_SIZE].into_boxed_slice()).cast::<u8>();
        let mut r = BufRing { entries: p.cast(), bufs, tail: 0 };
        // SAFETY: the mapping is page-aligned, ENTRIES long, and lives until
        // `r` drops, which happens after the ring's fd is closed (Driver's
        // field order) or here on error.
        unsafe { ring.submitter().register_buf_ring_with_flags(p as u64, ENTRIES, GROUP, 0)? };
        for bid in 0..ENTRIES {
            r.push(bid);
        }
        r.publish();
        Ok(r)
    }

    /// The `len` bytes the kernel put in buffer `bid`.
    pub fn data(&self, bid: u16, len: usize) -> &[u8] {
        let bid = bid % ENTRIES;
        // SAFETY: inside the allocation; the kernel finished writing this
        // buffer (its completion was seen) and will not touch it again until
        // `give_back`, which needs `&mut self`.
        unsafe { std::slice::from_raw_parts(self.bufs.add(usize::from(bid) * BUF_SIZE), len.min(BUF_SIZE)) }
    }

    /// Hands buffer `bid` back to the kernel.
    pub fn give_back(&mut self, bid: u16) {
        self.push(bid);
        self.publish();
    }

    fn push(&mut self, bid: u16) {
        let slot = usize::from(self.tail & (ENTRIES - 1));
        let addr = self.bufs as u64 + (usize::from(bid) * BUF_SIZE) as u64;
        // SAFETY: slot < ENTRIES, inside the mapping; the kernel reads only
        // entries before the published tail, and this one is after it.
        let e = unsafe { &mut *self.entries.add(slot) };
        e.set_addr(addr);
        e.set_len(BUF_SIZE as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the pushed entries visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail field lives in the first entry of our mapping and
        // is only written here; the kernel reads it with acquire ordering.
        let tail = unsafe { &*(BufRingEntry::tail(self.entries).cast::<AtomicU16>()) };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        let size = usize::from(ENTRIES) * std::mem::size_of::<BufRingEntry>();
        // SAFETY: our own mapping and allocation; the kernel let go of both
        // when the ring was closed.
        unsafe {
            libc::munmap(self.entries.cast(), size);
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.bufs, usize::from(ENTRIES) * BUF_SIZE)));
        }
    }
}
