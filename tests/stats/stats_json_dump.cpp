// stats_json_dump: a known heap (5000 live 100-byte mallocs, a named exclusive Region with a
// ceiling, a C chunk whose name needs escaping), then spaces_stats_print_json to stdout (or
// nothing with --quiet, for SPACES_SHOW_STATS=json at exit). check_stats_json.py parses it.
#include <spaces/SDK.h>

#include <cstdlib>
#include <cstring>
#include <vector>

int main(int argc, char **argv) {
  bool Quiet = argc > 1 && std::strcmp(argv[1], "--quiet") == 0;
  std::vector<void *> Live;
  for (int I = 0; I < 5000; I++)
    Live.push_back(std::malloc(100));
  spaces::Region Ast(spaces::Region::Exclusive, "ast");
  Ast.setCeiling(1 << 20);
  for (int I = 0; I < 1000; I++)
    Ast.Allocate(48);
  SpacesChunk Odd = spaces_chunk_create(0);
  spaces_chunk_set_name(Odd, "we\"ird\\name\n");
  if (!spaces_chunk_alloc(Odd, 64, 0))
    return 1;
  if (!Quiet)
    spaces_stats_print_json(1);
  spaces_chunk_destroy(Odd);
  if (Quiet) { // (live at exit: SPACES_SHOW_STATS=json prints them)
    auto *Kept = new spaces::Region(spaces::Region::Exclusive, "kept"); // (never destroyed)
    Kept->Allocate(16);
    return 0;
  }
  for (void *P : Live)
    std::free(P);
  return 0;
}
