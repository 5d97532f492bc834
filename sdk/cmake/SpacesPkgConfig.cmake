# SpacesPkgConfig.cmake - writes spaces.pc and spaces-override.pc for an install layout.
#
# The .pc files live in <prefix>/<libdir>/pkgconfig. With a relative libdir and includedir (the
# GNU layout, any depth: lib, lib64, lib/x86_64-linux-gnu) they find the prefix from their own
# place (${pcfiledir}, one ".." per directory level), so an installed tree can be moved. With an
# absolute libdir or includedir they carry the absolute paths: relocating that tree would be wrong.
# Used by sdk/CMakeLists.txt at configure time, and by tests/consumer/consumer_test.sh in script
# mode (cmake -DLIBDIR=... -DINCLUDEDIR=... -DPREFIX=... -DVERSION=... -DOUT=... -P this file).
function(spaces_write_pc out_dir libdir includedir prefix version)
  if(IS_ABSOLUTE "${libdir}" OR IS_ABSOLUTE "${includedir}")
    set(SPACES_PC_PREFIX "${prefix}")
    if(IS_ABSOLUTE "${libdir}")
      set(SPACES_PC_LIBDIR "${libdir}")
    else()
      set(SPACES_PC_LIBDIR "\${prefix}/${libdir}")
    endif()
    if(IS_ABSOLUTE "${includedir}")
      set(SPACES_PC_INCLUDEDIR "${includedir}")
    else()
      set(SPACES_PC_INCLUDEDIR "\${prefix}/${includedir}")
    endif()
  else()
    file(RELATIVE_PATH up "/root/${libdir}/pkgconfig" "/root")
    string(REGEX REPLACE "/$" "" up "${up}")
    set(SPACES_PC_PREFIX "\${pcfiledir}/${up}")
    set(SPACES_PC_LIBDIR "\${prefix}/${libdir}")
    set(SPACES_PC_INCLUDEDIR "\${prefix}/${includedir}")
  endif()
  set(PROJECT_VERSION "${version}")
  configure_file(${CMAKE_CURRENT_FUNCTION_LIST_DIR}/spaces.pc.in ${out_dir}/spaces.pc @ONLY)
  configure_file(${CMAKE_CURRENT_FUNCTION_LIST_DIR}/spaces-override.pc.in ${out_dir}/spaces-override.pc @ONLY)
endfunction()

if(CMAKE_SCRIPT_MODE_FILE AND DEFINED OUT)
  spaces_write_pc("${OUT}" "${LIBDIR}" "${INCLUDEDIR}" "${PREFIX}" "${VERSION}")
endif()
