//! Processes, as nginx has them: the master opens the listening sockets
//! (`listen`), forks and supervises the workers, reloads and stops them
//! (`master`); each worker sets itself up (`worker_setup`) and runs its own event
//! loop (`worker`).

pub mod listen;
pub mod master;
pub mod worker;
pub mod worker_setup;
pub mod signals;
