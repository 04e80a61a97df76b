//! The contents of one zone: a hash table of entries, an LRU list, lists
//! as values, and a buddy allocator, all inside the zone's bytes and linked
//! by offsets (the mapping may sit at another address in another process).
//!
//! Everything here is safe code over `&mut [u8]`; the caller holds the
//! zone's lock. Offsets are `u32` (zones are at most 4 GiB) and 0 means
//! none: offset 0 is the header.
//!
//! The operations follow lua-nginx-module's ngx_http_lua_shdict.c: a lookup
//! moves the entry to the head of the LRU list; stores first drop up to two
//! expired entries from its tail; a store that finds no memory evicts from
//! the tail (unless `safe`) and reports `forcible`.

/// Value types, as lua-nginx-module numbers them (LUA_T* and SHDICT_TLIST).
pub const T_NIL: u8 = 0;
pub const T_BOOLEAN: u8 = 1;
pub const T_NUMBER: u8 = 3;
pub const T_STRING: u8 = 4;
pub const T_LIST: u8 = 5;

// Header fields.
const H_MAGIC: usize = 0;
const H_DIRTY: usize = 4;
const H_NBUCKETS: usize = 8;
const H_COUNT: usize = 12;
const H_LRU_HEAD: usize = 16;
const H_LRU_TAIL: usize = 20;
const H_HEAP_OFF: usize = 24;
const H_HEAP_LEN: usize = 28;
const H_FREE_BYTES: usize = 32;
const H_FREE_HEADS: usize = 40;
const HEADER_LEN: usize = H_FREE_HEADS + 4 * (MAX_ORDER + 1);
const MAGIC: u32 = 0x4841_4c4f; // "HALO"

/// Blocks are 2^MIN_ORDER (64) to 2^MAX_ORDER bytes.
const MIN_ORDER: usize = 6;
const MAX_ORDER: usize = 31;

// Every block: a tag and its order.
const B_TAG: usize = 0;
const B_ORDER: usize = 4;
const TAG_FREE: u32 = 0xf4ee_b10c;
const TAG_USED: u32 = 0x05ed_b10c;
// A free block: its free-list links.
const F_PREV: usize = 8;
const F_NEXT: usize = 12;
// An entry.
const E_HASH: usize = 8;
const E_CHAIN: usize = 12;
const E_NEWER: usize = 16;
const E_OLDER: usize = 20;
const E_EXPIRES: usize = 24;
const E_FLAGS: usize = 32;
const E_VLEN: usize = 36;
const E_KLEN: usize = 40;
const E_TYPE: usize = 42;
const E_KEY: usize = 44;
// A list node.
const N_PREV: usize = 8;
const N_NEXT: usize = 12;
const N_TYPE: usize = 16;
const N_VLEN: usize = 20;
const N_VAL: usize = 24;
// A list entry's value: head, tail, length.
const L_HEAD: usize = 0;
const L_TAIL: usize = 4;
const L_LEN: usize = 8;
const LIST_VALUE_LEN: usize = 12;

/// Evictions tried before a store gives up ("no memory"), as nginx.
const EVICT_TRIES: usize = 30;

/// A stored value, borrowed from the zone (strings) or by value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Nil,
    Boolean(bool),
    Number(f64),
    String(&'a [u8]),
}

impl Value<'_> {
    fn type_byte(&self) -> u8 {
        match self {
            Value::Nil => T_NIL,
            Value::Boolean(_) => T_BOOLEAN,
            Value::Number(_) => T_NUMBER,
            Value::String(_) => T_STRING,
        }
    }

    fn len(&self) -> usize {
        match self {
            Value::Nil => 0,
            Value::Boolean(_) => 1,
            Value::Number(_) => 8,
            Value::String(s) => s.len(),
        }
    }

    fn write(&self, out: &mut [u8]) {
        match self {
            Value::Nil => {}
            Value::Boolean(b) => out[0] = u8::from(*b),
            Value::Number(n) => out.copy_from_slice(&n.to_ne_bytes()),
            Value::String(s) => out.copy_from_slice(s),
        }
    }
}

/// What a store does (lua-resty-core's op bits: set 0, add 1, replace 2,
/// safe 4).
#[derive(Debug, Clone, Copy)]
pub struct StoreOp {
    pub add: bool,
    pub replace: bool,
    /// Never evict: fail with "no memory" instead.
    pub safe: bool,
}

/// Why an operation failed, in OpenResty's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fail {
    NoMemory,
    Exists,
    NotFound,
    NotANumber,
    NotAList,
    IsAList,
}

impl Fail {
    pub fn message(self) -> &'static std::ffi::CStr {
        match self {
            Fail::NoMemory => c"no memory",
            Fail::Exists => c"exists",
            Fail::NotFound => c"not found",
            Fail::NotANumber => c"not a number",
            Fail::NotAList => c"value not a list",
            Fail::IsAList => c"value is a list",
        }
    }
}

/// A found entry: its value (strings point into the zone) and user flags.
#[derive(Debug, Clone, Copy)]
pub struct Got<'a> {
    pub value: Value<'a>,
    pub flags: u32,
    pub stale: bool,
}

/// The bytes of a zone after its lock, as a dictionary.
pub struct Dict<'a> {
    m: &'a mut [u8],
}

fn hash(key: &[u8]) -> u32 {
    // Fixed seeds: every process of the server must hash alike.
    let h = ahash::RandomState::with_seeds(0x6861_6c6f, 0x7368_6469, 0x6374_2121, 0x5a6f_6e65).hash_one(key);
    (h ^ (h >> 32)) as u32
}

impl<'a> Dict<'a> {
    /// The dictionary in `m`, laid out fresh when it holds none (or one
    /// left half-changed by a process that died while changing it).
    pub fn open(m: &'a mut [u8]) -> Dict<'a> {
        let mut d = Dict { m };
        if d.u32(H_MAGIC) != MAGIC || d.u32(H_DIRTY) != 0 {
            d.format();
        }
        d
    }

    /// Whether a process died while changing it (the caller then formats).
    pub fn is_dirty(m: &[u8]) -> bool {
        m.len() >= HEADER_LEN && u32::from_ne_bytes(m[H_DIRTY..H_DIRTY + 4].try_into().unwrap_or_default()) != 0
    }

    /// Lays out an empty dictionary: header, buckets, then the heap.
    fn format(&mut self) {
        let len = self.m.len().min(u32::MAX as usize);
        let nbuckets = (len / 512).next_power_of_two().clamp(64, 1 << 20);
        let heap_off = (HEADER_LEN + 4 * nbuckets).next_multiple_of(1 << MIN_ORDER);
        self.m[..heap_off].fill(0);
        let heap_len = (len.saturating_sub(heap_off)) & !((1 << MIN_ORDER) - 1);
        self.set_u32(H_MAGIC, MAGIC);
        self.set_u32(H_NBUCKETS, nbuckets as u32);
        self.set_u32(H_HEAP_OFF, heap_off as u32);
        self.set_u32(H_HEAP_LEN, heap_len as u32);
        // The heap as the largest aligned power-of-two blocks that fit.
        let mut rel = 0usize;
        while heap_len - rel >= 1 << MIN_ORDER {
            let order = ((heap_len - rel).ilog2() as usize).min(MAX_ORDER);
            self.push_free(heap_off + rel, order);
            rel += 1 << order;
        }
        self.set_u32(H_DIRTY, 0);
    }

    // --- bytes -------------------------------------------------------------

    fn u32(&self, at: usize) -> u32 {
        u32::from_ne_bytes(self.m[at..at + 4].try_into().expect("4 bytes"))
    }

    fn set_u32(&mut self, at: usize, v: u32) {
        self.m[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    }

    fn u64(&self, at: usize) -> u64 {
        u64::from_ne_bytes(self.m[at..at + 8].try_into().expect("8 bytes"))
    }

    fn set_u64(&mut self, at: usize, v: u64) {
        self.m[at..at + 8].copy_from_slice(&v.to_ne_bytes());
    }

    fn u16(&self, at: usize) -> u16 {
        u16::from_ne_bytes(self.m[at..at + 2].try_into().expect("2 bytes"))
    }

    /// Marks the dictionary as being changed (a process that dies now leaves
    /// it marked, and the next one to lock it starts it afresh).
    pub fn begin(&mut self) {
        self.set_u32(H_DIRTY, 1);
    }

    pub fn end(&mut self) {
        self.set_u32(H_DIRTY, 0);
    }

    // --- the buddy allocator ------------------------------------------------

    fn free_head(&self, order: usize) -> u32 {
        self.u32(H_FREE_HEADS + 4 * order)
    }

    fn push_free(&mut self, off: usize, order: usize) {
        let head = self.free_head(order);
        self.set_u32(off + B_TAG, TAG_FREE);
        self.m[off + B_ORDER] = order as u8;
        self.set_u32(off + F_PREV, 0);
        self.set_u32(off + F_NEXT, head);
        if head != 0 {
            self.set_u32(head as usize + F_PREV, off as u32);
        }
        self.set_u32(H_FREE_HEADS + 4 * order, off as u32);
        let free = self.u64(H_FREE_BYTES) + (1u64 << order);
        self.set_u64(H_FREE_BYTES, free);
    }

    fn unlink_free(&mut self, off: usize, order: usize) {
        let (prev, next) = (self.u32(off + F_PREV), self.u32(off + F_NEXT));
        if prev == 0 {
            self.set_u32(H_FREE_HEADS + 4 * order, next);
        } else {
            self.set_u32(prev as usize + F_NEXT, next);
        }
        if next != 0 {
            self.set_u32(next as usize + F_PREV, prev);
        }
        let free = self.u64(H_FREE_BYTES) - (1u64 << order);
        self.set_u64(H_FREE_BYTES, free);
    }

    /// A block of at least `n` bytes (header included), or None.
    fn alloc(&mut self, n: usize) -> Option<usize> {
        let order = (n.max(1 << MIN_ORDER).next_power_of_two().ilog2() as usize).max(MIN_ORDER);
        if order > MAX_ORDER {
            return None;
        }
        let mut k = (order..=MAX_ORDER).find(|&k| self.free_head(k) != 0)?;
        let off = self.free_head(k) as usize;
        self.unlink_free(off, k);
        while k > order {
            k -= 1;
            self.push_free(off + (1 << k), k);
        }
        self.set_u32(off + B_TAG, TAG_USED);
        self.m[off + B_ORDER] = order as u8;
        Some(off)
    }

    fn free(&mut self, mut off: usize) {
        let mut order = self.m[off + B_ORDER] as usize;
        let heap_off = self.u32(H_HEAP_OFF) as usize;
        let heap_len = self.u32(H_HEAP_LEN) as usize;
        while order < MAX_ORDER {
            let buddy = heap_off + ((off - heap_off) ^ (1 << order));
            // Past the heap's end it is no buddy (the heap's last blocks are
            // smaller ones); a buddy split further is not free at this order.
            if buddy - heap_off + (1 << order) > heap_len
                || self.u32(buddy + B_TAG) != TAG_FREE
                || self.m[buddy + B_ORDER] as usize != order
            {
                break;
            }
            self.unlink_free(buddy, order);
            off = off.min(buddy);
            order += 1;
        }
        self.push_free(off, order);
    }

    // --- entries -------------------------------------------------------------

    fn bucket_at(&self, h: u32) -> usize {
        HEADER_LEN + 4 * (h as usize & (self.u32(H_NBUCKETS) as usize - 1))
    }

    fn key(&self, e: usize) -> &[u8] {
        let klen = self.u16(e + E_KLEN) as usize;
        &self.m[e + E_KEY..e + E_KEY + klen]
    }

    fn value_at(&self, e: usize) -> usize {
        e + E_KEY + self.u16(e + E_KLEN) as usize
    }

    fn value(&self, e: usize) -> Value<'_> {
        let at = self.value_at(e);
        let len = self.u32(e + E_VLEN) as usize;
        read_value(self.m[e + E_TYPE], &self.m[at..at + len])
    }

    fn expired(&self, e: usize, now: u64) -> bool {
        let exp = self.u64(e + E_EXPIRES);
        exp != 0 && exp <= now
    }

    /// The entry of `key`, moved to the LRU head (expired ones too, as
    /// nginx's lookup).
    fn lookup(&mut self, key: &[u8], h: u32) -> Option<usize> {
        let mut e = self.u32(self.bucket_at(h)) as usize;
        while e != 0 {
            if self.u32(e + E_HASH) == h && self.key(e) == key {
                self.lru_unlink(e);
                self.lru_push_head(e);
                return Some(e);
            }
            e = self.u32(e + E_CHAIN) as usize;
        }
        None
    }

    fn lru_unlink(&mut self, e: usize) {
        let (newer, older) = (self.u32(e + E_NEWER), self.u32(e + E_OLDER));
        if newer == 0 {
            self.set_u32(H_LRU_HEAD, older);
        } else {
            self.set_u32(newer as usize + E_OLDER, older);
        }
        if older == 0 {
            self.set_u32(H_LRU_TAIL, newer);
        } else {
            self.set_u32(older as usize + E_NEWER, newer);
        }
    }

    fn lru_push_head(&mut self, e: usize) {
        let head = self.u32(H_LRU_HEAD);
        self.set_u32(e + E_NEWER, 0);
        self.set_u32(e + E_OLDER, head);
        if head == 0 {
            self.set_u32(H_LRU_TAIL, e as u32);
        } else {
            self.set_u32(head as usize + E_NEWER, e as u32);
        }
        self.set_u32(H_LRU_HEAD, e as u32);
    }

    /// Unlinks and frees entry `e` (and its list nodes).
    fn remove(&mut self, e: usize) {
        if self.m[e + E_TYPE] == T_LIST {
            let mut n = self.u32(self.value_at(e) + L_HEAD) as usize;
            while n != 0 {
                let next = self.u32(n + N_NEXT) as usize;
                self.free(n);
                n = next;
            }
        }
        self.lru_unlink(e);
        let b = self.bucket_at(self.u32(e + E_HASH));
        let next = self.u32(e + E_CHAIN);
        let mut at = b;
        loop {
            let cur = self.u32(at) as usize;
            if cur == e {
                self.set_u32(at, next);
                break;
            }
            if cur == 0 {
                break;
            }
            at = cur + E_CHAIN;
        }
        let count = self.u32(H_COUNT) - 1;
        self.set_u32(H_COUNT, count);
        self.free(e);
    }

    /// nginx's ngx_http_lua_shdict_expire: `force` drops the oldest entry
    /// whatever its expiry, then (like `!force`) up to two more expired
    /// ones at the tail. Returns how many were freed.
    fn expire(&mut self, force: bool, now: u64) -> usize {
        let mut freed = 0;
        let mut n = usize::from(!force);
        while n < 3 {
            let tail = self.u32(H_LRU_TAIL) as usize;
            if tail == 0 {
                break;
            }
            if n != 0 && !self.expired(tail, now) {
                break;
            }
            n += 1;
            self.remove(tail);
            freed += 1;
        }
        freed
    }

    /// A block of `n` bytes, evicting from the LRU tail when the zone is
    /// full and `evict` (then `*forcible` is set).
    fn alloc_evicting(&mut self, n: usize, evict: bool, now: u64, forcible: &mut bool) -> Result<usize, Fail> {
        if let Some(b) = self.alloc(n) {
            return Ok(b);
        }
        if evict {
            for _ in 0..EVICT_TRIES {
                if self.expire(true, now) == 0 {
                    break;
                }
                *forcible = true;
                if let Some(b) = self.alloc(n) {
                    return Ok(b);
                }
            }
        }
        Err(Fail::NoMemory)
    }

    /// A new entry at the LRU head; its value bytes are left to the caller.
    #[allow(clippy::too_many_arguments)]
    fn insert(&mut self, key: &[u8], h: u32, vtype: u8, vlen: usize, flags: u32, expires: u64, block: usize) {
        let e = block;
        self.set_u32(e + E_HASH, h);
        let b = self.bucket_at(h);
        let first = self.u32(b);
        self.set_u32(e + E_CHAIN, first);
        self.set_u32(b, e as u32);
        self.set_u64(e + E_EXPIRES, expires);
        self.set_u32(e + E_FLAGS, flags);
        self.set_u32(e + E_VLEN, vlen as u32);
        self.m[e + E_KLEN..e + E_KLEN + 2].copy_from_slice(&(key.len() as u16).to_ne_bytes());
        self.m[e + E_TYPE] = vtype;
        self.m[e + E_KEY..e + E_KEY + key.len()].copy_from_slice(key);
        self.lru_push_head(e);
        let count = self.u32(H_COUNT) + 1;
        self.set_u32(H_COUNT, count);
    }

    fn write_value(&mut self, e: usize, v: &Value<'_>) {
        let at = self.value_at(e);
        v.write(&mut self.m[at..at + v.len()]);
    }

    // --- the operations -----------------------------------------------------

    /// get / get_stale: None when absent (or expired and not `stale`).
    pub fn get(&mut self, key: &[u8], stale: bool, now: u64) -> Result<Option<Got<'_>>, Fail> {
        let Some(e) = self.lookup(key, hash(key)) else { return Ok(None) };
        let is_stale = self.expired(e, now);
        if is_stale && !stale {
            return Ok(None);
        }
        if self.m[e + E_TYPE] == T_LIST {
            return Err(Fail::IsAList);
        }
        Ok(Some(Got { value: self.value(e), flags: self.u32(e + E_FLAGS), stale: is_stale }))
    }

    /// set / safe_set / add / safe_add / replace / delete (a Nil value).
    /// `expires` is an absolute time in ms (0: never). Ok(forcible).
    pub fn store(&mut self, op: StoreOp, key: &[u8], value: Value<'_>, expires: u64, flags: u32, now: u64) -> Result<bool, (Fail, bool)> {
        self.expire(false, now);
        let h = hash(key);
        let found = self.lookup(key, h).map(|e| (e, self.expired(e, now)));
        if op.replace && !matches!(found, Some((_, false))) {
            return Err((Fail::NotFound, false));
        }
        if op.add && matches!(found, Some((_, false))) {
            return Err((Fail::Exists, false));
        }
        if let Some((e, _)) = found {
            let same_size = self.m[e + E_TYPE] != T_LIST && self.u32(e + E_VLEN) as usize == value.len();
            if value != Value::Nil && same_size {
                self.m[e + E_TYPE] = value.type_byte();
                self.set_u64(e + E_EXPIRES, expires);
                self.set_u32(e + E_FLAGS, flags);
                self.write_value(e, &value);
                return Ok(false);
            }
            self.remove(e);
        }
        if value == Value::Nil {
            return Ok(false);
        }
        let mut forcible = false;
        let block = self
            .alloc_evicting(E_KEY + key.len() + value.len(), !op.safe, now, &mut forcible)
            .map_err(|f| (f, forcible))?;
        self.insert(key, h, value.type_byte(), value.len(), flags, expires, block);
        self.write_value(block, &value);
        Ok(forcible)
    }

    /// incr: the new number and forcible. With `init`, a missing or expired
    /// key starts at init (+ `by`), expiring after `init_ttl` ms (0: never).
    pub fn incr(&mut self, key: &[u8], by: f64, init: Option<f64>, init_ttl: u64, now: u64) -> Result<(f64, bool), Fail> {
        self.expire(false, now);
        let h = hash(key);
        match self.lookup(key, h) {
            Some(e) if !self.expired(e, now) => {
                if self.m[e + E_TYPE] != T_NUMBER || self.u32(e + E_VLEN) != 8 {
                    return Err(Fail::NotANumber);
                }
                let Value::Number(n) = self.value(e) else { return Err(Fail::NotANumber) };
                let n = n + by;
                self.write_value(e, &Value::Number(n));
                Ok((n, false))
            }
            found => {
                let Some(init) = init else { return Err(Fail::NotFound) };
                let n = init + by;
                let expires = if init_ttl > 0 { now + init_ttl } else { 0 };
                if let Some(e) = found {
                    if self.m[e + E_TYPE] != T_LIST && self.u32(e + E_VLEN) == 8 {
                        self.m[e + E_TYPE] = T_NUMBER;
                        self.set_u32(e + E_FLAGS, 0);
                        self.set_u64(e + E_EXPIRES, expires);
                        self.write_value(e, &Value::Number(n));
                        return Ok((n, false));
                    }
                    self.remove(e);
                }
                let mut forcible = false;
                let block = self.alloc_evicting(E_KEY + key.len() + 8, true, now, &mut forcible)?;
                self.insert(key, h, T_NUMBER, 8, 0, expires, block);
                self.write_value(block, &Value::Number(n));
                Ok((n, forcible))
            }
        }
    }

    /// ttl in ms (0: never expires), None when absent.
    pub fn ttl(&mut self, key: &[u8], now: u64) -> Option<i64> {
        let e = self.lookup(key, hash(key))?;
        let exp = self.u64(e + E_EXPIRES);
        Some(if exp == 0 { 0 } else { exp as i64 - now as i64 })
    }

    /// expire: a new absolute expiry (0: never); false when absent or expired.
    pub fn set_expire(&mut self, key: &[u8], expires: u64, now: u64) -> bool {
        match self.lookup(key, hash(key)) {
            Some(e) if !self.expired(e, now) => {
                self.set_u64(e + E_EXPIRES, expires);
                true
            }
            _ => false,
        }
    }

    /// flush_all: every entry expires now; as nginx, up to three are freed
    /// at once, the others when reused or flush_expired.
    pub fn flush_all(&mut self, now: u64) {
        let mut e = self.u32(H_LRU_HEAD) as usize;
        while e != 0 {
            self.set_u64(e + E_EXPIRES, 1);
            e = self.u32(e + E_OLDER) as usize;
        }
        self.expire(true, now);
    }

    /// flush_expired: frees up to `max` expired entries (0: all).
    pub fn flush_expired(&mut self, max: usize, now: u64) -> usize {
        let mut freed = 0;
        let mut e = self.u32(H_LRU_TAIL) as usize;
        while e != 0 && (max == 0 || freed < max) {
            let newer = self.u32(e + E_NEWER) as usize;
            if self.expired(e, now) {
                self.remove(e);
                freed += 1;
            }
            e = newer;
        }
        freed
    }

    /// get_keys: up to `max` (0: all) live keys, most recently used first.
    pub fn keys(&self, max: usize, now: u64, mut each: impl FnMut(&[u8])) {
        let mut n = 0;
        let mut e = self.u32(H_LRU_HEAD) as usize;
        while e != 0 && (max == 0 || n < max) {
            if !self.expired(e, now) {
                each(self.key(e));
                n += 1;
            }
            e = self.u32(e + E_OLDER) as usize;
        }
    }

    /// The zone's bytes for entries, and how many of them are free.
    pub fn capacity(&self) -> usize {
        self.u32(H_HEAP_LEN) as usize
    }

    pub fn free_space(&self) -> usize {
        self.u64(H_FREE_BYTES) as usize
    }

    // --- lists -----------------------------------------------------------------

    /// lpush / rpush: the list's new length.
    pub fn push(&mut self, key: &[u8], value: Value<'_>, left: bool, now: u64) -> Result<usize, Fail> {
        self.expire(false, now);
        let h = hash(key);
        let mut e = match self.lookup(key, h) {
            Some(e) if self.expired(e, now) => {
                self.remove(e);
                None
            }
            Some(e) if self.m[e + E_TYPE] != T_LIST => return Err(Fail::NotAList),
            found => found,
        };
        let mut forcible = false;
        if e.is_none() {
            let block = self.alloc_evicting(E_KEY + key.len() + LIST_VALUE_LEN, true, now, &mut forcible)?;
            self.insert(key, h, T_LIST, LIST_VALUE_LEN, 0, 0, block);
            let at = self.value_at(block);
            self.m[at..at + LIST_VALUE_LEN].fill(0);
            e = Some(block);
        }
        let e = e.expect("list entry");
        let node = match self.alloc_evicting(N_VAL + value.len(), true, now, &mut forcible) {
            Ok(n) => n,
            Err(f) => {
                // A list made for this push stays only if it holds something.
                if self.u32(self.value_at(e) + L_LEN) == 0 {
                    self.remove(e);
                }
                return Err(f);
            }
        };
        // Eviction may have taken the list itself: look it up again.
        let Some(e) = self.find(key, h).filter(|&x| x == e) else {
            self.free(node);
            return Err(Fail::NoMemory);
        };
        self.m[node + N_TYPE] = value.type_byte();
        self.set_u32(node + N_VLEN, value.len() as u32);
        value.write(&mut self.m[node + N_VAL..node + N_VAL + value.len()]);
        let lv = self.value_at(e);
        let (head, tail, len) = (self.u32(lv + L_HEAD), self.u32(lv + L_TAIL), self.u32(lv + L_LEN));
        if left {
            self.set_u32(node + N_PREV, 0);
            self.set_u32(node + N_NEXT, head);
            if head != 0 {
                self.set_u32(head as usize + N_PREV, node as u32);
            } else {
                self.set_u32(lv + L_TAIL, node as u32);
            }
            self.set_u32(lv + L_HEAD, node as u32);
        } else {
            self.set_u32(node + N_NEXT, 0);
            self.set_u32(node + N_PREV, tail);
            if tail != 0 {
                self.set_u32(tail as usize + N_NEXT, node as u32);
            } else {
                self.set_u32(lv + L_HEAD, node as u32);
            }
            self.set_u32(lv + L_TAIL, node as u32);
        }
        self.set_u32(lv + L_LEN, len + 1);
        Ok(len as usize + 1)
    }

    /// The entry of `key` without touching the LRU order.
    fn find(&self, key: &[u8], h: u32) -> Option<usize> {
        let mut e = self.u32(self.bucket_at(h)) as usize;
        while e != 0 {
            if self.u32(e + E_HASH) == h && self.key(e) == key {
                return Some(e);
            }
            e = self.u32(e + E_CHAIN) as usize;
        }
        None
    }

    /// lpop / rpop: the value taken off (copied to `out`), None when absent.
    pub fn pop(&mut self, key: &[u8], left: bool, now: u64, out: &mut Vec<u8>) -> Result<Option<u8>, Fail> {
        self.expire(false, now);
        let e = match self.lookup(key, hash(key)) {
            None => return Ok(None),
            Some(e) if self.expired(e, now) => {
                self.remove(e);
                return Ok(None);
            }
            Some(e) => e,
        };
        if self.m[e + E_TYPE] != T_LIST {
            return Err(Fail::NotAList);
        }
        let lv = self.value_at(e);
        let node = self.u32(lv + if left { L_HEAD } else { L_TAIL }) as usize;
        if node == 0 {
            return Ok(None);
        }
        let vtype = self.m[node + N_TYPE];
        let vlen = self.u32(node + N_VLEN) as usize;
        out.clear();
        out.extend_from_slice(&self.m[node + N_VAL..node + N_VAL + vlen]);
        let (prev, next) = (self.u32(node + N_PREV), self.u32(node + N_NEXT));
        if prev == 0 {
            self.set_u32(lv + L_HEAD, next);
        } else {
            self.set_u32(prev as usize + N_NEXT, next);
        }
        if next == 0 {
            self.set_u32(lv + L_TAIL, prev);
        } else {
            self.set_u32(next as usize + N_PREV, prev);
        }
        self.free(node);
        let len = self.u32(lv + L_LEN) - 1;
        self.set_u32(lv + L_LEN, len);
        if len == 0 {
            self.remove(e);
        }
        Ok(Some(vtype))
    }

    /// llen: 0 when absent.
    pub fn llen(&mut self, key: &[u8], now: u64) -> Result<usize, Fail> {
        self.expire(false, now);
        match self.lookup(key, hash(key)) {
            None => Ok(0),
            Some(e) if self.expired(e, now) => {
                self.remove(e);
                Ok(0)
            }
            Some(e) if self.m[e + E_TYPE] != T_LIST => Err(Fail::NotAList),
            Some(e) => Ok(self.u32(self.value_at(e) + L_LEN) as usize),
        }
    }
}

/// A value from its type and bytes.
pub fn read_value(vtype: u8, b: &[u8]) -> Value<'_> {
    match vtype {
        T_BOOLEAN => Value::Boolean(b.first().is_some_and(|&c| c != 0)),
        T_NUMBER => Value::Number(f64::from_ne_bytes(b.try_into().unwrap_or_default())),
        T_STRING => Value::String(b),
        _ => Value::Nil,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: StoreOp = StoreOp { add: false, replace: false, safe: false };

    fn dict(buf: &mut [u8]) -> Dict<'_> {
        Dict::open(buf)
    }

    #[test]
    fn store_get_replace_delete() {
        let mut buf = vec![0u8; 64 * 1024];
        let mut d = dict(&mut buf);
        let free0 = d.free_space();
        assert_eq!(d.store(SET, b"a", Value::String(b"x\0y"), 0, 7, 100), Ok(false));
        let g = d.get(b"a", false, 100).unwrap().unwrap();
        assert_eq!((g.value, g.flags, g.stale), (Value::String(b"x\0y"), 7, false));
        assert_eq!(d.store(StoreOp { add: true, ..SET }, b"a", Value::Number(1.0), 0, 0, 100), Err((Fail::Exists, false)));
        assert_eq!(d.store(StoreOp { replace: true, ..SET }, b"b", Value::Number(1.0), 0, 0, 100), Err((Fail::NotFound, false)));
        assert_eq!(d.store(StoreOp { replace: true, ..SET }, b"a", Value::Boolean(true), 0, 0, 100), Ok(false));
        assert_eq!(d.get(b"a", false, 100).unwrap().unwrap().value, Value::Boolean(true));
        assert_eq!(d.store(SET, b"a", Value::Nil, 0, 0, 100), Ok(false));
        assert!(d.get(b"a", false, 100).unwrap().is_none());
        assert_eq!(d.free_space(), free0, "all blocks merged back");
    }

    #[test]
    fn expiry_and_stale() {
        let mut buf = vec![0u8; 64 * 1024];
        let mut d = dict(&mut buf);
        d.store(SET, b"k", Value::Number(2.5), 1500, 0, 1000).unwrap();
        assert_eq!(d.ttl(b"k", 1000), Some(500));
        assert!(d.get(b"k", false, 1499).unwrap().is_some());
        assert!(d.get(b"k", false, 1500).unwrap().is_none());
        assert!(d.get(b"k", true, 1500).unwrap().unwrap().stale);
        // add over an expired key succeeds.
        assert_eq!(d.store(StoreOp { add: true, ..SET }, b"k", Value::Number(1.0), 0, 0, 2000), Ok(false));
    }

    #[test]
    fn incr_with_and_without_init() {
        let mut buf = vec![0u8; 64 * 1024];
        let mut d = dict(&mut buf);
        assert_eq!(d.incr(b"n", 1.0, None, 0, 0), Err(Fail::NotFound));
        assert_eq!(d.incr(b"n", 2.0, Some(10.0), 0, 0), Ok((12.0, false)));
        assert_eq!(d.incr(b"n", -0.5, Some(10.0), 0, 0), Ok((11.5, false)));
        d.store(SET, b"s", Value::String(b"x"), 0, 0, 0).unwrap();
        assert_eq!(d.incr(b"s", 1.0, None, 0, 0), Err(Fail::NotANumber));
    }

    #[test]
    fn a_full_zone_evicts_the_least_recently_used() {
        let mut buf = vec![0u8; 16 * 1024];
        let mut d = dict(&mut buf);
        let big = vec![b'v'; 900];
        let mut forced = false;
        for i in 0..100 {
            let key = format!("k{i}");
            if d.get(b"k0", false, 0).unwrap().is_none() && i > 1 {
                panic!("k0 was touched each round and must stay");
            }
            forced |= d.store(SET, key.as_bytes(), Value::String(&big), 0, 0, 0).unwrap();
        }
        assert!(forced);
        assert!(d.get(b"k99", false, 0).unwrap().is_some());
        assert!(d.get(b"k1", false, 0).unwrap().is_none());
        let safe = StoreOp { safe: true, ..SET };
        assert_eq!(d.store(safe, b"x", Value::String(&vec![0; 8000]), 0, 0, 0), Err((Fail::NoMemory, false)));
    }

    #[test]
    fn lists() {
        let mut buf = vec![0u8; 64 * 1024];
        let mut d = dict(&mut buf);
        let free0 = d.free_space();
        assert_eq!(d.push(b"l", Value::String(b"b"), true, 0), Ok(1));
        assert_eq!(d.push(b"l", Value::String(b"a"), true, 0), Ok(2));
        assert_eq!(d.push(b"l", Value::Number(3.0), false, 0), Ok(3));
        assert_eq!(d.llen(b"l", 0), Ok(3));
        let mut out = Vec::new();
        assert_eq!(d.pop(b"l", true, 0, &mut out), Ok(Some(T_STRING)));
        assert_eq!(out, b"a");
        assert_eq!(d.pop(b"l", false, 0, &mut out), Ok(Some(T_NUMBER)));
        assert_eq!(read_value(T_NUMBER, &out), Value::Number(3.0));
        assert_eq!(d.pop(b"l", false, 0, &mut out), Ok(Some(T_STRING)));
        assert_eq!(d.pop(b"l", false, 0, &mut out), Ok(None));
        assert_eq!(d.llen(b"l", 0), Ok(0));
        assert_eq!(d.free_space(), free0);
        d.store(SET, b"s", Value::Number(1.0), 0, 0, 0).unwrap();
        assert_eq!(d.push(b"s", Value::Number(1.0), true, 0), Err(Fail::NotAList));
        assert_eq!(d.llen(b"s", 0), Err(Fail::NotAList));
        d.push(b"l2", Value::Number(1.0), true, 0).unwrap();
        assert_eq!(d.get(b"l2", false, 0).map(|g| g.is_some()), Err(Fail::IsAList));
    }

    #[test]
    fn keys_flush_and_dirty_zone() {
        let mut buf = vec![0u8; 64 * 1024];
        {
            let mut d = dict(&mut buf);
            for k in ["a", "b", "c"] {
                d.store(SET, k.as_bytes(), Value::Number(1.0), 0, 0, 0).unwrap();
            }
            let mut keys = Vec::new();
            d.keys(2, 0, |k| keys.push(k.to_vec()));
            assert_eq!(keys, [b"c".to_vec(), b"b".to_vec()]);
            d.store(SET, b"d", Value::Number(1.0), 0, 0, 0).unwrap();
            d.flush_all(5);
            assert!(d.get(b"a", false, 5).unwrap().is_none());
            assert_eq!(d.flush_expired(0, 5), 1, "flush_all freed three of four");
            d.store(SET, b"z", Value::Number(1.0), 0, 0, 0).unwrap();
            d.begin();
        }
        // A process died mid-change: the next open starts afresh.
        assert!(Dict::is_dirty(&buf));
        let mut d = dict(&mut buf);
        assert!(d.get(b"z", false, 0).unwrap().is_none());
    }
}
