//! Lua contexts: one per run of a handler, per timer run and per light
//! thread, in a per-worker slab. A context's handle is its
//! slot and the slot's generation, so it stays valid across the waits of its
//! run (sleep, flush, read_body) and a handle kept past its context's end
//! (in a global, in another request) matches nothing: the FFI answers
//! `NO_REQUEST`, never another request.
//!
//! A context reaches its request only while its coroutine runs: [`enter`]
//! lends the request for one resume, [`with_request`] hands it to an FFI
//! call inside that span. Between resumes the request belongs to whoever
//! drives the run (the connection's task), so no pointer to it is kept
//! beyond a resume.

use std::cell::{Cell, RefCell};
use std::os::raw::c_int;

use crate::request::RequestCtx;

/// The request phase a handler runs in (the numbers of
/// `halo_ffi_request_get_phase`, names in lualib/resty/core/phase.lua).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Rewrite = 1,
    Access = 2,
    Content = 3,
    Log = 4,
    HeaderFilter = 5,
    BodyFilter = 6,
    Set = 7,
    /// balancer_by_lua* (9: 8 is a timer's get_phase number).
    Balancer = 9,
}

impl Phase {
    /// The directive family, for messages: `access_by_lua*`.
    pub fn directive(self) -> &'static str {
        match self {
            Phase::Rewrite => "rewrite_by_lua*",
            Phase::Access => "access_by_lua*",
            Phase::Content => "content_by_lua*",
            Phase::Log => "log_by_lua*",
            Phase::HeaderFilter => "header_filter_by_lua*",
            Phase::BodyFilter => "body_filter_by_lua*",
            Phase::Set => "set_by_lua*",
            Phase::Balancer => "balancer_by_lua*",
        }
    }

    /// Whether output, ngx.exit and ngx.sleep may be used.
    pub fn may_respond(self) -> bool {
        matches!(self, Phase::Rewrite | Phase::Access | Phase::Content)
    }

    /// Whether the status and response headers may be changed.
    pub fn may_set_headers(self) -> bool {
        self.may_respond() || self == Phase::HeaderFilter
    }
}

/// What a context is for; each kind decides which API works in it. A
/// light thread has its parent's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A handler of a request's phase.
    Request(Phase),
    /// An ngx.timer callback: no request.
    Timer,
}

/// An operation a handler registered before yielding (its FFI call
/// returned AGAIN); whoever drives the run completes it and resumes.
pub enum Pending {
    Sleep(std::time::Duration),
    /// Send the request's output so far (and end the body if `eof`).
    Flush { eof: bool },
    /// Read the request body (ngx.req.read_body).
    ReadBody,
    /// Wait for this future (a socket operation, a semaphore): it leaves
    /// its outcome where the API reads it after the resume.
    Future(std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>),
    /// ngx.thread.spawn: run this child context's thread until it first
    /// waits, then resume the spawner.
    Spawn(Handle),
    /// ngx.thread.wait: resume when one of these children has ended.
    Join(Vec<u64>),
    /// ngx.on_abort's thread: resume when the client goes away (and do
    /// not keep the run going meanwhile).
    Abort,
    /// ngx.req.socket's I/O on the client connection.
    Client(crate::cosocket::ClientIo),
}

/// One run's own state (the request's is in [`RequestCtx`]).
#[derive(Default)]
pub struct Run {
    /// The status given to ngx.exit, if it was called.
    pub exit: Option<c_int>,
    /// What the handler yielded to wait for.
    pub pending: Option<Pending>,
    /// ngx.exec's target: "uri?args" or "@name".
    pub exec: Option<String>,
    /// ngx.flush / ngx.eof send the output so far (a content handler);
    /// otherwise output waits for the end of the run.
    pub streams: bool,
    /// body_filter_by_lua's ngx.arg[1] (the chunk) and ngx.arg[2] (eof).
    pub arg_body: Vec<u8>,
    pub arg_eof: bool,
    /// set_by_lua's arguments, ngx.arg[1..].
    pub set_args: Vec<String>,
    /// Where decoded arguments live until the next call.
    pub args_scratch: crate::api::args::Args,
    /// A timer run: the timer's number and whether it fires early (the
    /// worker is stopping).
    pub timer: Option<(u32, bool)>,
    /// ngx.on_abort was called in this run.
    pub on_abort: bool,
    /// ngx.location.capture*: the subrequests' outcomes, from the end of
    /// the wait until the Lua side has read them.
    pub subrequests: Vec<super::subrequest::Outcome>,
    /// A semaphore wait's outcome (granted: true, timed out: false), left
    /// by its future for the Lua side to read after the resume.
    pub sema: Option<bool>,
}

impl Run {
    /// Back to the state of a new run, keeping the buffers' room.
    fn clear(&mut self) {
        // Every field named, so a new one cannot be forgotten here.
        let Run { exit, pending, exec, streams, arg_body, arg_eof, set_args, args_scratch, timer, on_abort, subrequests, sema } = self;
        *exit = None;
        *pending = None;
        *exec = None;
        *streams = false;
        arg_body.clear();
        *arg_eof = false;
        set_args.clear();
        args_scratch.clear();
        *timer = None;
        *on_abort = false;
        subrequests.clear();
        *sema = None;
    }
}

struct Slot {
    generation: u32,
    kind: Kind,
    run: Run,
    /// The request (a `*mut RequestCtx<'_>`, lifetime erased) while the
    /// context's coroutine runs; null otherwise.
    request: *mut (),
    /// The context that spawned this one (a light thread's parent), 0 for
    /// an entry context.
    parent: u64,
    /// The entry context of this one's run (itself for an entry context):
    /// what owns sockets, and what cleanups wait for.
    root: u64,
    /// ngx.thread.kill: whoever drives the run drops this thread.
    killed: bool,
    /// Run when the context closes (its sockets are closed then).
    on_close: Vec<Box<dyn FnOnce()>>,
}

#[derive(Default)]
struct Slab {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

thread_local! {
    static SLAB: RefCell<Slab> = RefCell::new(Slab::default());
    /// The handle of the context whose coroutine runs now (0: none).
    static CURRENT: Cell<u64> = const { Cell::new(0) };
    /// The same when that context has a request lent (0 in a timer).
    static CURRENT_REQUEST: Cell<u64> = const { Cell::new(0) };
}

/// A context's name: slot (low 32 bits) and generation (high 32, never 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handle(u64);

impl Handle {
    /// The number Lua holds (never 0).
    pub fn raw(self) -> u64 {
        self.0
    }

    /// The slot number, which names a live context among the live ones
    /// (Lua's key for a light thread).
    pub fn key(self) -> u32 {
        self.0 as u32
    }

    fn slot(raw: u64) -> usize {
        (raw & 0xffff_ffff) as usize
    }
}

/// Opens an entry context of `kind` with a cleared [`Run`], which `init`
/// fills. (A slot's state is reused in place: its buffers keep their room.)
pub fn open(kind: Kind, init: impl FnOnce(&mut Run)) -> Handle {
    SLAB.with(|s| {
        let mut s = s.borrow_mut();
        let h = alloc(&mut s, kind, 0, None);
        init(&mut s.slots[Handle::slot(h.0)].run);
        h
    })
}

/// Opens a light thread's context: a child of `parent`, of its kind, in
/// its run. None if `parent` is not live.
pub fn open_child(parent: u64) -> Option<Handle> {
    SLAB.with(|s| {
        let mut s = s.borrow_mut();
        let p = s.slots.get(Handle::slot(parent)).filter(|p| parent >> 32 == u64::from(p.generation))?;
        let (kind, root) = (p.kind, p.root);
        Some(alloc(&mut s, kind, parent, Some(root)))
    })
}

fn alloc(s: &mut Slab, kind: Kind, parent: u64, root: Option<u64>) -> Handle {
    let slot = match s.free.pop() {
        Some(i) => i,
        None => {
            s.slots.push(Slot {
                generation: 1,
                kind,
                run: Run::default(),
                request: std::ptr::null_mut(),
                parent: 0,
                root: 0,
                killed: false,
                on_close: Vec::new(),
            });
            (s.slots.len() - 1) as u32
        }
    };
    let e = &mut s.slots[slot as usize];
    let h = Handle(u64::from(e.generation) << 32 | u64::from(slot));
    e.kind = kind;
    e.parent = parent;
    e.root = root.unwrap_or(h.0);
    e.killed = false;
    h
}

/// Closes the context: `last` reads what it needs of the state, which is
/// then cleared; the handle matches nothing from now on, and the cleanups
/// registered with [`on_close`] run.
pub fn close<R>(h: Handle, last: impl FnOnce(&mut Run) -> R) -> R {
    let (r, cleanups) = SLAB.with(|s| {
        let mut s = s.borrow_mut();
        let i = Handle::slot(h.0);
        let e = &mut s.slots[i];
        debug_assert_eq!(u64::from(e.generation), h.0 >> 32, "a context is closed once");
        // Generations skip 0, so no handle is ever 0.
        e.generation = e.generation.checked_add(1).unwrap_or(1);
        let r = last(&mut e.run);
        e.run.clear();
        let cleanups = std::mem::take(&mut e.on_close);
        s.free.push(i as u32);
        (r, cleanups)
    });
    // Outside the slab's borrow: a cleanup may use contexts.
    for f in cleanups {
        f();
    }
    r
}

/// Runs `f` when the entry context of `raw`'s run closes (at once if
/// `raw` names no live context).
pub fn on_close(raw: u64, f: Box<dyn FnOnce()>) {
    let f = SLAB.with(|s| {
        let mut s = s.borrow_mut();
        let root = match s.slots.get(Handle::slot(raw)) {
            Some(e) if raw >> 32 == u64::from(e.generation) => e.root,
            _ => return Some(f),
        };
        s.slots[Handle::slot(root)].on_close.push(f);
        None
    });
    if let Some(f) = f {
        f();
    }
}

/// The entry context of the run `raw` belongs to (0 if `raw` is not live):
/// requests and timers own what their threads make.
pub fn root(raw: u64) -> u64 {
    SLAB.with(|s| {
        let s = s.borrow();
        match s.slots.get(Handle::slot(raw)) {
            Some(e) if raw >> 32 == u64::from(e.generation) => e.root,
            _ => 0,
        }
    })
}

/// The kind and the entry context of the context running now, if `raw`
/// names it.
pub fn active_root(raw: u64) -> Option<(Kind, u64)> {
    if raw == 0 || raw != current() {
        return None;
    }
    SLAB.with(|s| {
        let s = s.borrow();
        let e = s.slots.get(Handle::slot(raw))?;
        (raw >> 32 == u64::from(e.generation)).then_some((e.kind, e.root))
    })
}

/// Whether `raw` names a live context.
pub fn is_live(raw: u64) -> bool {
    root(raw) != 0
}

/// ngx.thread.kill: marks `child` for its driver to drop. False unless
/// `child` is a live thread spawned by `parent`.
pub fn kill(parent: u64, child: u64) -> bool {
    SLAB.with(|s| {
        let mut s = s.borrow_mut();
        match s.slots.get_mut(Handle::slot(child)) {
            Some(e) if child >> 32 == u64::from(e.generation) && e.parent == parent && !e.killed => {
                e.killed = true;
                true
            }
            _ => false,
        }
    })
}

/// Whether `child` is a live thread of `parent` (ngx.thread.wait may wait for it).
pub fn is_child(parent: u64, child: u64) -> bool {
    SLAB.with(|s| {
        let s = s.borrow();
        matches!(s.slots.get(Handle::slot(child)), Some(e) if child >> 32 == u64::from(e.generation) && e.parent == parent)
    })
}

/// Whether `h` was killed (ngx.thread.kill).
pub fn is_killed(h: Handle) -> bool {
    SLAB.with(|s| s.borrow().slots[Handle::slot(h.0)].killed)
}

/// Runs `f` (which resumes the context's coroutine) with `h` current and
/// `req` (none for a timer) lent to the FFI calls it makes.
pub fn enter<R>(h: Handle, req: Option<&mut RequestCtx<'_>>, f: impl FnOnce() -> R) -> R {
    let ptr = req.map_or(std::ptr::null_mut(), |req| (req as *mut RequestCtx<'_>).cast::<()>());
    let prev = SLAB.with(|s| {
        let mut s = s.borrow_mut();
        let e = &mut s.slots[Handle::slot(h.0)];
        std::mem::replace(&mut e.request, ptr)
    });
    let prev_current = CURRENT.with(|c| c.replace(h.0));
    let prev_request = CURRENT_REQUEST.with(|c| c.replace(if ptr.is_null() { 0 } else { h.0 }));
    let r = f();
    CURRENT.with(|c| c.set(prev_current));
    CURRENT_REQUEST.with(|c| c.set(prev_request));
    SLAB.with(|s| s.borrow_mut().slots[Handle::slot(h.0)].request = prev);
    r
}

/// The handle of the context running now, 0 outside one.
pub fn current() -> u64 {
    CURRENT.with(Cell::get)
}

/// The handle of the context running now if it has a request (0 in a
/// timer or outside any context).
pub fn current_request() -> u64 {
    CURRENT_REQUEST.with(Cell::get)
}

/// The context's state, if `raw` names a live context.
pub fn with_run<R>(raw: u64, f: impl FnOnce(Kind, &mut Run) -> R) -> Option<R> {
    SLAB.with(|s| {
        let mut s = s.borrow_mut();
        let e = s.slots.get_mut(Handle::slot(raw))?;
        (raw >> 32 == u64::from(e.generation)).then(|| f(e.kind, &mut e.run))
    })
}

/// The state of the context running now, if `raw` names it: for the APIs
/// that wait or spawn, which work with or without a request.
pub fn with_active<R>(raw: u64, f: impl FnOnce(Kind, &mut Run) -> R) -> Option<R> {
    if raw == 0 || raw != current() {
        return None;
    }
    with_run(raw, f)
}

/// The context's state and its request, if `raw` names a live context whose
/// coroutine runs now (an FFI call from it). None otherwise: a stale or
/// foreign handle, or one used while its context waits.
///
/// The request's lifetime is not known here; `f` works for any, so nothing
/// borrowed from the request outlives the call but through raw pointers
/// that the C API documents as valid until the caller's next call.
pub fn with_request<R>(raw: u64, f: impl for<'r, 'a> FnOnce(Kind, &mut Run, &'r mut RequestCtx<'a>) -> R) -> Option<R> {
    SLAB.with(|s| {
        let mut s = s.borrow_mut();
        let e = s.slots.get_mut(Handle::slot(raw))?;
        if raw >> 32 != u64::from(e.generation) || e.request.is_null() {
            return None;
        }
        // SAFETY: `request` is non-null only inside `enter`, whose caller
        // lent a `&mut RequestCtx` for that span and does not use it until
        // `enter` returns; FFI calls run on this thread inside the span, one
        // at a time (the slab's borrow would refuse a nested one), so this is
        // the only reference. `f` cannot keep it: it is generic over both
        // lifetimes.
        let req = unsafe { &mut *e.request.cast::<RequestCtx<'_>>() };
        Some(f(e.kind, &mut e.run, req))
    })
}

/// The request of the running context, for calls without a handle (ngx.log).
pub fn with_current_request<R>(f: impl for<'r, 'a> FnOnce(&'r RequestCtx<'a>) -> R) -> Option<R> {
    with_request(current(), |_, _, req| f(req))
}
