# Compiles the core alone as one translation unit, as users of the seed did:
#   c++ -O3 -pthread -fPIC -c sdk/src/spaces.cpp
execute_process(COMMAND ${CXX} -std=c++17 -O3 -pthread -fPIC -I${SRC}/sdk/include -c ${SRC}/sdk/src/spaces.cpp
                        -o ${OUT}/spaces_one_tu.o RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the core does not compile as one translation unit")
endif()
execute_process(COMMAND nm -g --defined-only ${OUT}/spaces_one_tu.o OUTPUT_VARIABLE syms)
if(NOT syms MATCHES "spaces_malloc" OR NOT syms MATCHES "spaces_free")
  message(FATAL_ERROR "one-TU object lacks spaces_malloc/spaces_free")
endif()
# and it has no static constructor (docs/design.md): a dynamic initialisation would run before
# main, in every program, and touch the pages of the core's static tables (a default member
# initializer in a struct held by a static Heap once cost 150 KiB of RSS at start)
execute_process(COMMAND nm ${OUT}/spaces_one_tu.o OUTPUT_VARIABLE allsyms)
if(allsyms MATCHES "_GLOBAL__sub_I")
  message(FATAL_ERROR "the core has a static constructor (_GLOBAL__sub_I_...): keep its statics constant-initialised")
endif()
# and an included part must refuse to compile alone
execute_process(COMMAND ${CXX} -std=c++17 -I${SRC}/sdk/include -fsyntax-only ${SRC}/sdk/src/heap.cpp
                RESULT_VARIABLE rc2 OUTPUT_QUIET ERROR_QUIET)
if(rc2 EQUAL 0)
  message(FATAL_ERROR "sdk/src/heap.cpp compiled alone: the #error guard is missing")
endif()
message(STATUS "one translation unit: ok")
