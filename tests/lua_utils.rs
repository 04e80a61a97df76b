//! OpenResty's utility API through the real binary: URI escaping, query
//! arguments, base64, digests, SQL quoting, and libcrypto reached through
//! `ffi.C` as lua-resty-string does. Expected values are RFC test vectors
//! or what nginx + lua-nginx-module answer (run with
//! `HALO_TEST_BIN=/usr/sbin/nginx` to check them against it).

mod common;

use std::time::Duration;

use common::{is_nginx, Halo};

/// One location per case: `content_by_lua_block { <lua> }` at `/<name>`.
fn server(cases: &[(&str, &str)]) -> Halo {
    let body: String = cases
        .iter()
        .map(|(name, lua)| format!("        location = /{name} {{ content_by_lua_block {{\n{lua}\n        }} }}\n"))
        .collect();
    Halo::server(&body)
}

/// GET /name: the body, asserting a 200.
fn body(h: &Halo, name: &str) -> String {
    let r = h.get(&format!("/{name}"));
    assert_eq!(r.status, 200, "/{name}: {}\n{}", r.text(), h.logs());
    r.text()
}

/// GET /name answers 500 and the error log gets `needle`.
fn fails_with(h: &Halo, name: &str, needle: &str) {
    let r = h.get(&format!("/{name}"));
    assert_eq!(r.status, 500, "/{name}: {}\n{}", r.text(), h.logs());
    assert!(h.wait_log("logs/error.log", needle, Duration::from_secs(2)), "/{name}: no {needle:?} in\n{}", h.error_log());
}

/// Lua helpers the cases share: `show` prints bytes outside printable
/// ASCII as \xNN; `dump` prints a decoded-args table sorted.
const HELPERS: &str = r#"
local function show(s)
    return (s:gsub("[^%g ]", function(c) return string.format("\\x%02x", c:byte()) end))
end
local function dump(t)
    local ks = {}
    for k in pairs(t) do ks[#ks + 1] = k end
    table.sort(ks)
    local o = {}
    for _, k in ipairs(ks) do
        local v = t[k]
        if type(v) == "table" then
            local r = {}
            for i, x in ipairs(v) do r[i] = tostring(x) end
            v = "{" .. table.concat(r, ",") .. "}"
        end
        o[#o + 1] = k .. "=" .. tostring(v)
    end
    return table.concat(o, " ")
end
"#;

fn lua(src: &str) -> String {
    format!("{HELPERS}\n{src}")
}

/// The printable ASCII range escaped by each kind (t/006-escape.t style:
/// what nginx's NGX_ESCAPE_* tables do), plus bytes outside it.
#[test]
fn escape_uri_kinds_and_unescape() {
    let escape = lua(
        r#"
        local s = {}
        for i = 0x20, 0x7e do s[#s + 1] = string.char(i) end
        s = table.concat(s)
        for t = 0, 6 do ngx.say(t, " ", ngx.escape_uri(s, t)) end
        ngx.say(ngx.escape_uri(s) == ngx.escape_uri(s, 2))
        ngx.say(ngx.escape_uri("\0\31\127\128\255", 0), " ", show(ngx.escape_uri("\0\127\255", 5)))
        ngx.say(ngx.escape_uri("a 你"), " [", ngx.escape_uri(nil), "] ", ngx.escape_uri(12.5), " ", ngx.escape_uri(true))
        "#,
    );
    let unescape = lua(
        r#"
        for _, s in ipairs{ "b%20r56+7", "a%20%e4%bd%a0", "%41%4", "%zz%", "%", "%%41", "%3f?x",
                            "%00x", "a%2Bb", "%4+", "%2%41" } do
            ngx.say(s, " -> ", show(ngx.unescape_uri(s)))
        end
        ngx.say("[", ngx.unescape_uri(nil), "] ", ngx.unescape_uri(12))
        "#,
    );
    let h = server(&[
        ("escape", &escape),
        ("unescape", &unescape),
        ("bad_type", "ngx.escape_uri('a b', 'x')"),
        ("type_range", "ngx.escape_uri('a b', 7)"),
    ]);
    let printable = concat!(
        "%20!\"%23$%25&'()*+,-./0123456789:;<=>%3F@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~",
        "\n1 %20!\"%23$%25&'()*%2B,-./0123456789:;<=>%3F@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~",
        "\n2 %20!%22%23%24%25%26'()*%2B%2C-.%2F0123456789%3A%3B%3C%3D%3E%3F%40ABCDEFGHIJKLMNOPQRSTUVWXYZ%5B%5C%5D%5E_%60abcdefghijklmnopqrstuvwxyz%7B%7C%7D~",
        "\n3 %20!%22%23$%25&%27()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~",
        "\n4 %20!%22#$%&%27()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~",
        "\n5 %20!\"#$%25&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~",
        "\n6 %20!\"#$%25&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~",
    );
    assert_eq!(
        body(&h, "escape"),
        format!("0 {printable}\ntrue\n%00%1F%7F%80%FF %00\\x7f\\xff\na%20%E4%BD%A0 [] 12.5 true\n")
    );
    assert_eq!(
        body(&h, "unescape"),
        "b%20r56+7 -> b r56 7\na%20%e4%bd%a0 -> a \\xe4\\xbd\\xa0\n%41%4 -> A%4\n%zz% -> %zz%\n% -> %\n%%41 -> %A\n\
         %3f?x -> ??x\n%00x -> \\x00x\na%2Bb -> a+b\n%4+ -> %4 \n%2%41 -> %2A\n[] 12\n"
    );
    fails_with(&h, "bad_type", "\"type\" is not a number");
    fails_with(&h, "type_range", "\"type\" 7 out of range");
}

#[test]
fn decode_args_and_max_args() {
    let decode = lua(
        r#"
        for _, s in ipairs{ "a=1&b=2&c", "a=1&a=2&a", "&&a=1&&", "=x&y=", "a=b=c", "a+b=c+d&%41=%42", "", "a=%zz" } do
            local t, err = ngx.decode_args(s)
            ngx.say("[", s, "] ", dump(t), " ", tostring(err))
        end
        for _, m in ipairs{ 1, 2, 3, 0, -1 } do
            local t, err = ngx.decode_args("a=1&b=2&c=3", m)
            ngx.say(m, ": ", dump(t), " ", tostring(err))
        end
        local t, err = ngx.decode_args("a=1&b=2&", 2)
        ngx.say("trailing: ", dump(t), " ", tostring(err))
        t, err = ngx.decode_args("a=1&&b=2", 2)
        ngx.say("empty part: ", dump(t), " ", tostring(err))
        ngx.say("number: ", dump(ngx.decode_args(12)), " string max: ", dump(ngx.decode_args("a&b", "1")))
        local many = {}
        for i = 1, 150 do many[i] = "k" .. i .. "=" .. i end
        many = table.concat(many, "&")
        for _, m in ipairs{ false, 0 } do
            local n, t, err = 0
            if m then t, err = ngx.decode_args(many, m) else t, err = ngx.decode_args(many) end
            for _ in pairs(t) do n = n + 1 end
            ngx.say("many: ", n, " ", tostring(err))
        end
        "#,
    );
    let h = server(&[
        ("decode", &decode),
        ("uri_args", &lua(
            r#"
            local t, err = ngx.req.get_uri_args(2)
            ngx.say(dump(t), " ", tostring(err))
            t, err = ngx.req.get_uri_args()
            ngx.say(dump(t), " ", tostring(err))
            local tab = { stale = "x" }
            t, err = ngx.req.get_uri_args(0, tab)
            ngx.say(t == tab, " ", dump(t), " ", tostring(err))
            "#,
        )),
        ("post_args", &lua(
            r#"
            ngx.req.read_body()
            local t, err = ngx.req.get_post_args(2)
            ngx.say(dump(t), " ", tostring(err))
            t, err = ngx.req.get_post_args(3)
            ngx.say(dump(t), " ", tostring(err))
            "#,
        )),
        ("bad_str", "ngx.decode_args({})"),
        ("bad_max", "ngx.decode_args('a=1', 'x')"),
    ]);
    assert_eq!(
        body(&h, "decode"),
        "[a=1&b=2&c] a=1 b=2 c=true nil\n[a=1&a=2&a] a={1,2,true} nil\n[&&a=1&&] a=1 nil\n[=x&y=] y= nil\n\
         [a=b=c] a=b=c nil\n[a+b=c+d&%41=%42] A=B a b=c d nil\n[]  nil\n[a=%zz] a=%zz nil\n\
         1: a=1 truncated\n2: a=1 b=2 truncated\n3: a=1 b=2 c=3 nil\n0: a=1 b=2 c=3 nil\n-1: a=1 b=2 c=3 nil\n\
         trailing: a=1 b=2 truncated\nempty part: a=1 truncated\nnumber: 12=true string max: a=true\n\
         many: 100 truncated\nmany: 150 nil\n"
    );
    let r = h.get("/uri_args?a=1&b=%20&c&a=2");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(r.text(), "a=1 b=  truncated\na={1,2} b=  c=true nil\ntrue a={1,2} b=  c=true nil\n");
    let post = |form: &str| {
        h.get_response(format!(
            "POST /post_args HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ))
    };
    let r = post("foo=3&bar=4&baz=2");
    assert_eq!(r.status, 200, "{}", h.logs());
    assert_eq!(r.text(), "bar=4 foo=3 truncated\nbar=4 baz=2 foo=3 nil\n");
    fails_with(&h, "bad_str", "bad argument #1 to 'decode_args' (string expected, got table)");
    fails_with(&h, "bad_max", "bad argument #2 to 'decode_args' (number expected, got string)");
}

#[test]
fn encode_args() {
    let encode = r#"
        for _, v in ipairs{ {a="b c"}, {a=true}, {a=false}, {a={1,"x y",true,false}}, {["a b"]="&="},
                            {a=1.5}, {a={}}, {} } do
            ngx.say("[", ngx.encode_args(v), "]")
        end
        -- Several names: any order, each part right.
        local s = ngx.encode_args({ foo = "bar baz", n = 3, flag = true, off = false })
        local parts = {}
        for p in s:gmatch("[^&]+") do parts[#parts + 1] = p end
        table.sort(parts)
        ngx.say(table.concat(parts, "|"))
        local back = ngx.decode_args(s)
        ngx.say(back.foo, " ", back.n, " ", back.flag, " ", tostring(back.off))
    "#;
    let h = server(&[
        ("encode", encode),
        ("bad_value", "ngx.encode_args({ a = print })"),
        ("bad_elem", "ngx.encode_args({ a = { {} } })"),
        ("bad_key", "ngx.encode_args({ [1] = 'x' })"),
        ("bad_arg", "ngx.encode_args('a=1')"),
        ("set_uri_args", "ngx.req.set_uri_args({ a = 'x y' }) ngx.say(ngx.var.args)"),
    ]);
    assert_eq!(
        body(&h, "encode"),
        "[a=b%20c]\n[a]\n[]\n[a=1&a=x%20y&a]\n[a%20b=%26%3D]\n[a=1.5]\n[]\n[]\nflag|foo=bar%20baz|n=3\nbar baz 3 true nil\n"
    );
    assert_eq!(body(&h, "set_uri_args"), "a=x%20y\n");
    fails_with(&h, "bad_value", "attempt to use function as query arg value");
    fails_with(&h, "bad_elem", "attempt to use table as query arg value");
    fails_with(&h, "bad_key", "attempt to use a non-string key in the \"args\" option table");
    fails_with(&h, "bad_arg", "bad argument #1 to 'encode_args' (table expected, got string)");
}

/// RFC 4648 section 10, nginx's lenient decoding, ngx.base64's url variants.
#[test]
fn base64() {
    let h = server(&[
        ("encode", r#"
            for _, s in ipairs{ "", "f", "fo", "foo", "foob", "fooba", "foobar" } do
                ngx.say(s, " ", ngx.encode_base64(s), " ", ngx.encode_base64(s, true), " ",
                        ngx.decode_base64(ngx.encode_base64(s)))
            end
            ngx.say("[", ngx.encode_base64(nil), "] ", ngx.encode_base64(123))
        "#),
        ("decode", &lua(r#"
            for _, s in ipairs{ "Zm9vYg", "Zm9vYg=", "Zm9vYg===", "Zm=vYg==", "Zh==", "+/+/",
                                "Zm9v YmFy", "Zm9vYmFy\n", "Z", "-_-_" } do
                local r = ngx.decode_base64(s)
                ngx.say("[", show(s), "] ", r and show(r) or "nil")
            end
        "#)),
        ("url", &lua(r#"
            local b64 = require "ngx.base64"
            ngx.say(b64.encode_base64url("\255\254\253\252"), " ", b64.encode_base64url("f"), " ",
                    show(b64.decode_base64url("__79_A")), " ", show(b64.decode_base64url("_w==")), " ",
                    b64.decode_base64url("Zm9vYmE"))
            ngx.say(b64.decode_base64url("+/"), " ", select(2, b64.decode_base64url("     ")), " ",
                    select(2, b64.encode_base64url(1)), " ", select(2, b64.decode_base64url(nil)))
        "#)),
        ("bad_padding_arg", "ngx.encode_base64('x', 1)"),
        ("bad_decode_arg", "ngx.decode_base64(12)"),
    ]);
    assert_eq!(
        body(&h, "encode"),
        "   \nf Zg== Zg f\nfo Zm8= Zm8 fo\nfoo Zm9v Zm9v foo\nfoob Zm9vYg== Zm9vYg foob\n\
         fooba Zm9vYmE= Zm9vYmE fooba\nfoobar Zm9vYmFy Zm9vYmFy foobar\n[] MTIz\n"
    );
    assert_eq!(
        body(&h, "decode"),
        "[Zm9vYg] foob\n[Zm9vYg=] foob\n[Zm9vYg===] foob\n[Zm=vYg==] f\n[Zh==] f\n[+/+/] \\xfb\\xff\\xbf\n\
         [Zm9v YmFy] nil\n[Zm9vYmFy\\x0a] nil\n[Z] nil\n[-_-_] nil\n"
    );
    assert_eq!(body(&h, "url"), "__79_A Zg \\xff\\xfe\\xfd\\xfc \\xff fooba\nnil invalid input must provide a string must provide a string\n");
    fails_with(&h, "bad_padding_arg", "bad no_padding: boolean expected, got number");
    fails_with(&h, "bad_decode_arg", "string argument only");
}

/// ngx.decode_base64mime came with lua-nginx-module 0.10.28; Debian's
/// 0.10.23 lacks it.
#[test]
fn decode_base64mime_skips_line_breaks() {
    if is_nginx() {
        return;
    }
    let h = server(&[(
        "mime",
        r#"
        ngx.say(ngx.decode_base64mime("T3BlblJl\r\nc3R5IGlz\nIGZ1bg=="), " ", ngx.decode_base64mime("aGVs bG8="),
                " [", ngx.decode_base64mime(""), "] ", tostring(ngx.decode_base64mime("a")))
        "#,
    )]);
    assert_eq!(body(&h, "mime"), "OpenResty is fun hello [] nil\n");
}

/// RFC 1321 A.5 (MD5), RFC 3174 (SHA-1), RFC 2202 (HMAC-SHA1), and the
/// CRC-32 check value; non-string arguments as lua-resty-core converts them.
#[test]
fn digests_and_checksums() {
    let h = server(&[
        ("digests", r#"
            local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
            for _, s in ipairs{ "", "a", "abc", "message digest", "abcdefghijklmnopqrstuvwxyz" } do
                ngx.say(ngx.md5(s), " ", hex(ngx.md5_bin(s)) == ngx.md5(s))
            end
            ngx.say(ngx.md5(nil), " ", ngx.md5(12) == ngx.md5("12"), " ", ngx.md5(true) == ngx.md5("true"))
            ngx.say(hex(ngx.sha1_bin("abc")), " ", hex(ngx.sha1_bin("")), " ", hex(ngx.sha1_bin(nil)))
            ngx.say(hex(ngx.sha1_bin("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")))
            ngx.say(hex(ngx.hmac_sha1(string.rep("\11", 20), "Hi There")))
            ngx.say(hex(ngx.hmac_sha1("Jefe", "what do ya want for nothing?")))
            ngx.say(hex(ngx.hmac_sha1(string.rep("\170", 80), "Test Using Larger Than Block-Size Key - Hash Key First")))
            ngx.say(ngx.encode_base64(ngx.hmac_sha1(1, 2)))
            ngx.say(ngx.crc32_short("123456789"), " ", ngx.crc32_long("123456789"), " ", ngx.crc32_short(""), " ",
                    ngx.crc32_long(nil), " ", ngx.crc32_short("hello"), " ", ngx.crc32_long(123) == ngx.crc32_long("123"))
        "#),
        ("bad_key", "ngx.hmac_sha1(nil, 'x')"),
        ("bad_msg", "ngx.hmac_sha1('k', {})"),
    ]);
    assert_eq!(
        body(&h, "digests"),
        "d41d8cd98f00b204e9800998ecf8427e true\n0cc175b9c0f1b6a831c399e269772661 true\n\
         900150983cd24fb0d6963f7d28e17f72 true\nf96b697d7cb7938d525a2f31aaf161d0 true\n\
         c3fcd3d76192e4007dfb496cca67e13b true\nd41d8cd98f00b204e9800998ecf8427e true true\n\
         a9993e364706816aba3e25717850c26c9cd0d89d da39a3ee5e6b4b0d3255bfef95601890afd80709 da39a3ee5e6b4b0d3255bfef95601890afd80709\n\
         84983e441c3bd26ebaae4aa1f95129e5e54670f1\nb617318655057264e28bc0b6fb378c8ef146be00\n\
         effcdf6ae5eb2fa2d27416d5f184df9c259a7c79\naa4ae5e15272d00e95705637ce8a3b55ed402112\n\
         0HXKErglmgsnQ48HUxSju4ipJ7U=\n3421780262 3421780262 0 0 907060870 true\n"
    );
    fails_with(&h, "bad_key", "bad argument #1 to 'hmac_sha1' (string expected, got nil)");
    fails_with(&h, "bad_msg", "bad argument #2 to 'hmac_sha1' (string expected, got table)");
}

#[test]
fn quote_sql_str() {
    let h = server(&[
        ("quote", &lua(r#"
            ngx.say(show(ngx.quote_sql_str("a'b\"c\\d\r\n\26e\0f\tg\8h")), " ", ngx.quote_sql_str(""), " ",
                    ngx.quote_sql_str(12), " ", ngx.quote_sql_str("\226\128\153'"))
        "#)),
        ("bad", "ngx.quote_sql_str({})"),
    ]);
    assert_eq!(body(&h, "quote"), "'a\\'b\\\"c\\\\d\\r\\n\\Ze\\0f\\tg\\bh' '' '12' '\u{2019}\\''\n");
    fails_with(&h, "bad", "bad argument #1 to 'quote_sql_str' (string expected, got table)");
}

/// lua-resty-string's way to OpenSSL: its own ffi.cdef of the libcrypto
/// API and nginx's ngx_hex_dump / ngx_atoi, called through ffi.C (the
/// calls resty/sha1.lua, resty/md5.lua, resty/sha256.lua, resty/random.lua
/// and resty/string.lua make). halo dlopens libcrypto for them.
#[test]
fn libcrypto_and_nginx_helpers_through_ffi_c() {
    let h = server(&[(
        "crypto",
        r#"
        local ffi = require "ffi"
        local C = ffi.C
        ffi.cdef[[
            typedef unsigned char u_char;
            u_char * ngx_hex_dump(u_char *dst, const u_char *src, size_t len);
            intptr_t ngx_atoi(const unsigned char *line, size_t n);

            typedef unsigned long SHA_LONG;
            typedef struct SHAstate_st {
                SHA_LONG h0, h1, h2, h3, h4;
                SHA_LONG Nl, Nh;
                SHA_LONG data[16];
                unsigned int num;
            } SHA_CTX;
            int SHA1_Init(SHA_CTX *c);
            int SHA1_Update(SHA_CTX *c, const void *data, size_t len);
            int SHA1_Final(unsigned char *md, SHA_CTX *c);

            typedef unsigned long MD5_LONG;
            typedef struct MD5state_st {
                MD5_LONG A, B, C, D;
                MD5_LONG Nl, Nh;
                MD5_LONG data[16];
                unsigned int num;
            } MD5_CTX;
            int MD5_Init(MD5_CTX *c);
            int MD5_Update(MD5_CTX *c, const void *data, size_t len);
            int MD5_Final(unsigned char *md, MD5_CTX *c);

            typedef struct SHA256state_st {
                SHA_LONG h[8];
                SHA_LONG Nl, Nh;
                SHA_LONG data[16];
                unsigned int num, md_len;
            } SHA256_CTX;
            int SHA256_Init(SHA256_CTX *c);
            int SHA256_Update(SHA256_CTX *c, const void *data, size_t len);
            int SHA256_Final(unsigned char *md, SHA256_CTX *c);

            typedef struct env_md_st EVP_MD;
            const EVP_MD *EVP_sha1(void);
            unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len,
                                const unsigned char *d, size_t n, unsigned char *md,
                                unsigned int *md_len);
            int RAND_bytes(unsigned char *buf, int num);
        ]]
        local function to_hex(s)
            local len = #s * 2
            local buf = ffi.new("unsigned char[?]", len)
            C.ngx_hex_dump(buf, s, #s)
            return ffi.string(buf, len)
        end

        local sha = ffi.new("SHA_CTX")
        local out = ffi.new("unsigned char[32]")
        assert(C.SHA1_Init(sha) == 1)
        C.SHA1_Update(sha, "ab", 2)
        C.SHA1_Update(sha, "c", 1)
        assert(C.SHA1_Final(out, sha) == 1)
        local sha1 = ffi.string(out, 20)
        ngx.say(to_hex(sha1), " ", sha1 == ngx.sha1_bin("abc"))

        local md5 = ffi.new("MD5_CTX")
        C.MD5_Init(md5)
        C.MD5_Update(md5, "message digest", 14)
        C.MD5_Final(out, md5)
        ngx.say(to_hex(ffi.string(out, 16)), " ", to_hex(ffi.string(out, 16)) == ngx.md5("message digest"))

        local s256 = ffi.new("SHA256_CTX")
        C.SHA256_Init(s256)
        C.SHA256_Update(s256, "abc", 3)
        C.SHA256_Final(out, s256)
        ngx.say(to_hex(ffi.string(out, 32)))

        local len = ffi.new("unsigned int[1]")
        C.HMAC(C.EVP_sha1(), "Jefe", 4, "what do ya want for nothing?", 28, out, len)
        ngx.say(len[0], " ", ffi.string(out, len[0]) == ngx.hmac_sha1("Jefe", "what do ya want for nothing?"))

        local rnd = ffi.new("unsigned char[16]")
        ngx.say(C.RAND_bytes(rnd, 16))
        ngx.say(tonumber(C.ngx_atoi("12345", 5)), " ", tonumber(C.ngx_atoi("12a", 3)), " ", tonumber(C.ngx_atoi("", 0)))
        "#,
    )]);
    assert_eq!(
        body(&h, "crypto"),
        "a9993e364706816aba3e25717850c26c9cd0d89d true\nf96b697d7cb7938d525a2f31aaf161d0 true\n\
         ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n20 true\n1\n12345 -1 -1\n"
    );
}
