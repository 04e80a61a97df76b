//! The hot ngx API three ways in one VM, on a live request context (a
//! config loaded as the server loads it, a parsed request, the server's
//! LuaHandlers VM, a content-phase Lua context entered as a handler's):
//!
//! - ffi: lualib's FFI (lua-resty-core style), the VM's `ngx`;
//! - cfunction: the lua_CFunction twin (`lua_api_mode cfunction`'s `ngx`,
//!   core/src/lua/capi/);
//! - closure: an mlua closure over the same safe Rust function (for the
//!   APIs where one is written here; `-` otherwise).
//!
//! Each is a loop of 1000 calls, measured compiled (JIT on, warmed up past
//! the hot counters) and interpreted (`jit.off()` for the run). Prints one
//! table of ns per call and the ratios. `cargo bench --bench api`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use criterion::Criterion;
use halo_core::conf::{build, Config};
use halo_core::ffi;
use halo_core::http::request::{parse_request, Limits};
use halo_core::lua::context::{self, Kind, Phase};
use halo_core::lua::handler::LuaHandlers;
use halo_core::lua::mlua::{self, Function, Lua, Table, Value};
use halo_core::request::ConnInfo;
use halo_core::request::RequestCtx;

/// Calls per loop.
const N: usize = 1000;

/// The request every call sees.
const REQUEST: &[u8] = b"GET /bench/path?a=1&b=2&c=hello HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\nX-Foo: bar\r\n\r\n";

/// (name, loop body, whether an mlua closure variant exists). `s`
/// accumulates results; `d` is ngx.shared.bench.
const APIS: &[(&str, &str, bool)] = &[
    ("ngx.var.uri", "s = s + #ngx.var.uri", true),
    ("ngx.var.x = v", "ngx.var.bench_v = 'x'", true),
    ("ngx.req.get_method", "s = s + #ngx.req.get_method()", true),
    ("ngx.req.get_headers", "s = s + #ngx.req.get_headers()['x-foo']", false),
    ("ngx.req.get_uri_args", "s = s + #ngx.req.get_uri_args().c", false),
    ("ngx.header.X", "s = s + #ngx.header['X-Bench']", true),
    ("ngx.header.X = v", "ngx.header['X-Bench'] = 'v'", false),
    ("ngx.status", "s = s + ngx.status", false),
    ("ngx.status = n", "ngx.status = 200", false),
    ("ngx.ctx", "s = s + ngx.ctx.n", false),
    ("ngx.say", "ngx.say('hello')", true),
    ("ngx.print", "ngx.print('hello')", false),
    ("DICT:get", "s = s + #d:get('k')", true),
    ("DICT:set", "d:set('k', 'a value of some length')", true),
    ("DICT:incr", "s = s + d:incr('n', 1)", true),
    ("ngx.re.match", "s = s + #ngx.re.match('hello 12345 world', '[0-9]+', 'jo')[0]", false),
    ("ngx.re.find", "s = s + ngx.re.find('hello 12345 world', '[0-9]+', 'jo')", true),
    ("ngx.re.gsub", "s = s + #ngx.re.gsub('hello 12345 world', '[0-9]', 'x', 'jo')", false),
    ("ngx.time", "s = s + ngx.time()", true),
    ("ngx.now", "s = s + ngx.now()", true),
    ("ngx.escape_uri", "s = s + #ngx.escape_uri('a b/c?d')", true),
    ("ngx.encode_base64", "s = s + #ngx.encode_base64('hello world')", true),
    ("ngx.md5", "s = s + #ngx.md5('hello world')", true),
];

const VARIANTS: [&str; 3] = ["ffi", "cfunction", "closure"];

/// The server's configuration, loaded from a file as `halo` loads it.
fn config() -> Config {
    let dir = std::env::temp_dir().join(format!("halo-bench-api-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("conf")).unwrap();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let conf = dir.join("conf/nginx.conf");
    std::fs::write(
        &conf,
        "master_process off;\nerror_log logs/error.log;\nevents {}\nhttp {\n    lua_shared_dict bench 1m;\n    server { listen 127.0.0.1:8080; }\n}\n",
    )
    .unwrap();
    build::load(&dir, &conf, "").unwrap()
}

/// A string result lent by the core, as a Lua string.
fn lent(lua: &Lua, v: ffi::Lent) -> mlua::Result<mlua::String> {
    // SAFETY: no API call ran since the call that lent it.
    lua.create_string(unsafe { v.bytes() })
}

/// The closure variant's `ngx`: mlua closures over the safe functions the
/// other two bindings wrap, for the APIs marked in [`APIS`].
fn closure_ngx(lua: &Lua) -> mlua::Result<Table> {
    let r = context::current_request;
    let t = lua.create_table()?;
    let var = lua.create_table()?;
    let mt = lua.create_table()?;
    mt.set("__index", lua.create_function(move |lua, (_, name): (Value, mlua::String)| {
        ffi::request::get_var(r(), &name.as_bytes()).ok().map(|v| lent(lua, v)).transpose()
    })?)?;
    mt.set("__newindex", lua.create_function(move |_, (_, name, v): (Value, mlua::String, mlua::String)| {
        Ok(ffi::request::set_var(r(), &name.as_bytes(), &v.as_bytes()))
    })?)?;
    var.set_metatable(Some(mt))?;
    t.set("var", var)?;
    let req = lua.create_table()?;
    req.set("get_method", lua.create_function(move |lua, ()| ffi::request::get_method(r()).ok().map(|m| lent(lua, m)).transpose())?)?;
    t.set("req", req)?;
    let header = lua.create_table()?;
    let mt = lua.create_table()?;
    mt.set("__index", lua.create_function(move |lua, (_, name): (Value, mlua::String)| {
        ffi::request::get_resp_header(r(), &name.as_bytes()).ok().map(|v| lent(lua, v)).transpose()
    })?)?;
    header.set_metatable(Some(mt))?;
    t.set("header", header)?;
    t.set("say", lua.create_function(move |_, s: mlua::String| {
        ffi::request::write(r(), &s.as_bytes());
        Ok(ffi::request::write(r(), b"\n"))
    })?)?;
    t.set("time", lua.create_function(|_, ()| Ok(ffi::time::halo_ffi_time_time()))?)?;
    t.set("now", lua.create_function(|_, ()| Ok(ffi::time::halo_ffi_time_now()))?)?;
    t.set("escape_uri", lua.create_function(|lua, s: mlua::String| {
        let mut out = Vec::new();
        halo_core::api::uri::escape_into(&s.as_bytes(), halo_core::api::uri::Escape::UriComponent, &mut out);
        lua.create_string(out)
    })?)?;
    t.set("encode_base64", lua.create_function(|lua, s: mlua::String| {
        let s = s.as_bytes();
        let mut out = vec![0; halo_core::api::base64::encoded_len(s.len(), true)];
        let n = halo_core::api::base64::encode_to(&s, halo_core::api::base64::Alpha::Standard, true, &mut out).unwrap_or(0);
        lua.create_string(&out[..n])
    })?)?;
    t.set("md5", lua.create_function(|lua, s: mlua::String| {
        let mut hex = [0u8; 32];
        halo_core::api::digest::hex_to(&halo_core::api::digest::md5(&s.as_bytes()), &mut hex);
        lua.create_string(hex)
    })?)?;
    let re = lua.create_table()?;
    re.set("find", lua.create_function(|_, (subj, pat): (mlua::String, mlua::String)| {
        let Ok((id, _)) = ffi::regex::compile(&pat.as_bytes(), 0) else { return Ok((None, None)) };
        let mut caps = [0; 2];
        match ffi::regex::exec(id, &subj.as_bytes(), 0, &mut caps) {
            n if n > 0 => Ok((Some(caps[0] + 1), Some(caps[1]))),
            _ => Ok((None, None)),
        }
    })?)?;
    t.set("re", re)?;
    let methods = lua.create_table()?;
    methods.set("get", lua.create_function(|lua, (_, key): (Value, mlua::String)| match ffi::shdict::get(0, &key.as_bytes(), false) {
        Ok(Some(g)) => match g.value {
            ffi::shdict::Out::String(s) => Ok(Value::String(lent(lua, s)?)),
            ffi::shdict::Out::Number(n) => Ok(Value::Number(n)),
            ffi::shdict::Out::Boolean(b) => Ok(Value::Boolean(b)),
            ffi::shdict::Out::Nil => Ok(Value::Nil),
        },
        _ => Ok(Value::Nil),
    })?)?;
    methods.set("set", lua.create_function(|_, (_, key, v): (Value, mlua::String, mlua::String)| {
        Ok(ffi::shdict::store(0, 0, &key.as_bytes(), halo_core::shdict::Value::String(&v.as_bytes()), 0.0, 0).0 == ffi::OK)
    })?)?;
    methods.set("incr", lua.create_function(|_, (_, key, by): (Value, mlua::String, f64)| {
        Ok(ffi::shdict::incr(0, &key.as_bytes(), by, None, 0.0).ok().map(|(n, _)| n))
    })?)?;
    let dict = lua.create_table()?;
    let mt = lua.create_table()?;
    mt.set("__index", methods)?;
    dict.set_metatable(Some(mt))?;
    let shared = lua.create_table()?;
    shared.set("bench", dict)?;
    t.set("shared", shared)?;
    Ok(t)
}

/// The loop of `body` against the `ngx` given.
fn looper(lua: &Lua, ngx: &Table, body: &str) -> Function {
    let src = format!("local ngx = ...\nlocal d = ngx.shared.bench\nreturn function() local s = 0 for i = 1, {N} do {body} end return s end");
    lua.load(src).call(ngx).unwrap()
}

/// Best ns per call, by (api, variant, compiled).
type Results = RefCell<BTreeMap<(usize, usize, bool), f64>>;

fn api(c: &mut Criterion) {
    halo_core::shdict::configure(&[("bench".into(), 1 << 20)]).unwrap();
    let cfg = config();
    let handlers = LuaHandlers::new(&cfg).unwrap();
    let lua = handlers.vm();
    let server = &cfg.http.servers[0];
    let (req, _) = parse_request(REQUEST, &Limits::default()).unwrap().unwrap();
    let conn = ConnInfo::new(-1, "127.0.0.1:8080".parse().unwrap(), 1);
    let mut ctx = RequestCtx::new(&req, &conn, server, REQUEST.len() as u64);
    ctx.set_vars.push(("bench_v".into(), String::new()));
    let cx = context::open(Kind::Request(Phase::Content), |_| {});
    let ngxs = [lua.globals().get::<Table>("ngx").unwrap(), halo_core::lua::capi::ngx_table(lua).unwrap(), closure_ngx(lua).unwrap()];
    let setup = "ngx.header['X-Bench'] = 'v' ngx.ctx.n = 1 ngx.shared.bench:set('k', 'a value of some length') ngx.shared.bench:set('n', 0)";
    context::enter(cx, Some(&mut ctx), || lua.load(setup).exec()).unwrap();

    let results: Results = RefCell::default();
    let jit: Table = lua.globals().get("jit").unwrap();
    for compiled in [true, false] {
        let mode = if compiled { "on" } else { "off" };
        jit.get::<Function>(mode).unwrap().call::<()>(()).unwrap();
        jit.get::<Function>("flush").unwrap().call::<()>(()).unwrap();
        let mut g = c.benchmark_group(if compiled { "api_compiled_x1000" } else { "api_interpreted_x1000" });
        g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
        for (a, &(name, body, has_closure)) in APIS.iter().enumerate() {
            for (v, variant) in VARIANTS.iter().enumerate() {
                if v == 2 && !has_closure {
                    continue;
                }
                let f = looper(lua, &ngxs[v], body);
                let mut call = || {
                    let r = context::enter(cx, Some(&mut ctx), || f.call::<f64>(()));
                    // ngx.say's output, dropped as the response would send
                    // it; the head counts as not sent, so the header and
                    // status setters keep working (no error log line).
                    ctx.resp.out.clear();
                    ctx.resp.headers_sent = false;
                    r.unwrap_or_else(|e| panic!("{name} ({variant}): {e}"))
                };
                // Past the JIT's hot counters, so the loop is compiled.
                for _ in 0..100 {
                    call();
                }
                g.bench_function(format!("{name}/{variant}"), |b| {
                    b.iter_custom(|iters| {
                        let t = Instant::now();
                        for _ in 0..iters {
                            call();
                        }
                        let e = t.elapsed();
                        let per = e.as_secs_f64() * 1e9 / (iters as f64 * N as f64);
                        let mut r = results.borrow_mut();
                        let best = r.entry((a, v, compiled)).or_insert(f64::MAX);
                        *best = best.min(per);
                        e
                    })
                });
            }
        }
        g.finish();
    }
    jit.get::<Function>("on").unwrap().call::<()>(()).unwrap();
    context::close(cx, |_| ());
    print_table(&results.borrow());
}

/// One table: ns per call for each variant, compiled then interpreted, and
/// how many times faster FFI is than the twin (compiled) and the twin than
/// FFI (interpreted).
fn print_table(r: &BTreeMap<(usize, usize, bool), f64>) {
    let ns = |a, v, c| r.get(&(a, v, c)).map_or("-".to_owned(), |n| format!("{n:.1}"));
    let ratio = |a, x, y, c| match (r.get(&(a, x, c)), r.get(&(a, y, c))) {
        (Some(x), Some(y)) => format!("{:.1}x", x / y),
        _ => "-".to_owned(),
    };
    println!("\nns per call (best of the samples), 1000 calls per loop, live request context");
    println!(
        "| API | ffi jit | cfunction jit | closure jit | ffi gain jit | ffi interp | cfunction interp | closure interp | cfunction gain interp |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (a, (name, _, _)) in APIS.iter().enumerate() {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} |",
            ns(a, 0, true),
            ns(a, 1, true),
            ns(a, 2, true),
            ratio(a, 1, 0, true),
            ns(a, 0, false),
            ns(a, 1, false),
            ns(a, 2, false),
            ratio(a, 0, 1, false),
        );
    }
    println!("ffi gain: cfunction ns / ffi ns; cfunction gain: ffi ns / cfunction ns (above 1x: that one is faster)");
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    api(&mut c);
    c.final_summary();
}
