//===- toy_parser/Parser.h - Recursive-descent parser ---------------*- C++ -*-===//
//
// The grammar (docs/toy_parser.md has it with examples):
//
//   program    := function*
//   function   := 'fn' IDENT '(' [IDENT (',' IDENT)*] ')' block
//   block      := '{' statement* '}'
//   statement  := 'let' IDENT '=' expr ';'  |  IDENT '=' expr ';'  |  expr ';'
//               | 'if' expr block ['else' (block | if-statement)]
//               | 'while' expr block  |  'return' [expr] ';'  |  block
//   expr       := equality;  equality := relational (('==' | '!=') relational)*
//   relational := additive (('<' | '<=' | '>' | '>=') additive)*
//   additive   := term (('+' | '-') term)*;   term := unary (('*' | '/' | '%') unary)*
//   unary      := ('-' | '!') unary | primary
//   primary    := INTEGER | STRING | IDENT | IDENT '(' [expr (',' expr)*] ')' | '(' expr ')'
//
// Parser<StorageT> is written once for the four storage strategies of Storage.h; the strategy
// is a template parameter so that node allocation inlines (a virtual call per node would
// distort the comparison the program exists to make).
//
// Errors: the first error stops the parse; parseProgram() returns null and diagnostic() says
// where and why. Nothing leaks: a parse function that fails has already handed every node it
// built to StorageT::discard (a no-op for strategies that free wholesale, a recursive delete
// for MallocStorage), and children collected for a list are discarded from the shared stack.
//
// Limits, so that no input can overflow the stack of this or any later recursive pass:
// nesting of blocks, parentheses, calls and unary operators at most MaxDepth; any tree
// (including long left-leaning operator chains such as 1+1+...+1) at most MaxHeight high.
//
//===----------------------------------------------------------------------===//
#ifndef TOY_PARSER_PARSER_H
#define TOY_PARSER_PARSER_H

#include "AST.h"
#include "Lexer.h"
#include "Source.h"

#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <vector>

namespace toy {

constexpr unsigned MaxDepth = 256;
constexpr unsigned MaxHeight = 2048;

template <typename StorageT> class Parser {
public:
  Parser(const SourceFile &File, StorageT &S) : File(File), Lex(File.Text), S(S) {
    Stack.reserve(256);
    next();
  }

  /// The whole program, or null after an error (see diagnostic()).
  Program *parseProgram();
  const Diagnostic &diagnostic() const { return Diag; }

private:
  void next() { Tok = Lex.lex(); }

  /// Interns the current identifier token. A program uses a few names over and over, so a
  /// direct-mapped cache of names of up to 8 bytes answers most lookups with one compare,
  /// instead of a hash over the name and a probe of the storage's StringMap. The same in every
  /// mode: it changes what parsing costs, not what allocation does.
  IdentEntry *internIdentifier() {
    llvm::StringRef Name = Lex.text(Tok);
    if (Name.size() > 8)
      return S.intern(Name);
    uint64_t Key = 0;
    for (size_t I = 0; I < Name.size(); I++)
      Key |= uint64_t(uint8_t(Name[I])) << (8 * I);
    // The bytes and the length, without collisions: identifier bytes are ASCII and never NUL,
    // so the length fits in the top bits that a shorter name leaves zero or ASCII leaves clear.
    Key |= uint64_t(Name.size()) << 60;
    CachedName &C = NameCache[(Key * 0x9e3779b97f4a7c15ull) >> (64 - NameCacheBits)];
    if (C.Key != Key || !C.Entry) {
      C.Key = Key;
      C.Entry = S.intern(Name);
    }
    return C.Entry;
  }

  /// Records an error at the current token (or the lexer's error, if that is what the current
  /// token is) and returns null.
  std::nullptr_t fail(const char *Message) { return failAt(Tok.Offset, Message); }
  std::nullptr_t failAt(uint32_t Offset, std::string Message) {
    if (Tok.Kind == TokKind::Error)
      Diag.set(Tok.Offset, Lex.errorMessage());
    else
      Diag.set(Offset, std::move(Message));
    return nullptr;
  }
  bool enter() { return ++Depth <= MaxDepth; }
  /// \p Offset: the token that opened the level too many.
  std::nullptr_t tooDeep(uint32_t Offset) {
    return failAt(Offset, "nesting too deep (more than 256 levels of blocks, parentheses, calls and unary operators)");
  }
  bool checkHeight() { return Height <= MaxHeight; }
  std::nullptr_t tooHigh(uint32_t Offset) { return failAt(Offset, "syntax tree too deep here (more than 2048 levels)"); }

  /// Discards the nodes collected on the stack since \p Mark (error path).
  void discardFrom(size_t Mark) {
    for (size_t I = Mark; I < Stack.size(); I++)
      S.discard(Stack[I]);
    Stack.resize(Mark);
  }
  /// Moves the nodes collected since \p Mark into storage as an array.
  llvm::ArrayRef<Node *> takeFrom(size_t Mark) {
    auto Result = S.copyArray(llvm::ArrayRef<Node *>(Stack.data() + Mark, Stack.size() - Mark));
    Stack.resize(Mark);
    return Result;
  }

  FunctionDecl *parseFunction();
  Block *parseBlock();
  Node *parseStatement();
  Node *parseLet();
  Node *parseBinding(NodeKind Kind, IdentEntry *Name, uint32_t Offset);
  Node *parseIdentifierStatement();
  Node *parseIf();
  Node *parseWhile();
  Node *parseReturn();
  Node *parseExprStatement();
  Node *finishExprStatement(Node *E, uint32_t Offset);
  Node *parseExpr() { return parseBinary(1); }
  Node *parseBinary(int MinPrec);
  Node *parseBinaryRest(Node *LHS, int MinPrec);
  Node *parseUnary();
  Node *parsePrimary();
  Node *parseString();
  Node *parseNameExpr(IdentEntry *Name, uint32_t Offset);
  Node *parseCall(IdentEntry *Callee, uint32_t Offset);

  static int precedence(TokKind K, OpKind &Op) {
    switch (K) {
    case TokKind::EqEq: Op = OpKind::Eq; return 1;
    case TokKind::NotEq: Op = OpKind::Ne; return 1;
    case TokKind::Less: Op = OpKind::Lt; return 2;
    case TokKind::LessEq: Op = OpKind::Le; return 2;
    case TokKind::Greater: Op = OpKind::Gt; return 2;
    case TokKind::GreaterEq: Op = OpKind::Ge; return 2;
    case TokKind::Plus: Op = OpKind::Add; return 3;
    case TokKind::Minus: Op = OpKind::Sub; return 3;
    case TokKind::Star: Op = OpKind::Mul; return 4;
    case TokKind::Slash: Op = OpKind::Div; return 4;
    case TokKind::Percent: Op = OpKind::Rem; return 4;
    default: return 0;
    }
  }

  const SourceFile &File;
  Lexer Lex;
  Token Tok;
  StorageT &S;
  Diagnostic Diag;
  /// Children being collected (block statements, call arguments), shared by nested lists:
  /// each list remembers where its items start.
  std::vector<Node *> Stack;
  std::vector<IdentEntry *> Params; ///< parameters of the function being parsed
  std::string Unescaped; ///< scratch for string literals with escapes
  static constexpr unsigned NameCacheBits = 10;
  struct CachedName {
    uint64_t Key = 0;
    IdentEntry *Entry = nullptr;
  };
  CachedName NameCache[1u << NameCacheBits];
  unsigned Depth = 0;
  unsigned Height = 0; ///< height of the node most recently returned
};

template <typename StorageT> Program *Parser<StorageT>::parseProgram() {
  uint32_t Offset = 0; // the program starts where the file does
  std::vector<FunctionDecl *> Functions;
  auto DiscardAll = [&] {
    for (FunctionDecl *F : Functions)
      S.discard(F);
  };
  while (Tok.Kind != TokKind::Eof) {
    if (Tok.Kind != TokKind::KwFn) {
      DiscardAll();
      return fail("expected 'fn' to begin a function definition");
    }
    FunctionDecl *F = parseFunction();
    if (!F) {
      DiscardAll();
      return nullptr;
    }
    Functions.push_back(F);
  }
  return S.template make<Program>(Offset, S.copyArray(llvm::ArrayRef<FunctionDecl *>(Functions)));
}

template <typename StorageT> FunctionDecl *Parser<StorageT>::parseFunction() {
  uint32_t Offset = Tok.Offset;
  next(); // 'fn'
  if (Tok.Kind != TokKind::Identifier)
    return fail("expected function name after 'fn'");
  IdentEntry *Name = internIdentifier();
  next();
  if (Tok.Kind != TokKind::LParen)
    return fail("expected '(' after function name");
  next();
  // Parameters are collected in their own list (functions do not nest) and copied to storage
  // only once the body is parsed: an error on the way allocates nothing for them.
  Params.clear();
  if (Tok.Kind != TokKind::RParen) {
    for (;;) {
      if (Tok.Kind != TokKind::Identifier)
        return fail("expected parameter name");
      Params.push_back(internIdentifier());
      next();
      if (Tok.Kind == TokKind::Comma) {
        next();
        continue;
      }
      if (Tok.Kind != TokKind::RParen)
        return fail("expected ')' after parameters");
      break;
    }
  }
  next(); // ')'
  if (Tok.Kind != TokKind::LBrace)
    return fail("expected '{' to begin the function body");
  Block *Body = parseBlock();
  if (!Body)
    return nullptr;
  auto ParamArray = S.copyArray(llvm::ArrayRef<IdentEntry *>(Params));
  return S.template make<FunctionDecl>(Offset, Name, ParamArray, Body);
}

template <typename StorageT> Block *Parser<StorageT>::parseBlock() {
  uint32_t Offset = Tok.Offset;
  next(); // '{'
  if (!enter())
    return tooDeep(Offset);
  size_t Mark = Stack.size();
  unsigned H = 0;
  while (Tok.Kind != TokKind::RBrace) {
    if (Tok.Kind == TokKind::Eof) {
      discardFrom(Mark);
      unsigned Line, Column;
      File.lineColumn(Offset, Line, Column);
      return failAt(Tok.Offset, fmt::format("expected '}}' at end of block (to match the '{{' at {}:{})", Line, Column));
    }
    Node *St = parseStatement();
    if (!St) {
      discardFrom(Mark);
      return nullptr;
    }
    H = std::max(H, Height);
    Stack.push_back(St);
  }
  next(); // '}'
  Depth--;
  auto Stmts = takeFrom(Mark);
  Height = H + 1;
  return S.template make<Block>(Offset, Stmts);
}

template <typename StorageT> Node *Parser<StorageT>::parseStatement() {
  switch (Tok.Kind) {
  case TokKind::KwLet:
    return parseLet();
  case TokKind::KwIf:
    return parseIf();
  case TokKind::KwWhile:
    return parseWhile();
  case TokKind::KwReturn:
    return parseReturn();
  case TokKind::LBrace:
    return parseBlock();
  case TokKind::Identifier:
    return parseIdentifierStatement();
  default:
    return parseExprStatement();
  }
}

template <typename StorageT> Node *Parser<StorageT>::parseLet() {
  uint32_t Offset = Tok.Offset;
  next(); // 'let'
  if (Tok.Kind != TokKind::Identifier)
    return fail("expected variable name after 'let'");
  IdentEntry *Name = internIdentifier();
  next();
  return parseBinding(NodeKind::Let, Name, Offset);
}

template <typename StorageT>
Node *Parser<StorageT>::parseBinding(NodeKind Kind, IdentEntry *Name, uint32_t Offset) {
  if (Tok.Kind != TokKind::Assign)
    return fail("expected '=' after variable name");
  next();
  Node *Init = parseExpr();
  if (!Init)
    return nullptr;
  if (Tok.Kind != TokKind::Semi) {
    S.discard(Init);
    return fail(Kind == NodeKind::Let ? "expected ';' after let binding" : "expected ';' after assignment");
  }
  next();
  Height++;
  if (Kind == NodeKind::Let)
    return S.template make<Let>(Offset, Name, Init);
  return S.template make<Assign>(Offset, Name, Init);
}

template <typename StorageT> Node *Parser<StorageT>::parseIdentifierStatement() {
  // `name = expr;` or an expression statement that starts with a name: decided by the token
  // after the name, without a second token of lookahead.
  uint32_t Offset = Tok.Offset;
  IdentEntry *Name = internIdentifier();
  next();
  if (Tok.Kind == TokKind::Assign)
    return parseBinding(NodeKind::Assign, Name, Offset);
  Node *First = parseNameExpr(Name, Offset);
  if (!First)
    return nullptr;
  Node *E = parseBinaryRest(First, 1);
  if (!E)
    return nullptr;
  return finishExprStatement(E, Offset);
}

template <typename StorageT> Node *Parser<StorageT>::parseIf() {
  uint32_t Offset = Tok.Offset;
  next(); // 'if'
  Node *Cond = parseExpr();
  if (!Cond)
    return nullptr;
  unsigned H = Height;
  if (Tok.Kind != TokKind::LBrace) {
    S.discard(Cond);
    return fail("expected '{' after if condition");
  }
  Block *Then = parseBlock();
  if (!Then) {
    S.discard(Cond);
    return nullptr;
  }
  H = std::max(H, Height);
  Node *Else = nullptr;
  if (Tok.Kind == TokKind::KwElse) {
    next();
    if (Tok.Kind == TokKind::LBrace) {
      Else = parseBlock();
    } else if (Tok.Kind == TokKind::KwIf) {
      if (!enter()) {
        Else = tooDeep(Tok.Offset);
      } else {
        Else = parseIf();
        Depth--;
      }
    } else {
      fail("expected '{' or 'if' after 'else'");
    }
    if (!Else) {
      S.discard(Cond);
      S.discard(Then);
      return nullptr;
    }
    H = std::max(H, Height);
  }
  Height = H + 1;
  if (!checkHeight()) {
    S.discard(Cond);
    S.discard(Then);
    S.discard(Else);
    return tooHigh(Offset);
  }
  return S.template make<If>(Offset, Cond, Then, Else);
}

template <typename StorageT> Node *Parser<StorageT>::parseWhile() {
  uint32_t Offset = Tok.Offset;
  next(); // 'while'
  Node *Cond = parseExpr();
  if (!Cond)
    return nullptr;
  unsigned H = Height;
  if (Tok.Kind != TokKind::LBrace) {
    S.discard(Cond);
    return fail("expected '{' after while condition");
  }
  Block *Body = parseBlock();
  if (!Body) {
    S.discard(Cond);
    return nullptr;
  }
  Height = std::max(H, Height) + 1;
  if (!checkHeight()) {
    S.discard(Cond);
    S.discard(Body);
    return tooHigh(Offset);
  }
  return S.template make<While>(Offset, Cond, Body);
}

template <typename StorageT> Node *Parser<StorageT>::parseReturn() {
  uint32_t Offset = Tok.Offset;
  next(); // 'return'
  Node *Value = nullptr;
  Height = 0;
  if (Tok.Kind != TokKind::Semi) {
    Value = parseExpr();
    if (!Value)
      return nullptr;
    if (Tok.Kind != TokKind::Semi) {
      S.discard(Value);
      return fail("expected ';' after return value");
    }
  }
  next();
  Height++;
  return S.template make<Return>(Offset, Value);
}

template <typename StorageT> Node *Parser<StorageT>::parseExprStatement() {
  uint32_t Offset = Tok.Offset;
  Node *E = parseExpr();
  if (!E)
    return nullptr;
  return finishExprStatement(E, Offset);
}

template <typename StorageT> Node *Parser<StorageT>::finishExprStatement(Node *E, uint32_t Offset) {
  if (Tok.Kind != TokKind::Semi) {
    S.discard(E);
    return fail("expected ';' after expression");
  }
  next();
  Height++;
  return S.template make<ExprStmt>(Offset, E);
}

template <typename StorageT> Node *Parser<StorageT>::parseBinary(int MinPrec) {
  Node *LHS = parseUnary();
  if (!LHS)
    return nullptr;
  return parseBinaryRest(LHS, MinPrec);
}

template <typename StorageT> Node *Parser<StorageT>::parseBinaryRest(Node *LHS, int MinPrec) {
  unsigned H = Height; // of LHS
  for (;;) {
    OpKind Op = OpKind::None;
    int Prec = precedence(Tok.Kind, Op);
    if (Prec < MinPrec)
      break;
    uint32_t Offset = Tok.Offset;
    next();
    Node *RHS = parseBinary(Prec + 1);
    if (!RHS) {
      S.discard(LHS);
      return nullptr;
    }
    H = std::max(H, Height) + 1;
    if (H > MaxHeight) {
      S.discard(LHS);
      S.discard(RHS);
      return tooHigh(Offset);
    }
    LHS = S.template make<Binary>(Offset, Op, LHS, RHS);
  }
  Height = H;
  return LHS;
}

template <typename StorageT> Node *Parser<StorageT>::parseUnary() {
  if (Tok.Kind != TokKind::Minus && Tok.Kind != TokKind::Bang)
    return parsePrimary();
  OpKind Op = Tok.Kind == TokKind::Minus ? OpKind::Neg : OpKind::Not;
  uint32_t Offset = Tok.Offset;
  next();
  if (!enter())
    return tooDeep(Offset);
  Node *Operand = parseUnary();
  if (!Operand)
    return nullptr;
  Depth--;
  Height++;
  return S.template make<Unary>(Offset, Op, Operand);
}

template <typename StorageT> Node *Parser<StorageT>::parsePrimary() {
  uint32_t Offset = Tok.Offset;
  switch (Tok.Kind) {
  case TokKind::Integer: {
    int64_t V = int64_t(Tok.value());
    next();
    Height = 1;
    return S.template make<IntLit>(Offset, V);
  }
  case TokKind::String:
    return parseString();
  case TokKind::Identifier: {
    IdentEntry *Name = internIdentifier();
    next();
    return parseNameExpr(Name, Offset);
  }
  case TokKind::LParen: {
    next();
    if (!enter())
      return tooDeep(Offset);
    Node *E = parseExpr();
    if (!E)
      return nullptr;
    if (Tok.Kind != TokKind::RParen) {
      S.discard(E);
      return fail("expected ')' after expression");
    }
    next();
    Depth--;
    return E;
  }
  default:
    return fail("expected expression");
  }
}

template <typename StorageT> Node *Parser<StorageT>::parseNameExpr(IdentEntry *Name, uint32_t Offset) {
  if (Tok.Kind == TokKind::LParen)
    return parseCall(Name, Offset);
  Height = 1;
  return S.template make<VarRef>(Offset, Name);
}

template <typename StorageT> Node *Parser<StorageT>::parseString() {
  uint32_t Offset = Tok.Offset;
  llvm::StringRef Body = Lex.stringBody(Tok);
  llvm::StringRef Value = Body;
  if (Tok.HasEscapes) {
    // The lexer has validated every escape.
    Unescaped.clear();
    for (size_t I = 0; I < Body.size(); I++) {
      char C = Body[I];
      if (C == '\\') {
        char E = Body[++I];
        C = E == 'n' ? '\n' : E == 't' ? '\t' : E == '0' ? '\0' : E;
      }
      Unescaped.push_back(C);
    }
    Value = Unescaped;
  }
  next();
  Height = 1;
  return S.template make<StrLit>(Offset, S.copyString(Value));
}

template <typename StorageT> Node *Parser<StorageT>::parseCall(IdentEntry *Callee, uint32_t Offset) {
  next(); // '('
  if (!enter())
    return tooDeep(Offset);
  size_t Mark = Stack.size();
  unsigned H = 0;
  if (Tok.Kind != TokKind::RParen) {
    for (;;) {
      Node *Arg = parseExpr();
      if (!Arg) {
        discardFrom(Mark);
        return nullptr;
      }
      H = std::max(H, Height);
      Stack.push_back(Arg);
      if (Tok.Kind == TokKind::Comma) {
        next();
        continue;
      }
      if (Tok.Kind != TokKind::RParen) {
        discardFrom(Mark);
        return fail("expected ')' after arguments");
      }
      break;
    }
  }
  next(); // ')'
  Depth--;
  Height = H + 1;
  auto Args = takeFrom(Mark);
  return S.template make<Call>(Offset, Callee, Args);
}

} // namespace toy

#endif // TOY_PARSER_PARSER_H
