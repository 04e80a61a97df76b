//! A worker's state, shared by its connection tasks (the process side,
//! crate::process::worker, makes it and runs the loops).

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use crate::conf::Config;
use crate::log::access::AccessLogs;
use crate::rt::Notify;

use super::select::ServerIndex;

/// Per-worker state shared by its connection tasks.
pub struct Worker {
    pub cfg: Arc<Config>,
    pub servers: ServerIndex,
    /// This worker's number (ngx.worker.id; None in the privileged agent)
    /// and the worker count.
    pub id: Option<usize>,
    pub count: usize,
    /// Set on graceful shutdown: connections finish their request and close.
    pub shutdown: Notify,
    /// Open connections.
    pub conns: Cell<usize>,
    /// Accept loops still running.
    pub(crate) accepting: Cell<usize>,
    /// SIGTERM: leave the loop now, whatever is in flight.
    pub(crate) exit_now: Cell<bool>,
    pub(crate) next_conn: Cell<u64>,
    pub(crate) next_request: Cell<u64>,
    pub access_logs: RefCell<AccessLogs>,
    /// The Lua VM and handlers (one per worker).
    pub lua: Option<crate::lua::handler::LuaHandlers>,
}

impl Worker {
    /// A connection number for the error log's `*N`, unique per worker
    /// (nginx numbers connections per process too).
    pub fn conn_number(&self) -> u64 {
        let n = self.next_conn.get() + 1;
        self.next_conn.set(n);
        n
    }

    /// A number for a request, unique in this worker.
    pub fn request_number(&self) -> u64 {
        let n = self.next_request.get() + 1;
        self.next_request.set(n);
        n
    }
}

