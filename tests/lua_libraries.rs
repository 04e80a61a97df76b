//! What OpenResty libraries do, through the real server: Debian's
//! lua-resty-lrucache (both forms) loaded unmodified from its package, and
//! the API call patterns of lua-resty-lock (add/delete on a dict with
//! ngx.sleep between tries), lua-resty-limit-traffic (an FFI struct stored
//! as a binary dict value for limit.req; incr with init and init_ttl for
//! limit.count) and a JWT library (cjson, base64url, HMAC-SHA256 from
//! libcrypto through ffi.C). The libraries without a Debian package are not
//! vendored: the handlers make the same calls they make. Each test also
//! runs on nginx + lua-nginx-module.

mod common;
use common::*;
use std::time::{Duration, Instant};

/// Debian's lua-resty-lrucache (installed by .ci/run).
const DEBIAN_LUA: &str = "/usr/share/lua/5.1";

fn server(http_extra: &str, body: &str) -> Halo {
    let conf = server_conf(body).replace("http {\n", &format!("http {{\n{http_extra}\n"));
    Prefix::new().start(&conf)
}

/// The same calls and answers on lua-resty-lrucache's two forms.
fn lrucache_behaves(http_extra: &str) {
    let h = server(
        http_extra,
        r#"
        location /t {
            content_by_lua_block {
                for _, name in ipairs({ "resty.lrucache", "resty.lrucache.pureffi" }) do
                    local lrucache = require(name)
                    local c = assert(lrucache.new(2))
                    c:set("a", 1)
                    c:set("b", { x = 2 }, 0.2)
                    c:set("c", 3)          -- evicts "a", the least recently used
                    local b = c:get("b")
                    ngx.say(name, ": ", tostring(c:get("a")), " ", b.x, " ", c:get("c"), " ", c:count(), "/", c:capacity())
                    c:delete("c")
                    ngx.say(tostring(c:get("c")), " ", c:count())
                    ngx.sleep(0.3)
                    local v, stale = c:get("b")
                    ngx.say(tostring(v), " ", stale and stale.x)
                    c:set("k1", 1) c:set("k2", 2) c:get("k1")
                    ngx.say(table.concat(c:get_keys(), ","), " ", c:delete("k2"), " ", c:delete("k2"))
                    c:flush_all()
                    ngx.say(c:count())
                end
            }
        }"#,
    );
    let want = "resty.lrucache: nil 2 3 2/2\nnil 1\nnil 2\nk1,k2 true false\n0\n";
    assert_eq!(h.get("/t").text(), format!("{want}{}", want.replace("resty.lrucache:", "resty.lrucache.pureffi:")), "{}", h.logs());
}

#[test]
fn resty_lrucache_from_its_debian_package() {
    if !std::path::Path::new(&format!("{DEBIAN_LUA}/resty/lrucache.lua")).exists() {
        panic!("lua-resty-lrucache is not installed (apt-get install lua-resty-lrucache; .ci/run does)");
    }
    lrucache_behaves(&format!("lua_package_path \"{DEBIAN_LUA}/?.lua;;\";"));
}

#[test]
fn resty_lrucache_built_in_when_no_copy_is_on_the_path() {
    // halo-only: OpenResty bundles the library; Debian's nginx does not.
    if is_nginx() {
        return;
    }
    lrucache_behaves("");
}

#[test]
fn a_lock_on_a_shared_dict_serialises_two_requests() {
    // lua-resty-lock's calls: dict:add(key, true, exptime) takes the lock,
    // ngx.sleep(step) with a growing step between tries, dict:delete frees it.
    let h = server(
        "lua_shared_dict locks 1m; lua_shared_dict log 1m;",
        r#"
        location /work {
            content_by_lua_block {
                local locks, log = ngx.shared.locks, ngx.shared.log
                local step, waited = 0.001, 0
                while true do
                    local ok, err = locks:add("res", true, 5)
                    if ok then break end
                    if err ~= "exists" then ngx.say("lock failed: ", err) return end
                    if waited > 3 then ngx.say("timeout") return end
                    ngx.sleep(step)
                    waited = waited + step
                    step = math.min(step * 2, 0.05)
                end
                -- Inside the lock: read, wait, write back (lost updates
                -- would show without it).
                local n = log:get("n") or 0
                ngx.sleep(0.1)
                log:set("n", n + 1)
                assert(locks:delete("res"))
                ngx.say("done ", n + 1)
            }
        }
        location /n { content_by_lua_block { ngx.say(ngx.shared.log:get("n")) } }"#,
    );
    let port = h.port;
    let started = Instant::now();
    let threads: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Conn::new(port);
                c.send("GET /work HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                c.read_response(false).text()
            })
        })
        .collect();
    let mut answers: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    answers.sort();
    assert_eq!(answers, ["done 1\n", "done 2\n", "done 3\n"]);
    assert!(started.elapsed() >= Duration::from_millis(300), "the three ran one after another");
    assert_eq!(h.get("/n").text(), "3\n");
}

#[test]
fn limit_traffic_patterns_on_a_shared_dict() {
    // limit.req keeps {excess, last} as an FFI struct stored as a binary
    // string; limit.count counts with incr(key, 1, 0, window).
    let h = server(
        "lua_shared_dict limits 1m;",
        r#"
        location /req {
            content_by_lua_block {
                local ffi = require "ffi"
                pcall(ffi.cdef, "struct halo_test_limit_rec { unsigned long excess; uint64_t last; };")
                local rec_t = ffi.typeof("struct halo_test_limit_rec")
                local rec_ptr_t = ffi.typeof("struct halo_test_limit_rec *")
                local rec_size = ffi.sizeof(rec_t)
                local dict = ngx.shared.limits
                local rate, burst = 1000, 2000   -- per second * 1000, as limit.req
                local out = {}
                for i = 1, 5 do
                    local now = ngx.now() * 1000
                    local excess = 0
                    local v = dict:get("ip")
                    if v then
                        assert(type(v) == "string" and #v == rec_size, "binary value kept")
                        local rec = ffi.cast(rec_ptr_t, v)
                        local elapsed = now - tonumber(rec.last)
                        excess = math.max(tonumber(rec.excess) - rate * math.abs(elapsed) / 1000 + 1000, 0)
                    end
                    if excess > burst then
                        out[#out + 1] = "reject"
                    else
                        local rec = ffi.new(rec_t)
                        rec.excess = excess
                        rec.last = now
                        dict:set("ip", ffi.string(rec, rec_size))
                        out[#out + 1] = "ok"
                    end
                end
                ngx.say(table.concat(out, " "))
            }
        }
        location /count {
            content_by_lua_block {
                local dict = ngx.shared.limits
                local out = {}
                for i = 1, 4 do
                    local n, err = dict:incr("window", 1, 0, 0.2)
                    out[#out + 1] = n > 3 and "reject" or tostring(n)
                end
                ngx.sleep(0.3)
                out[#out + 1] = tostring(dict:incr("window", 1, 0, 0.2))
                ngx.say(table.concat(out, " "), " ", dict:ttl("window") > 0)
            }
        }"#,
    );
    assert_eq!(h.get("/req").text(), "ok ok ok reject reject\n");
    assert_eq!(h.get("/count").text(), "1 2 3 reject 1 true\n");
}

#[test]
fn a_jwt_is_verified_with_cjson_base64url_and_libcrypto() {
    // jwt.io's HS256 example token, checked as lua-resty-jwt checks it.
    let h = server(
        if is_nginx() { "lua_package_cpath \"/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;;\";" } else { "" },
        r#"
        location /t {
            content_by_lua_block {
                local ffi = require "ffi"
                local cjson = require "cjson.safe"
                local b64 = require "ngx.base64"
                pcall(ffi.cdef, [[
                    typedef struct evp_md_st EVP_MD;
                    const EVP_MD *EVP_sha256(void);
                    unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len,
                        const unsigned char *d, size_t n, unsigned char *md, unsigned int *md_len);
                ]])
                local token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
                local h64, p64, s64 = token:match("^([^.]+)%.([^.]+)%.([^.]+)$")
                local header = cjson.decode(b64.decode_base64url(h64))
                local payload = cjson.decode(b64.decode_base64url(p64))
                local secret = "your-256-bit-secret"
                local md = ffi.new("unsigned char[32]")
                local md_len = ffi.new("unsigned int[1]")
                local signing = h64 .. "." .. p64
                ffi.C.HMAC(ffi.C.EVP_sha256(), secret, #secret, signing, #signing, md, md_len)
                local sig = b64.encode_base64url(ffi.string(md, md_len[0]))
                ngx.say(header.alg, " ", payload.name, " ", payload.iat, " ", sig == s64)
                local forged = b64.encode_base64url(cjson.encode({ sub = "1", admin = true }))
                ngx.say(forged ~= p64, " ", cjson.decode(b64.decode_base64url(forged)).admin)
            }
        }"#,
    );
    assert_eq!(h.get("/t").text(), "HS256 John Doe 1516239022 true\ntrue true\n", "{}", h.logs());
}

/// OpenResty's LuaJIT branch has table.nkeys / isempty / isarray (libraries
/// such as lua-resty-balancer require them); Debian's LuaJIT, which the
/// oracle links, does not.
#[test]
fn openresty_table_extensions() {
    if is_nginx() {
        return;
    }
    let h = Halo::server(
        r#"
        location = /t { content_by_lua_block {
            local nkeys, isempty, isarray = require "table.nkeys", require "table.isempty", require "table.isarray"
            ngx.say(nkeys({}), " ", nkeys({ 1, 2, a = 3 }))
            ngx.say(isempty({}), " ", isempty({ false }))
            ngx.say(isarray({}), " ", isarray({ 1, 2 }), " ", isarray({ 1, x = 2 }), " ", isarray({ [1] = 1, [3] = 3 }))
        } }"#,
    );
    assert_eq!(h.get("/t").text(), "0 3\ntrue false\ntrue true false false\n");
}
