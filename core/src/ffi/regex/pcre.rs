//! The PCRE2 side of ngx.re: patterns the regex crate cannot run
//! (look-around, back-references, atomic groups, ...) compile here, through
//! pcre2-sys (the bundled PCRE2 source, built with `cc`).

use std::fmt::Write as _;
use std::os::raw::c_int;
use std::ptr::{null_mut, NonNull};

use pcre2_sys::*;

/// A compiled PCRE2 pattern with its own match data (ovector).
pub(super) struct Pcre {
    code: NonNull<pcre2_code_8>,
    md: NonNull<pcre2_match_data_8>,
    /// Group names by group number (0, the whole match, is never named).
    pub(super) names: Vec<Option<String>>,
}

impl Drop for Pcre {
    fn drop(&mut self) {
        // SAFETY: both were made by PCRE2 for this value and are freed once.
        unsafe {
            pcre2_match_data_free_8(self.md.as_ptr());
            pcre2_code_free_8(self.code.as_ptr());
        }
    }
}

/// PCRE2's text for error `code`.
fn message(code: c_int) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its length; PCRE2 NUL-terminates within it.
    let n = unsafe { pcre2_get_error_message_8(code, buf.as_mut_ptr(), buf.len()) };
    if n < 0 {
        return format!("error {code}");
    }
    String::from_utf8_lossy(&buf[..n as usize]).into_owned()
}

fn info_u32(code: *const pcre2_code_8, what: u32) -> u32 {
    let mut v: u32 = 0;
    // SAFETY: `code` is a live compiled pattern; these items are uint32_t.
    unsafe { pcre2_pattern_info_8(code, what, (&mut v as *mut u32).cast()) };
    v
}

impl Pcre {
    /// Compiles `pat` with PCRE2 `options`; the error is PCRE2's message with
    /// the pattern, as lua-nginx-module words it.
    pub(super) fn new(pat: &[u8], options: u32) -> Result<Pcre, String> {
        let (mut err, mut off) = (0 as c_int, 0usize);
        // SAFETY: `pat` is valid for `pat.len()` bytes; the out-params are locals.
        let code = unsafe { pcre2_compile_8(pat.as_ptr(), pat.len(), options, &mut err, &mut off, null_mut()) };
        let Some(code) = NonNull::new(code) else {
            // As lua-nginx-module words it: where PCRE2 stopped, unless at the end.
            let mut msg = format!("pcre2_compile() failed: {} in \"{}\"", message(err), String::from_utf8_lossy(pat));
            if off < pat.len() {
                let _ = write!(msg, " at \"{}\"", String::from_utf8_lossy(&pat[off..]));
            }
            return Err(msg);
        };
        // SAFETY: `code` is live. JIT is a speed-up only: its failure is ignored.
        unsafe { pcre2_jit_compile_8(code.as_ptr(), PCRE2_JIT_COMPLETE) };
        // SAFETY: `code` is live.
        let md = unsafe { pcre2_match_data_create_from_pattern_8(code.as_ptr(), null_mut()) };
        let Some(md) = NonNull::new(md) else {
            // SAFETY: made above, not kept.
            unsafe { pcre2_code_free_8(code.as_ptr()) };
            return Err("pcre2_match_data_create() failed".into());
        };
        let ncap = info_u32(code.as_ptr(), PCRE2_INFO_CAPTURECOUNT) as usize;
        let mut names = vec![None; ncap + 1];
        let count = info_u32(code.as_ptr(), PCRE2_INFO_NAMECOUNT) as usize;
        let size = info_u32(code.as_ptr(), PCRE2_INFO_NAMEENTRYSIZE) as usize;
        if count > 0 && size > 2 {
            let mut table: *const u8 = std::ptr::null();
            // SAFETY: NAMETABLE is a PCRE2_SPTR; the table has `count` entries
            // of `size` bytes: a 2-byte big-endian group number, the name, NUL.
            let entries = unsafe {
                pcre2_pattern_info_8(code.as_ptr(), PCRE2_INFO_NAMETABLE, (&mut table as *mut *const u8).cast());
                std::slice::from_raw_parts(table, count * size)
            };
            for e in entries.chunks_exact(size) {
                let n = usize::from(e[0]) << 8 | usize::from(e[1]);
                let name = &e[2..];
                let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
                if let Some(slot) = names.get_mut(n) {
                    *slot = Some(String::from_utf8_lossy(name).into_owned());
                }
            }
        }
        Ok(Pcre { code, md, names })
    }

    /// Searches from `start`: Ok(Some((s, e))), Ok(None) for no match, or
    /// Err(PCRE2's negative code), e.g. when the match limit is reached.
    pub(super) fn search(&mut self, subj: &[u8], start: usize, anchored: bool, ctx: *mut pcre2_match_context_8) -> Result<Option<(usize, usize)>, c_int> {
        let opts = if anchored { PCRE2_ANCHORED } else { 0 };
        // SAFETY: `code`, `md` are live; `subj` is valid for its length and
        // `start <= subj.len()` (callers check); `ctx` is NULL or live.
        let rc = unsafe { pcre2_match_8(self.code.as_ptr(), subj.as_ptr(), subj.len(), start, opts, self.md.as_ptr(), ctx) };
        if rc == PCRE2_ERROR_NOMATCH {
            return Ok(None);
        }
        if rc < 0 {
            return Err(rc);
        }
        Ok(self.group(0))
    }

    /// Group `i` of the last successful search (None when unmatched).
    pub(super) fn group(&self, i: usize) -> Option<(usize, usize)> {
        if i >= self.names.len() {
            return None;
        }
        // SAFETY: `md` is live; its ovector has a pair per group and 0
        // (made from the pattern), and `i` is one of them.
        let (a, b) = unsafe {
            let ov = pcre2_get_ovector_pointer_8(self.md.as_ptr());
            (*ov.add(2 * i), *ov.add(2 * i + 1))
        };
        (a != usize::MAX && a <= b).then_some((a, b))
    }
}

/// The match context of every PCRE2 search: `lua_regex_match_limit` and
/// the JIT stack `ngx.re.opt("jit_stack_size", n)` asks for.
pub(super) struct MatchCtx {
    /// NULL only if PCRE2 could not allocate it (then its defaults apply).
    ctx: *mut pcre2_match_context_8,
    /// NULL: PCRE2's own 32 KiB JIT stack on the machine stack.
    stack: *mut pcre2_jit_stack_8,
}

/// PCRE2's default match limit (what `lua_regex_match_limit 0` means).
const DEFAULT_MATCH_LIMIT: u32 = 10_000_000;

impl MatchCtx {
    pub(super) fn new() -> MatchCtx {
        // SAFETY: a fresh context from PCRE2's default allocator (or NULL).
        MatchCtx { ctx: unsafe { pcre2_match_context_create_8(null_mut()) }, stack: null_mut() }
    }

    /// What to pass to pcre2_match.
    pub(super) fn ptr(&self) -> *mut pcre2_match_context_8 {
        self.ctx
    }

    /// Sets the match limit (0: PCRE2's default).
    pub(super) fn set_match_limit(&mut self, limit: u32) {
        if !self.ctx.is_null() {
            let limit = if limit == 0 { DEFAULT_MATCH_LIMIT } else { limit };
            // SAFETY: `ctx` is live.
            unsafe { pcre2_set_match_limit_8(self.ctx, limit) };
        }
    }

    /// Gives JIT-compiled searches a stack of up to `size` bytes (at least
    /// PCRE2's 32 KiB); false if it cannot be allocated.
    pub(super) fn set_jit_stack_size(&mut self, size: usize) -> bool {
        const MIN: usize = 32 * 1024;
        if self.ctx.is_null() {
            return false;
        }
        // SAFETY: a fresh stack from PCRE2's default allocator (or NULL).
        let stack = unsafe { pcre2_jit_stack_create_8(MIN, size.max(MIN), null_mut()) };
        if stack.is_null() {
            return false;
        }
        // SAFETY: `ctx` and `stack` are live; the old stack is no longer
        // assigned once the new one is, so it can be freed.
        unsafe {
            pcre2_jit_stack_assign_8(self.ctx, None, stack.cast());
            if !self.stack.is_null() {
                pcre2_jit_stack_free_8(self.stack);
            }
        }
        self.stack = stack;
        true
    }
}

impl Drop for MatchCtx {
    fn drop(&mut self) {
        // SAFETY: made by MatchCtx's methods, each freed once.
        unsafe {
            if !self.ctx.is_null() {
                pcre2_match_context_free_8(self.ctx);
            }
            if !self.stack.is_null() {
                pcre2_jit_stack_free_8(self.stack);
            }
        }
    }
}
