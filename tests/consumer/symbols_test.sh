#!/usr/bin/env bash
# The shared libraries export only the spaces_* API; the override library adds the malloc family
# and operator new/delete, nothing else. usage: symbols_test.sh libspaces_api.so libspaces.so
set -u
api=$1
ovr=$2
fail=0
allowed_override='^(spaces_.*|malloc|free|calloc|realloc|reallocarray|posix_memalign|aligned_alloc|memalign|valloc|pvalloc|malloc_usable_size|free_sized|free_aligned_sized|cfree|malloc_trim|mallinfo2?|malloc_stats|malloc_info|mallopt|__libc_(malloc|free|calloc|realloc|memalign)|_Znwm.*|_Znam.*|_ZdlPv.*|_ZdaPv.*)$'
bad=$(nm -D --defined-only "$api" | awk '{print $3}' | grep -v -E '^spaces_')
[ -n "$bad" ] && { echo "FAIL $api exports: $bad"; fail=1; } || echo "ok   $api exports only spaces_*"
bad=$(nm -D --defined-only "$ovr" | awk '{print $3}' | grep -v -E "$allowed_override")
[ -n "$bad" ] && { echo "FAIL $ovr exports: $bad"; fail=1; } || echo "ok   $ovr exports only spaces_* and the malloc/new family"
soname=$(objdump -p "$ovr" | awk '/SONAME/{print $2}')
[ "$soname" = "libspaces.so.0" ] && echo "ok   SONAME $soname" || { echo "FAIL SONAME '$soname'"; fail=1; }
echo "$((3 - fail)) passed, $fail failed"
exit $fail
