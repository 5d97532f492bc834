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

// Integers only: optional sign, decimal digits, nothing after them ("10x", "yes", "" refused).
static bool parse_ll(const char* s, long long* out) {
  if (s == nullptr || *s == 0) return false;
  bool neg = false;
  if (*s == '-' || *s == '+') neg = *s == '-', s++;
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

// One stderr line per mistake, at start (as jemalloc does for MALLOC_CONF): the variable as
// given, that it was ignored, and why. Never allocates.
static void option_warn(const char* var, const char* why, int hint) {
  char line[400] = "spaces: warning: ";
  strncat(line, var, 200);
  strcat(line, " ignored: ");
  strcat(line, why);
  if (hint >= 0) {
    char num[24];
    if (strncmp(why, "unknown", 7) == 0) {
      strcat(line, " (did you mean SPACES_");
      char* e = line + strlen(line);
      for (const char* n = kOptionDescs[hint].name; *n; n++) *e++ = (*n >= 'a' && *n <= 'z') ? char(*n - 32) : *n;
      *e = 0;
      strcat(line, "?)");
    } else {
      strcat(line, " (expected an integer from ");
      long long lo = kOptionDescs[hint].lo, hi = kOptionDescs[hint].hi;
      if (lo < 0) strcat(line, "-");
      format_dec(num, (unsigned long long)(lo < 0 ? -lo : lo));
      strcat(line, num);
      strcat(line, " to ");
      format_dec(num, (unsigned long long)hi);
      strcat(line, num);
      strcat(line, ")");
    }
  }
  strcat(line, "\n");
  write_str(2, line);
}

// The option whose SPACES_<NAME> is closest to an unknown one (same prefix of at least 6
// characters, either way round), or -1.
static int option_guess(const char* upper_name) {
  for (int i = 0; i < kNumOptions; i++) {
    const char* n = kOptionDescs[i].name;
    size_t k = 0;
    while (n[k] && upper_name[k] && upper_name[k] != '=' &&
           ((n[k] >= 'a' && n[k] <= 'z') ? char(n[k] - 32) : n[k]) == upper_name[k])
      k++;
    if (k >= 6) return i;
  }
  return -1;
}

SPACES_HOT_TEXT void options_init_from_env() {
  for (int i = 0; i < kNumOptions; i++) {
    char env[64];
    const char* src = kOptionDescs[i].env;
    size_t n = 0;
    for (; src[n] && n + 1 < sizeof env; n++) {
      char c = src[n];
      env[n] = (c >= 'a' && c <= 'z') ? char(c - 'a' + 'A') : c;
    }
    env[n] = 0;
    const char* text = os_getenv(env);
    if (text == nullptr) continue;
    long long v;
    char var[160];
    var[0] = 0;
    strncat(var, env, 64);
    strcat(var, "=");
    strncat(var, text, 80);
    if (i == kOpt_show_stats && strcmp(text, "json") == 0)
      g_options[i] = 2;  // (SPACES_SHOW_STATS=json)
    else if (!parse_ll(text, &v))
      option_warn(var, "not an integer", i);
    else if (v < kOptionDescs[i].lo || v > kOptionDescs[i].hi)
      option_warn(var, "out of range", i);
    else
      g_options[i] = v;
  }
  // SPACES_<anything else>: a misspelt option would otherwise keep its default without a word.
  for (char** e = environ; e && *e; e++) {
    const char* kv = *e;
    if (strncmp(kv, "SPACES_", 7) != 0) continue;
    bool known = strncmp(kv, "SPACES_PROFILE=", 15) == 0;  // (a path, read by profile.cpp)
    for (int i = 0; i < kNumOptions && !known; i++) {
      const char* n = kOptionDescs[i].name;
      size_t k = 0;
      while (n[k] && ((n[k] >= 'a' && n[k] <= 'z') ? char(n[k] - 32) : n[k]) == kv[7 + k]) k++;
      known = n[k] == 0 && kv[7 + k] == '=';
    }
    if (!known) option_warn(kv, "unknown option", option_guess(kv + 7));
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
    format_dec(buf, (unsigned long long)v);
    write_str(fd, buf);
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
