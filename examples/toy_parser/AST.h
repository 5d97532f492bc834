//===- toy_parser/AST.h - The toy language's syntax tree ----------*- C++ -*-===//
//
// What it holds: one struct per node kind, all derived from Node. Nodes are plain data with
// trivial destructors, so a whole tree can die with the memory it lives in (one region
// destroy, one bump allocator destructor) without a walk; only the malloc strategy walks it
// (see Storage.h). Child lists are llvm::ArrayRef over memory of the same strategy;
// identifiers are entries of an llvm::StringMap (one entry per distinct name), so two
// references to `x` hold the same IdentEntry pointer.
//
// Invariants: every child pointer of a finished tree is non-null except If::Else and
// Return::Value; a node's Offset is the byte offset of its first token (of its operator for
// Binary) in the source; Slot fields are meaningful only after the Resolver has run.
//
// Size matters: a million of these are built per run, so the common kinds fit in 16 or 24
// bytes (an 8-byte header carrying kind, operator, slot and source offset).
//
// Threads: a tree is built, resolved, evaluated and destroyed by one thread.
//
//===----------------------------------------------------------------------===//
#ifndef TOY_PARSER_AST_H
#define TOY_PARSER_AST_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>

namespace toy {

struct FunctionDecl;

/// What the resolver records about a name. Functions live in one global namespace; Slot is the
/// innermost local binding of the name in the function being resolved (-1: none).
struct IdentInfo {
  FunctionDecl *Fn = nullptr;
  int32_t Slot = -1;
};
using IdentEntry = llvm::StringMapEntry<IdentInfo>;

enum class NodeKind : uint8_t {
  IntLit,
  StrLit,
  VarRef,
  Unary,
  Binary,
  Call,
  Let,
  Assign,
  If,
  While,
  Return,
  ExprStmt,
  Block,
  Function,
  Program,
};
constexpr unsigned NumNodeKinds = unsigned(NodeKind::Program) + 1;

enum class OpKind : uint8_t {
  None,
  // binary, by precedence level (lowest first)
  Eq, Ne,                 // ==  !=
  Lt, Le, Gt, Ge,         // <  <=  >  >=
  Add, Sub,               // +  -
  Mul, Div, Rem,          // *  /  %
  // unary
  Neg, Not,               // -  !
};

/// Local-variable slots are 16 bits wide: a function may have at most this many parameters and
/// let-bindings (the resolver reports more as an error).
constexpr unsigned MaxSlots = 0xFFFF;

struct Node {
  NodeKind Kind;
  OpKind Op = OpKind::None;
  uint16_t Slot = 0; ///< VarRef/Let/Assign: frame slot; Function: frame size
  uint32_t Offset;   ///< byte offset in the source, for diagnostics

protected:
  Node(NodeKind K, uint32_t Offset) : Kind(K), Offset(Offset) {}
};
static_assert(sizeof(Node) == 8, "the node header must stay 8 bytes");

struct IntLit : Node {
  int64_t Value;
  IntLit(uint32_t Offset, int64_t Value) : Node(NodeKind::IntLit, Offset), Value(Value) {}
  static bool classof(const Node *N) { return N->Kind == NodeKind::IntLit; }
};

/// A string literal; Value holds the bytes after escape processing (not NUL-terminated).
struct StrLit : Node {
  llvm::StringRef Value;
  StrLit(uint32_t Offset, llvm::StringRef Value) : Node(NodeKind::StrLit, Offset), Value(Value) {}
  static bool classof(const Node *N) { return N->Kind == NodeKind::StrLit; }
};

struct VarRef : Node {
  IdentEntry *Name;
  VarRef(uint32_t Offset, IdentEntry *Name) : Node(NodeKind::VarRef, Offset), Name(Name) {}
  static bool classof(const Node *N) { return N->Kind == NodeKind::VarRef; }
};

struct Unary : Node {
  Node *Operand;
  Unary(uint32_t Offset, OpKind O, Node *Operand) : Node(NodeKind::Unary, Offset), Operand(Operand) { Op = O; }
  static bool classof(const Node *N) { return N->Kind == NodeKind::Unary; }
};

struct Binary : Node {
  Node *LHS, *RHS;
  Binary(uint32_t Offset, OpKind O, Node *LHS, Node *RHS) : Node(NodeKind::Binary, Offset), LHS(LHS), RHS(RHS) {
    Op = O;
  }
  static bool classof(const Node *N) { return N->Kind == NodeKind::Binary; }
};

struct Call : Node {
  IdentEntry *Callee;
  llvm::ArrayRef<Node *> Args;
  Call(uint32_t Offset, IdentEntry *Callee, llvm::ArrayRef<Node *> Args)
      : Node(NodeKind::Call, Offset), Callee(Callee), Args(Args) {}
  static bool classof(const Node *N) { return N->Kind == NodeKind::Call; }
};

/// `let Name = Init;` (Let) and `Name = Init;` (Assign) share a layout.
struct Binding : Node {
  IdentEntry *Name;
  Node *Init;
  Binding(NodeKind K, uint32_t Offset, IdentEntry *Name, Node *Init) : Node(K, Offset), Name(Name), Init(Init) {}
  static bool classof(const Node *N) { return N->Kind == NodeKind::Let || N->Kind == NodeKind::Assign; }
};
struct Let : Binding {
  Let(uint32_t Offset, IdentEntry *Name, Node *Init) : Binding(NodeKind::Let, Offset, Name, Init) {}
  static bool classof(const Node *N) { return N->Kind == NodeKind::Let; }
};
struct Assign : Binding {
  Assign(uint32_t Offset, IdentEntry *Name, Node *Init) : Binding(NodeKind::Assign, Offset, Name, Init) {}
  static bool classof(const Node *N) { return N->Kind == NodeKind::Assign; }
};

struct Block : Node {
  llvm::ArrayRef<Node *> Stmts;
  Block(uint32_t Offset, llvm::ArrayRef<Node *> Stmts) : Node(NodeKind::Block, Offset), Stmts(Stmts) {}
  static bool classof(const Node *N) { return N->Kind == NodeKind::Block; }
};

/// `if Cond Then [else Else]`; Else is a Block, another If (else if), or null.
struct If : Node {
  Node *Cond;
  Block *Then;
  Node *Else;
  If(uint32_t Offset, Node *Cond, Block *Then, Node *Else)
      : Node(NodeKind::If, Offset), Cond(Cond), Then(Then), Else(Else) {}
  static bool classof(const Node *N) { return N->Kind == NodeKind::If; }
};

struct While : Node {
  Node *Cond;
  Block *Body;
  While(uint32_t Offset, Node *Cond, Block *Body) : Node(NodeKind::While, Offset), Cond(Cond), Body(Body) {}
  static bool classof(const Node *N) { return N->Kind == NodeKind::While; }
};

/// `return [Value];`, Value may be null (the function returns 0).
struct Return : Node {
  Node *Value;
  Return(uint32_t Offset, Node *Value) : Node(NodeKind::Return, Offset), Value(Value) {}
  static bool classof(const Node *N) { return N->Kind == NodeKind::Return; }
};

struct ExprStmt : Node {
  Node *E;
  ExprStmt(uint32_t Offset, Node *E) : Node(NodeKind::ExprStmt, Offset), E(E) {}
  static bool classof(const Node *N) { return N->Kind == NodeKind::ExprStmt; }
};

/// `fn Name(Params) Body`. The resolver stores the frame size (parameters + let-bindings) in
/// Slot (see frameSize()).
struct FunctionDecl : Node {
  IdentEntry *Name;
  llvm::ArrayRef<IdentEntry *> Params;
  Block *Body;
  FunctionDecl(uint32_t Offset, IdentEntry *Name, llvm::ArrayRef<IdentEntry *> Params, Block *Body)
      : Node(NodeKind::Function, Offset), Name(Name), Params(Params), Body(Body) {}
  unsigned frameSize() const { return Slot; }
  static bool classof(const Node *N) { return N->Kind == NodeKind::Function; }
};

struct Program : Node {
  llvm::ArrayRef<FunctionDecl *> Functions;
  Program(uint32_t Offset, llvm::ArrayRef<FunctionDecl *> Functions)
      : Node(NodeKind::Program, Offset), Functions(Functions) {}
  static bool classof(const Node *N) { return N->Kind == NodeKind::Program; }
};

/// Spelling of an operator, for dumps and diagnostics.
const char *opSpelling(OpKind Op);

} // namespace toy

#endif // TOY_PARSER_AST_H
