//! What to do about a JIT finding: one table shared by `halo jit report`
//! (runtime events) and `halo jit lint` (static findings), so the same
//! construct gets the same suggestion wherever it is found.

/// The suggestion for a call to a function the JIT does not compile
/// (a stitch, or a `return` link where stitching is impossible), by the
/// function's name as the log shows it (`string.gsub`, `halo_lua_now`).
pub fn for_callee(name: &str) -> &'static str {
    match name {
        "string.gsub" => "string.gsub is not compiled (the trace stitches around it): use ngx.re.gsub, or string.find with plain=true plus string.sub",
        "string.match" => "string.match is not compiled: use ngx.re.match (or ngx.re.find), or string.find with plain=true for fixed text",
        "string.gmatch" => "string.gmatch is not compiled: use ngx.re.gmatch, or a loop of string.find(s, pat, init, true)",
        "string.dump" | "load" | "loadstring" | "loadfile" | "dofile" => "loading code is never compiled: do it once at start-up (init_by_lua or module load time), not per request",
        "table.sort" => "table.sort is not compiled: sort once outside the hot path, or keep the table ordered as you insert",
        "table.maxn" => "table.maxn is not compiled: keep the length in a variable, or use #t on arrays",
        "table.pack" => "table.pack is not compiled: pass fixed arguments, or use select('#', ...) and select(i, ...)",
        "unpack" | "table.unpack" => "unpack stitches on this LuaJIT build: index the elements (t[1], t[2]) when the count is fixed",
        "math.fmod" => "math.fmod is not compiled: use the % operator (a % b) when signs allow",
        "math.modf" | "math.frexp" => "this math function is not compiled: use math.floor and arithmetic instead",
        "print" | "ngx.print_to_log" => "print writes to the error log and is not compiled: use ngx.log at a level that is off in production, outside hot loops",
        "error" => "error() ends the trace: keep errors off the hot path (return nil, err instead)",
        "collectgarbage" | "gcinfo" => "collectgarbage is not compiled: do not call it per request",
        "setfenv" | "getfenv" => "setfenv/getfenv are not compiled: pass tables explicitly instead of changing environments",
        "newproxy" => "newproxy is not compiled: create proxies once, outside the hot path",
        _ if name.starts_with("coroutine.") => "coroutine functions are never compiled: keep coroutine switches out of hot loops",
        _ if name.starts_with("os.") || name.starts_with("io.") => "os.* and io.* (except io.write) are not compiled: use ngx.time/ngx.now, and do I/O outside hot loops",
        _ if name.starts_with("debug.") => "debug.* is not compiled: remove debug calls from hot paths",
        _ if name.starts_with("halo_lua_") || name.starts_with("C:") => "a classic lua_CFunction is not compiled (the trace stitches): use the FFI version of the API (require \"resty.core\")",
        _ => "this function is not compiled by the JIT: call it outside hot loops, or use a compiled alternative",
    }
}

/// The suggestion for a trace abort, by the abort's lj_traceerr.h id
/// (`NYIBC`, `LLEAVE`, ...) and, for NYI bytecodes, the bytecode's name.
pub fn for_abort(id: &str, nyi: Option<&str>) -> &'static str {
    match (id, nyi) {
        ("NYIBC", Some("FNEW")) => "a closure is created here (NYI: FNEW): hoist the function out of the loop or the per-request path, and pass state as arguments",
        ("NYIBC", Some("UCLO")) => "a local captured by a closure is closed here on every iteration (NYI: UCLO): move the closure, or the captured local, out of the loop",
        ("NYIBC", Some("VARG")) => "varargs are used where the JIT needs a fixed count (NYI: VARG): use select('#', ...) and select(i, ...), or fixed parameters, instead of {...} in hot code",
        ("NYIBC", Some("ITERN" | "ISNEXT")) => "pairs()/next() is not compiled on this build: iterate arrays with a numeric for (or ipairs)",
        ("NYIBC", _) => "this bytecode is not compiled by LuaJIT 2.1: move the construct out of the hot path",
        ("LLEAVE", _) => "the loop exits during its first recorded iteration (short trip count): usually harmless; if hot, make the loop run longer or unroll it by hand",
        ("LINNER", _) => "an inner loop was reached in a root trace: fine when the inner loop compiles on its own; otherwise make the inner loop's trip count larger or flatten the nesting",
        ("LUNROLL", _) => "loop unroll limit reached: simplify the inner loop or the chain of tail calls",
        ("TRACEOV", _) => "the trace got too long (maxrecord): split the function, or raise jit.opt maxrecord",
        ("STACKOV", _) => "the trace got too deep: reduce inlined call depth or recursion in the hot path",
        ("SNAPOV", _) => "too many snapshots: split the function or raise jit.opt maxsnap",
        ("BLACKL", _) => "this code was blacklisted earlier: fix the cause of the first aborts (see the blacklist chain), then reload so the functions are compiled again",
        ("NYIRETL", _) => "a return leaves the trace's start frame through a pcall, vararg or C frame: avoid returning through pcall/xpcall in hot paths",
        ("CJITOFF", _) => "the code calls a function with jit.off: remove the jit.off, or keep that call out of hot loops",
        ("CUNROLL", _) => "call unroll limit (recursion): turn the recursion into a loop",
        ("NYIFFU", _) => "ffi.typeof on a non-cdata value is not compiled: call ffi.typeof once at load time and reuse the ctype",
        ("STORENN", _) => "a table is indexed with nil or NaN: check the key before storing",
        ("NOMM", _) => "an operation on a value without its metamethod: check the value's type",
        ("TYPEINS", _) => "a loop variable keeps changing type: keep values in a loop of one type",
        ("NYICONV" | "NYICALL" | "NOCACHE", _) => "an FFI conversion or call the JIT cannot compile: pass scalars and pointers, not structs by value",
        ("MCODEAL", _) => "the machine-code area is full and every trace was flushed: raise jit.opt maxmcode",
        ("RECERR", _) => "an error, a hook or a GC finalizer ran during recording: if it repeats at the same place, keep pcall/error and finalizers out of the hot loop",
        _ => "the JIT gave up on this trace: see the reason and keep the construct out of hot code",
    }
}

/// The suggestion for a `halo jit lint` rule.
pub fn for_lint(rule: &str, detail: &str) -> &'static str {
    match rule {
        "fnew-in-loop" => for_abort("NYIBC", Some("FNEW")),
        "uclo-in-loop" => for_abort("NYIBC", Some("UCLO")),
        "varg-in-loop" => for_abort("NYIBC", Some("VARG")),
        "pcall-in-loop" => "pcall in a hot loop: returns through it can end the trace (NYI: return to lower frame); wrap the whole loop in one pcall instead",
        "pairs-in-loop" => "pairs() inside a hot loop over an array: use a numeric for (or ipairs), which compiles to a tighter trace",
        "nyi-call" => for_callee(detail),
        _ => "not compiled by LuaJIT 2.1: move it out of hot code",
    }
}

/// The suggestion for a `halo jit report` finding that has no callee or
/// abort reason of its own, by the finding's rule (`return`,
/// `interpreter-stub`, `hot-exit`, `interpreter-share`, `flush`).
pub fn for_report(rule: &str) -> &'static str {
    match rule {
        "return" => "the trace returns to the interpreter (a return to a C or pcall frame, or a call that cannot be stitched: error(), vararg calls to NYI functions): usually fine for handler entry points; if it is a hot inner function, avoid pcall/error and NYI calls with a variable argument count there",
        "interpreter-stub" => "a side exit got too hot (or its root has maxside side traces) and now falls back to the interpreter: make the branch behind this exit predictable (same types, same path), or raise jit.opt maxside/hotexit",
        "hot-exit" => "a side exit is taken very often without a compiled side trace: make the branch predictable (stable types, fewer rare paths in the loop) or fix the aborts of the side trace",
        "interpreter-share" => "most samples here run in the interpreter: look for aborts, blacklisting or stitches at this location (or a jit.off), or the code never gets hot enough",
        "flush" => "all traces were flushed (maxtrace or maxmcode reached, or jit.flush() called): raise jit.opt maxtrace/maxmcode, and never call jit.flush on the request path",
        _ => "see the evidence and keep the construct out of hot code",
    }
}
