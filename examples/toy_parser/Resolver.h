//===- toy_parser/Resolver.h - Name resolution pass -----------------*- C++ -*-===//
//
// The resolver binds every name of a parsed program: each function name to its FunctionDecl
// (IdentInfo::Fn, one global namespace, so calls may refer to functions defined later), each
// variable reference, let-binding and assignment to a slot of its function's frame (Node::Slot),
// and each function's frame size. It checks what the parser cannot: undeclared names,
// redefined functions, duplicate parameters, argument counts, and `main`.
//
// Scoping: a `let` is visible from the next statement to the end of its block, and may shadow
// an outer binding (it gets a new slot). Every parameter and let-binding of a function has its
// own slot, so the evaluator needs no scope chain: a frame is an array.
//
// Memory: the pass's temporaries (the stack of shadowed bindings that block exits restore)
// live in a spaces::ScopedRegion created by run() and destroyed, in one call, when it returns;
// the pass writes into the AST only in place (slots, IdentInfo), never allocates in it.
//
//===----------------------------------------------------------------------===//
#ifndef TOY_PARSER_RESOLVER_H
#define TOY_PARSER_RESOLVER_H

#include "AST.h"
#include "Source.h"

#include "spaces/Allocator.h"

#include <vector>

namespace toy {

class Resolver {
public:
  /// Resolves \p P in place. Returns false after the first error (see diagnostic()).
  bool run(Program *P);

  const Diagnostic &diagnostic() const { return Diag; }
  /// The program's `main` (after a successful run).
  FunctionDecl *mainFunction() const { return Main; }

  /// What the pass did, for the report.
  size_t References = 0;       ///< variable references, assignments and calls resolved
  size_t ScratchPeakBytes = 0; ///< peak footprint of the ScopedRegion
  size_t ScratchBlocks = 0;    ///< blocks live in it just before it was destroyed

private:
  struct Shadowed {
    IdentEntry *Name;
    int32_t Previous;
  };
  using ShadowStack = std::vector<Shadowed, spaces::Allocator<Shadowed>>;

  bool resolveFunction(FunctionDecl *F);
  bool resolveBlock(Block *B);
  bool resolveStmt(Node *S);
  bool resolveExpr(Node *E);
  bool bind(IdentEntry *Name, Node *At);
  bool error(uint32_t Offset, std::string Message) {
    Diag.set(Offset, std::move(Message));
    return false;
  }

  Diagnostic Diag;
  FunctionDecl *Main = nullptr;
  FunctionDecl *Current = nullptr;
  ShadowStack *Shadow = nullptr;
  unsigned NextSlot = 0;
};

} // namespace toy

#endif // TOY_PARSER_RESOLVER_H
