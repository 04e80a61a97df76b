#!/bin/sh
# Refreshes lualib/jit/*.lua (LuaJIT's own jit.v, jit.dump, jit.p, jit.bc,
# jit.vmdef, the disassemblers, ...) from the vendored LuaJIT that mlua-sys
# built, byte for byte.
#
# Why copies at all: halo embeds its Lua modules, and jit/vmdef.lua only exists
# in the build output (it is generated from the VM's own opcode tables). Why
# from the build and not from the luajit-src crate: the crate has no vmdef.lua,
# and vmdef must come from the very build that is linked in, or bytecode/IR
# names lie. The test lua::lualib::tests::jit_modules_match_the_vendored_build
# fails when the copies drift from the current build (a LuaJIT bump).
#
# Usage: lualib/jit/update.sh [OUT_JIT_DIR]
#   OUT_JIT_DIR defaults to the newest target/*/build/mlua-sys-*/out/luajit-build/src/jit.
#   After a new file appears, list it in core/src/lua/lualib.rs MODULES.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

if [ $# -ge 1 ]; then
    src=$1
else
    target=${CARGO_TARGET_DIR:-$root/target}
    # Newest build dir first: after a LuaJIT bump the stale ones linger.
    src=$(ls -dt "$target"/*/build/mlua-sys-*/out/luajit-build/src/jit 2>/dev/null | head -n 1 || true)
fi
if [ -z "$src" ] || [ ! -f "$src/vmdef.lua" ]; then
    echo "update.sh: no LuaJIT build with jit/vmdef.lua found; run 'cargo build' first or pass the dir" >&2
    exit 1
fi

# Remove copies first so a module LuaJIT dropped does not linger here.
find "$here" -maxdepth 1 -name '*.lua' -exec rm -f {} +
cp "$src"/*.lua "$here"/
echo "copied from $src:"
ls "$here"
