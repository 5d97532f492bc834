//===- toy_parser/Resolver.cpp - Name resolution pass ---------------------===//

#include "Resolver.h"

#include "spaces/ScopedRegion.h"

#include <fmt/format.h>

namespace toy {

bool Resolver::run(Program *P) {
  // Every temporary of the pass lives here and dies with it, in one destroy, whether the pass
  // succeeds or stops at an error.
  spaces::ScopedRegion Scratch(spaces::ScopedRegion::NoCapture, "resolver");
  ShadowStack Stack{spaces::Allocator<Shadowed>(Scratch.region())};
  Stack.reserve(256);
  Shadow = &Stack;

  bool Ok = true;
  for (FunctionDecl *F : P->Functions) {
    IdentInfo &Info = F->Name->getValue();
    if (Info.Fn) {
      Ok = error(F->Offset, fmt::format("redefinition of function '{}'", F->Name->getKey()));
      break;
    }
    Info.Fn = F;
    if (F->Name->getKey() == "main")
      Main = F;
  }
  if (Ok && !Main)
    Ok = error(P->Offset, "program has no function 'main'");
  else if (Ok && !Main->Params.empty())
    Ok = error(Main->Offset, "function 'main' must take no parameters");
  for (FunctionDecl *F : P->Functions) {
    if (!Ok)
      break;
    Ok = resolveFunction(F);
  }

  spaces::RegionStats S = Scratch.stats();
  ScratchPeakBytes = S.peak_footprint;
  ScratchBlocks = S.live_blocks;
  Shadow = nullptr;
  return Ok;
}

bool Resolver::bind(IdentEntry *Name, Node *At) {
  if (NextSlot >= MaxSlots)
    return error(At->Offset, fmt::format("function '{}' has more than {} parameters and let-bindings",
                                         Current->Name->getKey(), MaxSlots));
  IdentInfo &Info = Name->getValue();
  Shadow->push_back({Name, Info.Slot});
  Info.Slot = int32_t(NextSlot);
  if (At->Kind == NodeKind::Let)
    At->Slot = uint16_t(NextSlot);
  NextSlot++;
  return true;
}

bool Resolver::resolveFunction(FunctionDecl *F) {
  Current = F;
  NextSlot = 0;
  size_t Mark = Shadow->size();
  bool Ok = true;
  for (IdentEntry *Param : F->Params) {
    if (Param->getValue().Slot >= 0) {
      Ok = error(F->Offset, fmt::format("duplicate parameter '{}' in function '{}'", Param->getKey(),
                                        F->Name->getKey()));
      break;
    }
    if (!(Ok = bind(Param, F)))
      break;
  }
  Ok = Ok && resolveBlock(F->Body);
  F->Slot = uint16_t(NextSlot);
  // Unbind the parameters (and, after an error, whatever was bound when it happened).
  while (Shadow->size() > Mark) {
    Shadowed &B = Shadow->back();
    B.Name->getValue().Slot = B.Previous;
    Shadow->pop_back();
  }
  return Ok;
}

bool Resolver::resolveBlock(Block *B) {
  size_t Mark = Shadow->size();
  for (Node *S : B->Stmts)
    if (!resolveStmt(S))
      return false; // resolveFunction restores the bindings
  // Leaving the block: its let-bindings go out of scope.
  while (Shadow->size() > Mark) {
    Shadowed &Sh = Shadow->back();
    Sh.Name->getValue().Slot = Sh.Previous;
    Shadow->pop_back();
  }
  return true;
}

bool Resolver::resolveStmt(Node *S) {
  switch (S->Kind) {
  case NodeKind::Let: {
    auto *L = static_cast<Let *>(S);
    // The initializer sees the bindings before this one: `let x = x + 1;` reads the outer x.
    return resolveExpr(L->Init) && bind(L->Name, L);
  }
  case NodeKind::Assign: {
    auto *A = static_cast<Assign *>(S);
    if (!resolveExpr(A->Init))
      return false;
    int32_t Slot = A->Name->getValue().Slot;
    if (Slot < 0)
      return error(A->Offset, fmt::format("assignment to undeclared variable '{}'", A->Name->getKey()));
    A->Slot = uint16_t(Slot);
    References++;
    return true;
  }
  case NodeKind::If: {
    auto *I = static_cast<If *>(S);
    if (!resolveExpr(I->Cond) || !resolveBlock(I->Then))
      return false;
    return !I->Else || resolveStmt(I->Else);
  }
  case NodeKind::While: {
    auto *W = static_cast<While *>(S);
    return resolveExpr(W->Cond) && resolveBlock(W->Body);
  }
  case NodeKind::Return: {
    auto *R = static_cast<Return *>(S);
    return !R->Value || resolveExpr(R->Value);
  }
  case NodeKind::ExprStmt:
    return resolveExpr(static_cast<ExprStmt *>(S)->E);
  case NodeKind::Block:
    return resolveBlock(static_cast<Block *>(S));
  default:
    return error(S->Offset, "internal error: expression where a statement was expected");
  }
}

bool Resolver::resolveExpr(Node *E) {
  switch (E->Kind) {
  case NodeKind::IntLit:
  case NodeKind::StrLit:
    return true;
  case NodeKind::VarRef: {
    auto *V = static_cast<VarRef *>(E);
    int32_t Slot = V->Name->getValue().Slot;
    if (Slot < 0)
      return error(V->Offset, fmt::format("use of undeclared variable '{}'", V->Name->getKey()));
    V->Slot = uint16_t(Slot);
    References++;
    return true;
  }
  case NodeKind::Unary:
    return resolveExpr(static_cast<Unary *>(E)->Operand);
  case NodeKind::Binary: {
    auto *B = static_cast<Binary *>(E);
    return resolveExpr(B->LHS) && resolveExpr(B->RHS);
  }
  case NodeKind::Call: {
    auto *C = static_cast<Call *>(E);
    FunctionDecl *Callee = C->Callee->getValue().Fn;
    if (!Callee)
      return error(C->Offset, fmt::format("call to undeclared function '{}'", C->Callee->getKey()));
    if (Callee->Params.size() != C->Args.size())
      return error(C->Offset, fmt::format("function '{}' takes {} argument{} but {} {} given",
                                          C->Callee->getKey(), Callee->Params.size(),
                                          Callee->Params.size() == 1 ? "" : "s", C->Args.size(),
                                          C->Args.size() == 1 ? "was" : "were"));
    References++;
    for (Node *A : C->Args)
      if (!resolveExpr(A))
        return false;
    return true;
  }
  default:
    return error(E->Offset, "internal error: statement where an expression was expected");
  }
}

} // namespace toy
