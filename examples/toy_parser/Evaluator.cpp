//===- toy_parser/Evaluator.cpp - Running and checking a resolved tree ----===//

#include "Evaluator.h"

#include <fmt/format.h>

namespace toy {

//===----------------------------------------------------------------------===//
// Hash
//===----------------------------------------------------------------------===//

uint64_t stringValue(llvm::StringRef S) {
  uint64_t H = 0xcbf29ce484222325ull;
  for (char C : S)
    H = (H ^ uint8_t(C)) * 0x100000001b3ull;
  return H;
}

namespace {
inline uint64_t finalize(uint64_t X) {
  X ^= X >> 30;
  X *= 0xbf58476d1ce4e5b9ull;
  X ^= X >> 27;
  X *= 0x94d049bb133111ebull;
  return X ^ (X >> 31);
}

struct Hasher {
  uint64_t H = 0x6a09e667f3bcc908ull;
  size_t Nodes = 0;

  void mix(uint64_t V) { H = (H ^ finalize(V + 0x9e3779b97f4a7c15ull)) * 0x100000001b3ull + (H >> 29); }
  void header(const Node *N, uint64_t Children) {
    Nodes++;
    mix(uint64_t(N->Kind) | uint64_t(N->Op) << 8 | uint64_t(N->Slot) << 16 | Children << 32);
  }
  void walk(const Node *N) {
    switch (N->Kind) {
    case NodeKind::IntLit:
      header(N, 0);
      return mix(uint64_t(static_cast<const IntLit *>(N)->Value));
    case NodeKind::StrLit: {
      llvm::StringRef V = static_cast<const StrLit *>(N)->Value;
      header(N, V.size());
      return mix(stringValue(V));
    }
    case NodeKind::VarRef:
      header(N, 0);
      return mix(stringValue(static_cast<const VarRef *>(N)->Name->getKey()));
    case NodeKind::Unary:
      header(N, 1);
      return walk(static_cast<const Unary *>(N)->Operand);
    case NodeKind::Binary:
      header(N, 2);
      walk(static_cast<const Binary *>(N)->LHS);
      return walk(static_cast<const Binary *>(N)->RHS);
    case NodeKind::Call: {
      auto *C = static_cast<const Call *>(N);
      header(N, C->Args.size());
      mix(stringValue(C->Callee->getKey()));
      for (const Node *A : C->Args)
        walk(A);
      return;
    }
    case NodeKind::Let:
    case NodeKind::Assign: {
      auto *B = static_cast<const Binding *>(N);
      header(N, 1);
      mix(stringValue(B->Name->getKey()));
      return walk(B->Init);
    }
    case NodeKind::If: {
      auto *I = static_cast<const If *>(N);
      header(N, I->Else ? 3 : 2);
      walk(I->Cond);
      walk(I->Then);
      if (I->Else)
        walk(I->Else);
      return;
    }
    case NodeKind::While:
      header(N, 2);
      walk(static_cast<const While *>(N)->Cond);
      return walk(static_cast<const While *>(N)->Body);
    case NodeKind::Return: {
      const Node *V = static_cast<const Return *>(N)->Value;
      header(N, V ? 1 : 0);
      if (V)
        walk(V);
      return;
    }
    case NodeKind::ExprStmt:
      header(N, 1);
      return walk(static_cast<const ExprStmt *>(N)->E);
    case NodeKind::Block: {
      auto *B = static_cast<const Block *>(N);
      header(N, B->Stmts.size());
      for (const Node *S : B->Stmts)
        walk(S);
      return;
    }
    case NodeKind::Function: {
      auto *F = static_cast<const FunctionDecl *>(N);
      header(N, F->Params.size());
      mix(stringValue(F->Name->getKey()));
      for (const IdentEntry *P : F->Params)
        mix(stringValue(P->getKey()));
      return walk(F->Body);
    }
    case NodeKind::Program: {
      auto *P = static_cast<const Program *>(N);
      header(N, P->Functions.size());
      for (const FunctionDecl *F : P->Functions)
        walk(F);
      return;
    }
    }
  }
};
} // namespace

TreeHash hashProgram(const Program *P) {
  Hasher H;
  H.walk(P);
  return {H.H, H.Nodes};
}

uint64_t checksum(uint64_t Hash, int64_t MainValue) {
  return finalize(Hash ^ finalize(uint64_t(MainValue) + 0x9e3779b97f4a7c15ull));
}

//===----------------------------------------------------------------------===//
// Evaluation
//===----------------------------------------------------------------------===//

bool Evaluator::run(const FunctionDecl *Main, int64_t &Result) {
  Locals.assign(Main->frameSize(), 0);
  Base = 0;
  Flow F = execBlock(Main->Body);
  Result = F == Flow::Returned ? ReturnValue : 0;
  return !Failed;
}

int64_t Evaluator::fail(const Node *At, std::string Message) {
  if (!Failed) {
    Failed = true;
    Diag.set(At->Offset, std::move(Message));
  }
  return 0;
}

int64_t Evaluator::tooDeep(const Node *At) {
  // Blame the innermost call: that is where a runaway recursion is.
  return fail(InnermostCall ? InnermostCall : At,
              "evaluation nested too deeply (runaway recursion?)");
}

int64_t Evaluator::call(const Call *C) {
  const FunctionDecl *F = C->Callee->getValue().Fn;
  // The callee's frame is reserved first, so that calls made while evaluating the arguments
  // stack their frames above it; indices stay valid when Locals reallocates.
  size_t NewBase = Locals.size();
  Locals.resize(NewBase + F->frameSize());
  for (size_t I = 0; I < C->Args.size(); I++) {
    int64_t V = eval(C->Args[I]);
    Locals[NewBase + I] = V;
  }
  if (Failed) {
    Locals.resize(NewBase);
    return 0;
  }
  size_t SavedBase = Base;
  const Call *SavedCall = InnermostCall;
  const While *SavedLoop = InnermostLoop;
  Base = NewBase;
  InnermostCall = C;
  InnermostLoop = nullptr;
  Flow Fl = execBlock(F->Body);
  int64_t R = Fl == Flow::Returned ? ReturnValue : 0;
  Base = SavedBase;
  InnermostCall = SavedCall;
  InnermostLoop = SavedLoop;
  Locals.resize(NewBase);
  return R;
}

int64_t Evaluator::eval(const Node *E) {
  if (++Steps > StepLimit) // blame the innermost loop: that is where an endless one is
    return fail(InnermostLoop ? InnermostLoop : InnermostCall ? InnermostCall : E,
                fmt::format("evaluation stopped after {} steps (an endless loop?)", StepLimit));
  switch (E->Kind) {
  case NodeKind::IntLit:
    return static_cast<const IntLit *>(E)->Value;
  case NodeKind::StrLit:
    return int64_t(stringValue(static_cast<const StrLit *>(E)->Value));
  case NodeKind::VarRef:
    return Locals[Base + E->Slot];
  default:
    break;
  }
  if (++Depth > MaxEvalDepth) {
    Depth--;
    return tooDeep(E);
  }
  int64_t R = 0;
  switch (E->Kind) {
  case NodeKind::Unary: {
    uint64_t V = uint64_t(eval(static_cast<const Unary *>(E)->Operand));
    R = E->Op == OpKind::Neg ? int64_t(0 - V) : int64_t(V == 0);
    break;
  }
  case NodeKind::Binary: {
    auto *B = static_cast<const Binary *>(E);
    int64_t L = eval(B->LHS), Rt = eval(B->RHS);
    uint64_t UL = uint64_t(L), UR = uint64_t(Rt);
    switch (E->Op) {
    case OpKind::Add: R = int64_t(UL + UR); break;
    case OpKind::Sub: R = int64_t(UL - UR); break;
    case OpKind::Mul: R = int64_t(UL * UR); break;
    case OpKind::Div: R = Rt == 0 ? 0 : (Rt == -1 ? int64_t(0 - UL) : L / Rt); break;
    case OpKind::Rem: R = (Rt == 0 || Rt == -1) ? 0 : L % Rt; break;
    case OpKind::Eq: R = L == Rt; break;
    case OpKind::Ne: R = L != Rt; break;
    case OpKind::Lt: R = L < Rt; break;
    case OpKind::Le: R = L <= Rt; break;
    case OpKind::Gt: R = L > Rt; break;
    case OpKind::Ge: R = L >= Rt; break;
    default: R = fail(E, "internal error: bad binary operator"); break;
    }
    break;
  }
  case NodeKind::Call:
    R = Failed ? 0 : call(static_cast<const Call *>(E));
    break;
  default:
    R = fail(E, "internal error: statement where an expression was expected");
    break;
  }
  Depth--;
  return R;
}

Evaluator::Flow Evaluator::execBlock(const Block *B) {
  for (const Node *S : B->Stmts) {
    Flow F = exec(S);
    if (F != Flow::Normal)
      return F;
  }
  return Flow::Normal;
}

Evaluator::Flow Evaluator::exec(const Node *S) {
  if (++Depth > MaxEvalDepth) {
    Depth--;
    tooDeep(S);
    return Flow::Failed;
  }
  Flow F = Flow::Normal;
  switch (S->Kind) {
  case NodeKind::Let:
  case NodeKind::Assign: {
    int64_t V = eval(static_cast<const Binding *>(S)->Init);
    Locals[Base + S->Slot] = V;
    break;
  }
  case NodeKind::If: {
    auto *I = static_cast<const If *>(S);
    if (eval(I->Cond))
      F = execBlock(I->Then);
    else if (I->Else)
      F = exec(I->Else);
    break;
  }
  case NodeKind::While: {
    auto *W = static_cast<const While *>(S);
    const While *SavedLoop = InnermostLoop;
    InnermostLoop = W;
    while (!Failed && eval(W->Cond)) {
      F = execBlock(W->Body);
      if (F != Flow::Normal)
        break;
    }
    InnermostLoop = SavedLoop;
    break;
  }
  case NodeKind::Return: {
    const Node *V = static_cast<const Return *>(S)->Value;
    ReturnValue = V ? eval(V) : 0;
    F = Flow::Returned;
    break;
  }
  case NodeKind::ExprStmt:
    eval(static_cast<const ExprStmt *>(S)->E);
    break;
  case NodeKind::Block:
    F = execBlock(static_cast<const Block *>(S));
    break;
  default:
    fail(S, "internal error: expression where a statement was expected");
    break;
  }
  Depth--;
  return Failed ? Flow::Failed : F;
}

//===----------------------------------------------------------------------===//
// Dump
//===----------------------------------------------------------------------===//

namespace {
void dumpString(llvm::StringRef S, std::string &Out) {
  Out += '"';
  for (char C : S) {
    switch (C) {
    case '\n': Out += "\\n"; break;
    case '\t': Out += "\\t"; break;
    case '\0': Out += "\\0"; break;
    case '\\': Out += "\\\\"; break;
    case '"': Out += "\\\""; break;
    default: Out += C; break;
    }
  }
  Out += '"';
}

void dumpName(const IdentEntry *Name, unsigned Slot, std::string &Out) {
  Out += Name->getKey();
  Out += '#';
  Out += std::to_string(Slot);
}

void dumpExpr(const Node *E, std::string &Out) {
  switch (E->Kind) {
  case NodeKind::IntLit:
    Out += std::to_string(static_cast<const IntLit *>(E)->Value);
    return;
  case NodeKind::StrLit:
    return dumpString(static_cast<const StrLit *>(E)->Value, Out);
  case NodeKind::VarRef:
    return dumpName(static_cast<const VarRef *>(E)->Name, E->Slot, Out);
  case NodeKind::Unary:
    Out += '(';
    Out += opSpelling(E->Op);
    Out += ' ';
    dumpExpr(static_cast<const Unary *>(E)->Operand, Out);
    Out += ')';
    return;
  case NodeKind::Binary:
    Out += '(';
    Out += opSpelling(E->Op);
    Out += ' ';
    dumpExpr(static_cast<const Binary *>(E)->LHS, Out);
    Out += ' ';
    dumpExpr(static_cast<const Binary *>(E)->RHS, Out);
    Out += ')';
    return;
  case NodeKind::Call: {
    auto *C = static_cast<const Call *>(E);
    Out += "(call ";
    Out += C->Callee->getKey();
    for (const Node *A : C->Args) {
      Out += ' ';
      dumpExpr(A, Out);
    }
    Out += ')';
    return;
  }
  default:
    Out += "(?)";
    return;
  }
}

void indent(unsigned Level, std::string &Out) {
  Out += '\n';
  Out.append(2 * Level, ' ');
}

void dumpStmt(const Node *S, unsigned Level, std::string &Out) {
  switch (S->Kind) {
  case NodeKind::Let:
  case NodeKind::Assign: {
    auto *B = static_cast<const Binding *>(S);
    Out += S->Kind == NodeKind::Let ? "(let " : "(set ";
    dumpName(B->Name, S->Slot, Out);
    Out += ' ';
    dumpExpr(B->Init, Out);
    Out += ')';
    return;
  }
  case NodeKind::If: {
    auto *I = static_cast<const If *>(S);
    Out += "(if ";
    dumpExpr(I->Cond, Out);
    indent(Level + 1, Out);
    dumpStmt(I->Then, Level + 1, Out);
    if (I->Else) {
      indent(Level + 1, Out);
      dumpStmt(I->Else, Level + 1, Out);
    }
    Out += ')';
    return;
  }
  case NodeKind::While: {
    auto *W = static_cast<const While *>(S);
    Out += "(while ";
    dumpExpr(W->Cond, Out);
    indent(Level + 1, Out);
    dumpStmt(W->Body, Level + 1, Out);
    Out += ')';
    return;
  }
  case NodeKind::Return: {
    const Node *V = static_cast<const Return *>(S)->Value;
    Out += "(return";
    if (V) {
      Out += ' ';
      dumpExpr(V, Out);
    }
    Out += ')';
    return;
  }
  case NodeKind::ExprStmt:
    Out += "(expr ";
    dumpExpr(static_cast<const ExprStmt *>(S)->E, Out);
    Out += ')';
    return;
  case NodeKind::Block: {
    Out += "(block";
    for (const Node *St : static_cast<const Block *>(S)->Stmts) {
      indent(Level + 1, Out);
      dumpStmt(St, Level + 1, Out);
    }
    Out += ')';
    return;
  }
  default:
    dumpExpr(S, Out);
    return;
  }
}
} // namespace

void dumpProgram(const Program *P, std::string &Out) {
  Out += "(program";
  for (const FunctionDecl *F : P->Functions) {
    indent(1, Out);
    Out += "(fn ";
    Out += F->Name->getKey();
    Out += " (";
    for (size_t I = 0; I < F->Params.size(); I++) {
      if (I)
        Out += ' ';
      dumpName(F->Params[I], unsigned(I), Out);
    }
    Out += ") (frame ";
    Out += std::to_string(F->frameSize());
    Out += ')';
    indent(2, Out);
    dumpStmt(F->Body, 2, Out);
    Out += ')';
  }
  Out += ")\n";
}

} // namespace toy
