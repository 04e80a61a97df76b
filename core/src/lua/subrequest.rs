//! ngx.location.capture's subrequests, as the Lua layer sees them: what
//! the FFI asks for ([`Spec`], everything owned: the parent's head, body and
//! variables copied out), what comes back ([`Outcome`]), and the worker's
//! runner that turns a spec into a future (set by the process layer, as the
//! timer spawner is: running a request's phases is the server layer's,
//! which this layer cannot name).

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

/// nginx's limit of nested subrequests (NGX_HTTP_MAX_SUBREQUESTS).
pub const MAX_DEPTH: u32 = 50;

/// One subrequest to run.
pub struct Spec {
    /// The method's name ("GET", "POST", ...).
    pub method: &'static str,
    /// `$uri` as given (not decoded, as in nginx).
    pub uri: String,
    /// `$args`: the URI's and the `args` option's, joined by `&`.
    pub args: Option<String>,
    /// The request body the subrequest sees (the `body` option or the
    /// parent's), in memory.
    pub body: Option<Vec<u8>>,
    /// A request head to parse: the parent's request line and headers
    /// (with Lua's edits), Content-Length for `body`.
    pub head: String,
    /// Variables set before the phases (copy_all_vars, then `vars`).
    pub vars: Vec<(String, String)>,
    /// share_all_vars: the subrequest's variables go back to the parent.
    pub share_vars: bool,
    /// The parent's server (its address in the configuration).
    pub server: usize,
    /// The parent's connection: fd, listening address, number, requests.
    pub fd: i32,
    pub listen: SocketAddr,
    pub conn_number: u64,
    pub conn_requests: u64,
    /// 1 for a subrequest of the main request, and so on.
    pub depth: u32,
    /// The `ctx` option: Lua keeps the table for the subrequest's id.
    pub custom_ctx: bool,
}

/// What a subrequest came to.
#[derive(Debug, Default)]
pub struct Outcome {
    pub status: u16,
    /// The response headers in order (Content-Type last), values as sent.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Content-Length nginx would report as a number (static files,
    /// `return`), -1 for none.
    pub content_length: i64,
    pub body: Vec<u8>,
    pub truncated: bool,
    /// share_all_vars: the subrequest's `set` variables at its end.
    pub vars: Option<Vec<(String, String)>>,
}

/// The future of one subrequest.
pub type Running = Pin<Box<dyn Future<Output = Outcome>>>;

type Runner = Box<dyn Fn(Spec) -> Option<(u64, Running)>>;

thread_local! {
    static RUNNER: RefCell<Option<Runner>> = const { RefCell::new(None) };
}

/// The worker's way to run subrequests: the subrequest's request number
/// (its ngx.ctx key) and its future, or None when the worker is gone.
pub fn set_runner(runner: Runner) {
    RUNNER.with(|r| *r.borrow_mut() = Some(runner));
}

/// Starts `spec` (it runs when the future is polled); None outside a worker.
pub fn start(spec: Spec) -> Option<(u64, Running)> {
    RUNNER.with(|r| r.borrow().as_ref().and_then(|run| run(spec)))
}

/// All of `futs`, run concurrently, in order.
pub async fn join_all(mut futs: Vec<Running>) -> Vec<Outcome> {
    let mut outs: Vec<Option<Outcome>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(outs.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    futs.clear();
    outs.into_iter().map(Option::unwrap_or_default).collect()
}
