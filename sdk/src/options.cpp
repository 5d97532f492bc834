// options.cpp - the option table, generated from SPACES_OPTION_LIST in internal.h.
//
// Options are plain longs read on the slow paths; setting one at run time is a relaxed store
// (no lock): a change takes effect at the next slow path that reads it. Environment variables
// SPACES_<NAME> are read once, during initialisation, with getenv (which never allocates).
#ifndef SPACES_CORE_TU
#error "compile sdk/src/spaces.cpp, not this file"
#endif

#include <stdlib.h>

namespace spaces_core {

struct OptionDesc {
  const char* name;
  const char* env;
  long long def, lo, hi;
  const char* doc;
};

static const OptionDesc kOptionDescs[kNumOptions] = {
#define SPACES_X(name, def, lo, hi, doc) {#name, "SPACES_" #name, def, lo, hi, doc},
    SPACES_OPTION_LIST(SPACES_X)
#undef SPACES_X
};

long long g_options[kNumOptions] = {
#define SPACES_X(name, def, lo, hi, doc) def,
    SPACES_OPTION_LIST(SPACES_X)
#undef SPACES_X
};

static int option_find(const char* name) {
  if (name == nullptr) return -1;
  for (int i = 0; i < kNumOptions; i++) {
    if (strcmp(kOptionDescs[i].name, name) == 0) return i;
  }
  return -1;
}

static bool parse_ll(const char* s, long long* out) {
  if (s == nullptr || *s == 0) return false;
  bool neg = false;
  if (*s == '-') neg = true, s++;
  long long v = 0;
  if (*s == 0) return false;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return false;
    if (v > 1000000000000000ll) return false;
    v = v * 10 + (*s - '0');
  }
  *out = neg ? -v : v;
  return true;
}

void options_init_from_env() {
  for (int i = 0; i < kNumOptions; i++) {
    char env[64];
    const char* src = kOptionDescs[i].env;
    size_t n = 0;
    for (; src[n] && n + 1 < sizeof env; n++) {
      char c = src[n];
      env[n] = (c >= 'a' && c <= 'z') ? char(c - 'a' + 'A') : c;
    }
    env[n] = 0;
    long long v;
    if (parse_ll(getenv(env), &v) && v >= kOptionDescs[i].lo && v <= kOptionDescs[i].hi) {
      g_options[i] = v;
    }
  }
}

void options_print(int fd) {
  for (int i = 0; i < kNumOptions; i++) {
    write_str(fd, "spaces: option ");
    write_str(fd, kOptionDescs[i].name);
    write_str(fd, " = ");
    long long v = g_options[i];
    if (v < 0) write_str(fd, "-"), v = -v;
    char buf[24];
    char* e = buf + sizeof buf;
    *--e = 0;
    do *--e = char('0' + v % 10), v /= 10; while (v);
    write_str(fd, e);
    write_str(fd, "   (");
    write_str(fd, kOptionDescs[i].doc);
    write_str(fd, ")\n");
  }
}

}  // namespace spaces_core

using namespace spaces_core;

extern "C" SPACES_API int spaces_option_set(const char* name, long long value) noexcept {
  ensure_init();
  int i = option_find(name);
  if (i < 0 || value < kOptionDescs[i].lo || value > kOptionDescs[i].hi) {
    errno = EINVAL;
    return -1;
  }
  __atomic_store_n(&g_options[i], value, __ATOMIC_RELAXED);
  return 0;
}

extern "C" SPACES_API long long spaces_option_get(const char* name) noexcept {
  ensure_init();
  int i = option_find(name);
  if (i < 0) {
    errno = EINVAL;
    return -1;
  }
  return __atomic_load_n(&g_options[i], __ATOMIC_RELAXED);
}
