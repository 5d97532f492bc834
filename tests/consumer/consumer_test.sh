#!/usr/bin/env bash
# Installs this build into a temporary prefix and builds small user projects against it:
# find_package for every library variant, pkg-config for a C program, and add_subdirectory of
# the source tree. usage: consumer_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
work=$(mktemp -d /tmp/spaces-consumer.XXXXXX)
trap 'rm -rf "$work"' EXIT
pass=0
fail=0
check() {  # name, command...
  local name=$1
  shift
  if "$@" >"$work/log" 2>&1; then
    echo "ok   $name"
    pass=$((pass + 1))
  else
    echo "FAIL $name"
    tail -20 "$work/log"
    fail=$((fail + 1))
  fi
}
cmake --install "$build" --prefix "$work/prefix" >/dev/null
export LD_LIBRARY_PATH="$work/prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
for v in spaces spaces_shared override override_shared; do
  check "find_package, spaces::$v" bash -c "
    cmake -S '$src/tests/consumer/project' -B '$work/fp-$v' -DVARIANT=$v -DCMAKE_PREFIX_PATH='$work/prefix' &&
    cmake --build '$work/fp-$v' -j2 && '$work/fp-$v/consumer'"
done
check "pkg-config spaces (C program)" bash -c "
  export PKG_CONFIG_PATH='$work/prefix/lib/pkgconfig' &&
  cc -std=c99 '$src/tests/consumer/pkgconfig_main.c' \$(pkg-config --cflags --libs spaces) -o '$work/pc' && '$work/pc'"
check "pkg-config spaces-override (malloc replaced)" bash -c "
  export PKG_CONFIG_PATH='$work/prefix/lib/pkgconfig' &&
  printf '#include <spaces/spaces.h>\n#include <stdlib.h>\nint main(void){void*p=malloc(8);return spaces_owns(p)!=1;}\n' > '$work/o.c' &&
  cc '$work/o.c' \$(pkg-config --cflags --libs spaces-override) -o '$work/po' && '$work/po'"
# Debian's multiarch layout (libdir lib/x86_64-linux-gnu, what CMAKE_INSTALL_PREFIX=/usr gives):
# the same files placed there, the .pc files written for that libdir by the build's own module.
check "pkg-config with a multiarch libdir (relocated tree)" bash -c "
  mkdir -p '$work/multi/lib/x86_64-linux-gnu' &&
  cp -a '$work/prefix/include' '$work/multi/include' &&
  cp -a '$work/prefix/lib/'libspaces* '$work/multi/lib/x86_64-linux-gnu/' &&
  cmake -DOUT='$work/multi/lib/x86_64-linux-gnu/pkgconfig' -DLIBDIR=lib/x86_64-linux-gnu -DINCLUDEDIR=include \
        -DPREFIX=/usr -DVERSION=0.1.0 -P '$src/sdk/cmake/SpacesPkgConfig.cmake' &&
  mv '$work/multi' '$work/moved' &&
  export PKG_CONFIG_PATH='$work/moved/lib/x86_64-linux-gnu/pkgconfig' &&
  test \"\$(pkg-config --variable=libdir spaces)\" -ef '$work/moved/lib/x86_64-linux-gnu' &&
  cc -std=c99 '$src/tests/consumer/pkgconfig_main.c' \$(pkg-config --cflags --libs spaces) -o '$work/pcm' &&
  LD_LIBRARY_PATH='$work/moved/lib/x86_64-linux-gnu' '$work/pcm' &&
  printf '#include <spaces/spaces.h>\n#include <stdlib.h>\nint main(void){void*p=malloc(8);return spaces_owns(p)!=1;}\n' > '$work/om.c' &&
  cc '$work/om.c' \$(pkg-config --cflags --libs spaces-override) -Wl,-rpath,\$(pkg-config --variable=libdir spaces-override) -o '$work/pom' &&
  env -u LD_LIBRARY_PATH '$work/pom'"
check "an absolute libdir gives absolute paths" bash -c "
  cmake -DOUT='$work/abs' -DLIBDIR=/opt/x/lib64 -DINCLUDEDIR=include -DPREFIX=/opt/x -DVERSION=0.1.0 \
        -P '$src/sdk/cmake/SpacesPkgConfig.cmake' &&
  grep -qx 'libdir=/opt/x/lib64' '$work/abs/spaces.pc' && grep -qx 'prefix=/opt/x' '$work/abs/spaces.pc'"
check "only public headers installed" bash -c "
  test -z \"\$(ls '$work/prefix/include/spaces' | grep -v -E '^(spaces|Region|ScopedRegion|TypedPool|Allocator|Format|StringSaver|SDK)\.h$')\""
check "no two installed headers differ only in case" bash -c "
  test -z \"\$(ls '$work/prefix/include/spaces' | tr A-Z a-z | sort | uniq -d)\""
check "examples/toy_parser built against the installed package" bash -c "
  cmake -S '$src/examples/toy_parser' -B '$work/toy' -DCMAKE_PREFIX_PATH='$work/prefix' -DCMAKE_BUILD_TYPE=Release &&
  cmake --build '$work/toy' -j2 && '$work/toy/toy_parser' --nodes 20000 | grep -q 'serves malloc and operator new'"
check "add_subdirectory of the source tree" bash -c "
  cmake -S '$src/tests/consumer/project' -B '$work/sub' -DVARIANT=override -DSPACES_SOURCE_DIR='$src' &&
  cmake --build '$work/sub' -j2 && '$work/sub/consumer'"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
