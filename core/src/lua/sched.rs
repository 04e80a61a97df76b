//! The scheduler of one run: a request phase's handler or a timer's
//! callback (the entry thread) and the light threads it spawns
//! (ngx.thread.spawn), each a coroutine with its own context. As in
//! lua-nginx-module, a spawned thread runs at once until it first waits,
//! then its spawner goes on; when a thread waits (sleep, a socket, a
//! semaphore), the others run; the run ends when every thread has ended,
//! or at once when one calls ngx.exit / ngx.exec or the entry thread fails.

use std::future::Future;
use std::os::raw::c_int;
use std::pin::Pin;
use std::task::Poll;

use mlua::Thread;

use super::context::{self, Handle, Pending};
use super::handler::{LuaHandlers, Stream};
use super::resume::{resume, Resumed};
use crate::log::Level;
use crate::request::RequestCtx;
use crate::rt;

/// One coroutine of the run.
pub(super) struct Task {
    pub cx: Handle,
    pub co: Thread,
    wait: Wait,
    /// ngx.on_abort's thread: the run does not wait for it.
    background: bool,
}

impl Task {
    /// The entry thread, after its first resume (by `start`) yielded.
    pub fn entry(cx: Handle, co: Thread) -> Task {
        Task { cx, co, wait: Wait::Ready, background: false }
    }
}

/// What a task waits for before its next resume.
enum Wait {
    Ready,
    Future(Pin<Box<dyn Future<Output = ()>>>),
    /// Until one of these threads (its children) has ended.
    Join(Vec<u64>),
    /// Until the client goes away (ngx.on_abort's thread).
    Abort,
}

/// How the run ended, for its driver.
pub(super) enum Ended {
    /// Every thread ended, or one called ngx.exit / ngx.exec (recorded in
    /// the entry context's run). The entry's coroutine is back in the pool.
    Ok,
    /// The entry thread raised this error (message and traceback).
    Failed(String),
    /// The request body could not be read: the request ends with this status.
    Status(u16),
}

impl LuaHandlers {
    /// The common case, with no future made: resumes the entry thread
    /// (coroutine `co` in context `cx`, running handler number `handler`)
    /// once; Ok when that ended the run (it returned or failed), Err (the
    /// coroutine back) when it yielded, to be driven on by [`Self::drive`].
    #[inline]
    pub(super) fn start(&self, ctx: Option<&mut RequestCtx<'_>>, cx: Handle, co: Thread, handler: c_int) -> Result<Ended, Thread> {
        let done = self.done.id();
        // SAFETY: as for every resume in `drive`.
        match context::enter(cx, ctx, || unsafe { resume(co.state(), Some(handler), done) }) {
            Resumed::Done => {
                self.park(co);
                Ok(Ended::Ok)
            }
            Resumed::Failed(e) => Ok(Ended::Failed(e)),
            Resumed::Returned => Ok(Ended::Failed("the handler loop returned".into())),
            Resumed::Yielded => Err(co),
        }
    }

    /// Runs the entry task, which [`Self::start`] resumed once and which
    /// yielded, and every thread it spawns to the end of the run. `ctx` is lent to each resume (none for a timer); `stream` serves
    /// ngx.flush and ngx.req.read_body. `what` names the entry in messages.
    pub(super) async fn drive(
        &self,
        mut ctx: Option<&mut RequestCtx<'_>>,
        entry: Task,
        mut stream: Option<&mut impl Stream>,
        what: &str,
    ) -> Ended {
        let entry_cx = entry.cx;
        let done = self.done.id();
        // The entry's first resume was made by `start`: it yielded.
        let mut first = Some(Resumed::Yielded);
        // lua_check_client_abort: the client's close, watched while the
        // handler runs (a poll for POLLRDHUP: it reads nothing).
        let watch_abort = ctx.as_deref().is_some_and(|c| c.conf.lua_check_client_abort);
        let mut abort: Option<Pin<Box<dyn Future<Output = i32>>>> =
            match stream.as_deref().and_then(|s| s.client_fd()) {
                Some(fd) if watch_abort => Some(Box::pin(rt::ops::poll_readable(fd))),
                _ => None,
            };
        let mut tasks = vec![entry];
        let mut ended = None;
        'run: loop {
            let mut i = 0;
            while i < tasks.len() {
                if tasks.len() > 1 {
                    i -= self.sweep_killed(&mut tasks, entry_cx, i);
                }
                if i >= tasks.len() {
                    break;
                }
                if !matches!(tasks[i].wait, Wait::Ready) {
                    i += 1;
                    continue;
                }
                let t = &mut tasks[i];
                let res = match first.take() {
                    // The entry's first resume, made above.
                    Some(res) => res,
                    // SAFETY: `t.co` is a coroutine of this VM, new or suspended
                    // in a yield (pooled ones are only ever parked there),
                    // resumed by this run alone; `done` is a registry value
                    // `self` keeps.
                    None => context::enter(t.cx, ctx.as_deref_mut(), || unsafe { resume(t.co.state(), None, done) }),
                };
                let is_entry = t.cx == entry_cx;
                match res {
                    Resumed::Done if is_entry => {
                        let t = tasks.remove(i);
                        self.park(t.co);
                        if tasks.is_empty() {
                            ended = Some(Ended::Ok);
                        }
                        continue;
                    }
                    Resumed::Failed(e) if is_entry => {
                        ended = Some(Ended::Failed(e));
                        break 'run;
                    }
                    Resumed::Returned if is_entry => {
                        ended = Some(Ended::Failed("the handler loop returned".into()));
                        break 'run;
                    }
                    Resumed::Failed(e) => {
                        let msg = format!("lua user thread aborted: runtime error: {e}");
                        match ctx.as_deref() {
                            Some(req) => req.log(Level::Error, format_args!("{msg}")),
                            None => crate::error_log!(Level::Error, None, "{msg}"),
                        }
                        // ngx.thread.wait gets the message, the log has the traceback.
                        let message = e.split("\nstack traceback:").next().unwrap_or(&e).to_string();
                        self.end_thread(&mut tasks, i, Some(&message));
                        continue;
                    }
                    // A thread's body returned (a pooled loop never does).
                    Resumed::Done | Resumed::Returned => {
                        self.end_thread(&mut tasks, i, None);
                        continue;
                    }
                    Resumed::Yielded => {}
                }
                let cx = t.cx;
                let (pending, stops) = context::with_run(cx.raw(), |_, r| (r.pending.take(), r.exit.is_some() || r.exec.is_some())).unwrap_or((None, true));
                match pending {
                    Some(Pending::Sleep(d)) => t.wait = Wait::Future(Box::pin(rt::sleep_until(rt::now() + d))),
                    Some(Pending::Future(f)) => t.wait = Wait::Future(f),
                    Some(Pending::Join(ts)) => {
                        if ts.iter().all(|&c| context::is_live(c)) {
                            t.wait = Wait::Join(ts);
                        }
                    }
                    Some(Pending::Spawn(child)) => match self.take_thread(child) {
                        // The child runs first, then its spawner (still Ready).
                        Ok(co) => {
                            tasks.insert(i, Task { cx: child, co, wait: Wait::Ready, background: false });
                            continue;
                        }
                        Err(e) => {
                            context::close(child, |_| ());
                            ended = Some(Ended::Failed(format!("failed to spawn a thread: {e}")));
                            break 'run;
                        }
                    },
                    Some(Pending::Abort) => {
                        t.wait = Wait::Abort;
                        t.background = true;
                    }
                    Some(Pending::Client(io)) => {
                        use crate::cosocket::{ClientDone, ClientOp};
                        let done = match (stream.as_deref_mut(), ctx.as_deref_mut(), io.op) {
                            (Some(s), Some(req), ClientOp::Read { max, body, timeout }) => ClientDone::Read(s.read_raw(req, max, body, timeout).await),
                            (Some(s), Some(req), ClientOp::Write(data)) => ClientDone::Write(s.write_raw(req, &data).await),
                            (_, _, ClientOp::Read { .. }) => ClientDone::Read(Err("closed")),
                            (_, _, ClientOp::Write(_)) => ClientDone::Write(false),
                        };
                        crate::cosocket::client_done(io.sock, cx.raw(), done);
                    }
                    Some(Pending::ReadBody) => {
                        if let (Some(s), Some(req)) = (stream.as_deref_mut(), ctx.as_deref_mut()) {
                            if let Err(status) = s.read_body(req).await {
                                // As lua-nginx-module: the request ends with the
                                // error's status; its handlers stop.
                                ended = Some(Ended::Status(status));
                                break 'run;
                            }
                        }
                    }
                    Some(Pending::Flush { eof }) => {
                        if let (Some(s), Some(req)) = (stream.as_deref_mut(), ctx.as_deref_mut()) {
                            if !s.flush(req, eof).await {
                                // The client is gone: later output is dropped.
                                req.resp.eof = true;
                            }
                        }
                    }
                    // ngx.exit / ngx.exec: the run stops where it is, every
                    // thread with it; the entry context carries the outcome.
                    None if stops => {
                        if !is_entry {
                            let (exit, exec) = context::with_run(cx.raw(), |_, r| (r.exit.take(), r.exec.take())).unwrap_or_default();
                            context::with_run(entry_cx.raw(), |_, r| {
                                r.exit = exit.or(r.exit);
                                r.exec = exec.or(r.exec.take());
                            });
                        }
                        ended = Some(Ended::Ok);
                        break 'run;
                    }
                    None => {
                        let e = format!("attempt to yield from {what} without an operation to wait for");
                        if is_entry {
                            ended = Some(Ended::Failed(e));
                            break 'run;
                        }
                        self.end_thread(&mut tasks, i, Some(&e));
                        continue;
                    }
                }
                i += 1;
            }
            // The run is over when only background threads are left.
            if ended.is_some() || tasks.iter().all(|t| t.background) {
                break;
            }
            if abort.is_none() && !tasks.iter().any(|t| matches!(t.wait, Wait::Ready | Wait::Future(_))) {
                ended = Some(Ended::Failed("every thread waits for another: nothing can run".into()));
                break;
            }
            // A task left ready (after a flush or a body read done in
            // place) runs before anything is awaited.
            if tasks.iter().any(|t| matches!(t.wait, Wait::Ready)) {
                continue;
            }
            // Until at least one wait is over.
            let aborted = std::future::poll_fn(|cx| {
                if let Some(a) = abort.as_mut() {
                    if let Poll::Ready(revents) = a.as_mut().poll(cx) {
                        // Readable is not gone: only a hang-up or an error is.
                        let gone = revents < 0 || revents & i32::from(libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0;
                        if gone {
                            return Poll::Ready(true);
                        }
                        abort = None;
                    }
                }
                let mut any = false;
                for t in tasks.iter_mut() {
                    if let Wait::Future(f) = &mut t.wait {
                        if f.as_mut().poll(cx).is_ready() {
                            t.wait = Wait::Ready;
                            any = true;
                        }
                    }
                }
                if any {
                    Poll::Ready(false)
                } else {
                    Poll::Pending
                }
            })
            .await;
            if aborted {
                abort = None;
                match tasks.iter_mut().find(|t| matches!(t.wait, Wait::Abort)) {
                    // ngx.on_abort's callback runs now, as a thread of the run.
                    Some(t) => {
                        t.wait = Wait::Ready;
                        t.background = false;
                    }
                    // No callback: the request ends here (nginx logs 499).
                    None => {
                        ended = Some(Ended::Status(499));
                        break;
                    }
                }
            }
        }
        // What is left is aborted: its waits are dropped (cancelling their
        // I/O), its coroutines are not reused.
        for t in tasks.drain(..) {
            if t.cx != entry_cx {
                self.thread_end(t.cx, None);
                context::close(t.cx, |_| ());
            }
        }
        ended.unwrap_or(Ended::Ok)
    }

    /// ngx.thread.kill: drops the killed threads; returns how many of them
    /// were before index `before`.
    fn sweep_killed(&self, tasks: &mut Vec<Task>, entry: Handle, before: usize) -> usize {
        let (mut k, mut orig, mut shift) = (0, 0, 0);
        while k < tasks.len() {
            if tasks[k].cx != entry && context::is_killed(tasks[k].cx) {
                self.end_thread(tasks, k, None);
                if orig < before {
                    shift += 1;
                }
            } else {
                k += 1;
            }
            orig += 1;
        }
        shift
    }

    /// Ends the thread `tasks[i]`: Lua learns its outcome (an error, or it
    /// was killed), threads waiting for it become ready, its context closes.
    fn end_thread(&self, tasks: &mut Vec<Task>, i: usize, error: Option<&str>) {
        let t = tasks.remove(i);
        self.thread_end(t.cx, error);
        let raw = t.cx.raw();
        context::close(t.cx, |_| ());
        for w in tasks.iter_mut() {
            if matches!(&w.wait, Wait::Join(ts) if ts.contains(&raw)) {
                w.wait = Wait::Ready;
            }
        }
    }

    /// Tells halo.runner that thread `cx` ended (with `error` if it failed).
    fn thread_end(&self, cx: Handle, error: Option<&str>) {
        if let Err(e) = self.thread_ended.call::<()>((cx.key(), error)) {
            crate::error_log!(Level::Alert, None, "ending a light thread failed: {e}");
        }
    }

    /// The coroutine ngx.thread.spawn made for context `cx`.
    fn take_thread(&self, cx: Handle) -> mlua::Result<Thread> {
        self.take_thread.call::<Thread>(cx.key())
    }
}
