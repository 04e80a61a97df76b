//! The per-worker runtime: one io_uring ring (`driver`), a small
//! single-threaded executor for the connection tasks (`executor`), timers
//! kept in user space (`timer`), the I/O operations as futures (`ops`), and
//! the buffers multishot receives fill (`bufring`), socket addresses
//! (`sockaddr`).
//!
//! Everything here is thread-local: a worker is one thread, so nothing is
//! `Send` and nothing locks.

mod bufring;
pub mod driver;
pub mod executor;
pub mod ops;
pub mod timer;
pub mod notify;
pub mod deadline;
pub mod sockaddr;

pub use driver::{probe, RingError};
pub use executor::{now, run, spawn};
pub use timer::{sleep_until, Elapsed};
pub use notify::{race, Notify};
pub use deadline::Deadline;
