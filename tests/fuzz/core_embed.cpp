// core_embed.cpp - the Spaces core compiled into a fuzz target, as the one translation unit it is
// (sdk/src/spaces.cpp), so that the target needs no library target and takes the target's own
// instrumentation (-fsanitize=fuzzer,address). Targets linked with the override library (malloc
// is Spaces) leave this file out.
#include "../../sdk/src/spaces.cpp"
