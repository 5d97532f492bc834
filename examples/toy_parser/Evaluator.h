//===- toy_parser/Evaluator.h - Running and checking a resolved tree -*- C++ -*-===//
//
// Three read-only walks over a resolved program:
//   hashProgram  a structural hash of every node (kind, operator, slot, literal values,
//                identifier spellings, child counts) in preorder, and the exact node count.
//                Addresses never enter it, so every storage strategy must produce the same hash.
//   Evaluator    runs main() and returns its value. Values are 64-bit integers with
//                wrap-around arithmetic; x / 0 and x % 0 are 0; comparisons and ! give 0 or 1;
//                a string literal's value is the 64-bit FNV-1a hash of its bytes (so == on
//                strings compares contents). A function that ends without `return` returns 0.
//   dumpProgram  the tree as an s-expression (for --dump-ast and the golden tests).
// The checksum a run prints is checksum(hash, main's value): a lost or damaged node changes the
// hash even where evaluation never reaches it.
//
// The evaluator cannot be wedged or crashed by its input: it stops with an error after
// StepLimit evaluation steps (an infinite loop) or MaxEvalDepth nested evaluations (runaway
// recursion), instead of overflowing the stack.
//
//===----------------------------------------------------------------------===//
#ifndef TOY_PARSER_EVALUATOR_H
#define TOY_PARSER_EVALUATOR_H

#include "AST.h"
#include "Source.h"

#include <cstdint>
#include <string>
#include <vector>

namespace toy {

struct TreeHash {
  uint64_t Hash = 0;
  size_t Nodes = 0;
};
TreeHash hashProgram(const Program *P);

/// The checksum printed for a run: \p Hash and \p MainValue, mixed.
uint64_t checksum(uint64_t Hash, int64_t MainValue);

/// 64-bit FNV-1a of \p S: the value of a string literal.
uint64_t stringValue(llvm::StringRef S);

class Evaluator {
public:
  static constexpr uint64_t DefaultStepLimit = 500000000;
#if defined(__SANITIZE_ADDRESS__)
  static constexpr unsigned MaxEvalDepth = 3000;  // ASan's larger frames: stay within 8 MiB of stack
#else
  static constexpr unsigned MaxEvalDepth = 20000;
#endif

  explicit Evaluator(uint64_t StepLimit = DefaultStepLimit) : StepLimit(StepLimit) {}

  /// Runs \p Main (resolved, no parameters). False after an error (see diagnostic()).
  bool run(const FunctionDecl *Main, int64_t &Result);
  uint64_t steps() const { return Steps; }
  const Diagnostic &diagnostic() const { return Diag; }

private:
  enum class Flow { Normal, Returned, Failed };

  int64_t eval(const Node *E);
  int64_t call(const Call *C);
  Flow exec(const Node *S);
  Flow execBlock(const Block *B);
  int64_t fail(const Node *At, std::string Message);
  int64_t tooDeep(const Node *At);

  std::vector<int64_t> Locals; ///< all frames, innermost last
  size_t Base = 0;             ///< first slot of the current frame
  const Call *InnermostCall = nullptr; ///< for diagnostics
  const While *InnermostLoop = nullptr; ///< in the current call, for diagnostics
  int64_t ReturnValue = 0;
  uint64_t Steps = 0, StepLimit;
  unsigned Depth = 0;
  bool Failed = false;
  Diagnostic Diag;
};

/// Appends the tree as an s-expression, one statement per line; resolved variables print as
/// name#slot.
void dumpProgram(const Program *P, std::string &Out);

} // namespace toy

#endif // TOY_PARSER_EVALUATOR_H
