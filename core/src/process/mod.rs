//! Processes, as nginx has them: the master opens the listening sockets
//! (`listen`), forks and supervises the workers, reloads and stops them
//! (`master`); each worker runs its own event loop (`worker`).

pub mod listen;
pub mod master;
pub mod worker;
pub mod signals;
