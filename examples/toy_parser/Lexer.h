//===- toy_parser/Lexer.h - Tokens of the toy language ------------*- C++ -*-===//
//
// The lexer turns source text into tokens on demand (the grammar needs no lookahead beyond
// the current token). It never allocates: a token is a kind, an offset into the source and a
// length, or the value of an integer literal. Escapes in string literals are validated here
// and decoded by the parser (which owns the memory). The common tokens are lexed inline: the
// parser asks for 1.7 million of them per million nodes.
//
// Errors: a malformed token (stray character, unterminated string, bad escape, integer
// overflow) becomes a TokKind::Error token at the offending offset with the message in
// errorMessage(); every later call returns the same error token.
//
//===----------------------------------------------------------------------===//
#ifndef TOY_PARSER_LEXER_H
#define TOY_PARSER_LEXER_H

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <cstring>
#include <string>

namespace toy {

enum class TokKind : uint8_t {
  Eof,
  Error,
  Identifier,
  Integer,
  String,
  KwFn,
  KwLet,
  KwIf,
  KwElse,
  KwWhile,
  KwReturn,
  LParen,
  RParen,
  LBrace,
  RBrace,
  Comma,
  Semi,
  Assign,    // =
  EqEq,      // ==
  NotEq,     // !=
  Less,      // <
  LessEq,    // <=
  Greater,   // >
  GreaterEq, // >=
  Plus,
  Minus,
  Star,
  Slash,
  Percent,
  Bang,
};

/// 16 bytes, so that lex() returns it in two registers.
struct Token {
  TokKind Kind = TokKind::Eof;
  bool HasEscapes = false; ///< String: the literal contains backslash escapes
  uint32_t Offset = 0;
  uint64_t Payload = 0; ///< Integer: its value (at most INT64_MAX); others: length in bytes

  uint64_t value() const { return Payload; }
  uint32_t length() const { return uint32_t(Payload); }
};

namespace detail {
/// What a byte starts. One table lookup classifies it; punctuation carries its token kind.
enum CharAction : uint8_t { Invalid, Space, Ident, Digit, Quote, Slash, Single, MaybeEq, Nul };
struct CharInfo {
  CharAction Action = Invalid;
  TokKind Kind = TokKind::Error;   ///< Single: the token; MaybeEq: the token without '='
  TokKind WithEq = TokKind::Error; ///< MaybeEq: the token when '=' follows
};

struct CharTable {
  CharInfo Info[256] = {};
  bool IsIdent[256] = {};
  constexpr CharTable() {
    for (int C = 0; C < 256; C++) {
      bool Letter = (C >= 'a' && C <= 'z') || (C >= 'A' && C <= 'Z') || C == '_';
      bool IsDigit = C >= '0' && C <= '9';
      IsIdent[C] = Letter || IsDigit;
      if (Letter)
        Info[C].Action = Ident;
      else if (IsDigit)
        Info[C].Action = Digit;
    }
    for (char C : {' ', '\t', '\n', '\r'})
      Info[uint8_t(C)].Action = Space;
    Info[0].Action = Nul;
    Info[uint8_t('"')].Action = Quote;
    Info[uint8_t('/')] = {Slash, TokKind::Slash, TokKind::Error};
    struct {
      char C;
      TokKind K;
    } const Singles[] = {{'(', TokKind::LParen}, {')', TokKind::RParen}, {'{', TokKind::LBrace},
                         {'}', TokKind::RBrace}, {',', TokKind::Comma},  {';', TokKind::Semi},
                         {'+', TokKind::Plus},   {'-', TokKind::Minus},  {'*', TokKind::Star},
                         {'%', TokKind::Percent}};
    for (auto S : Singles)
      Info[uint8_t(S.C)] = {Single, S.K, TokKind::Error};
    Info[uint8_t('=')] = {MaybeEq, TokKind::Assign, TokKind::EqEq};
    Info[uint8_t('!')] = {MaybeEq, TokKind::Bang, TokKind::NotEq};
    Info[uint8_t('<')] = {MaybeEq, TokKind::Less, TokKind::LessEq};
    Info[uint8_t('>')] = {MaybeEq, TokKind::Greater, TokKind::GreaterEq};
  }
};
inline constexpr CharTable Chars{};

inline bool isIdentChar(char C) { return Chars.IsIdent[uint8_t(C)]; }

inline TokKind keyword(const char *P, size_t N) {
  switch (N) {
  case 2:
    if (P[0] == 'f' && P[1] == 'n')
      return TokKind::KwFn;
    if (P[0] == 'i' && P[1] == 'f')
      return TokKind::KwIf;
    break;
  case 3:
    if (!std::memcmp(P, "let", 3))
      return TokKind::KwLet;
    break;
  case 4:
    if (!std::memcmp(P, "else", 4))
      return TokKind::KwElse;
    break;
  case 5:
    if (!std::memcmp(P, "while", 5))
      return TokKind::KwWhile;
    break;
  case 6:
    if (!std::memcmp(P, "return", 6))
      return TokKind::KwReturn;
    break;
  }
  return TokKind::Identifier;
}
} // namespace detail

class Lexer {
public:
  /// \p Text must stay alive and be followed by a NUL byte (std::string's c_str() guarantee).
  explicit Lexer(llvm::StringRef Text) : Begin(Text.data()), Cur(Text.data()), End(Text.data() + Text.size()) {}

  Token lex() { return lexToken(); }

  /// The source text of \p T.
  llvm::StringRef text(const Token &T) const { return llvm::StringRef(Begin + T.Offset, T.length()); }
  /// The bytes between the quotes of a String token (escapes not yet decoded).
  llvm::StringRef stringBody(const Token &T) const { return llvm::StringRef(Begin + T.Offset + 1, T.length() - 2); }

  const std::string &errorMessage() const { return ErrorMessage; }

private:
  /// The common tokens inline (the parser asks for 1.7 million of them per million nodes);
  /// comments, strings, the end and errors out of line.
  Token lexToken() {
    using namespace detail;
    if (ErrorToken.Kind == TokKind::Error)
      return ErrorToken;
    const char *P = Cur;
    while (Chars.Info[uint8_t(*P)].Action == Space)
      P++;
    const CharInfo &I = Chars.Info[uint8_t(*P)];
    Token T;
    T.Offset = uint32_t(P - Begin);
    switch (I.Action) {
    case Single:
      T.Kind = I.Kind;
      T.Payload = 1;
      Cur = P + 1;
      return T;
    case Ident: {
      const char *Start = P;
      do
        P++;
      while (isIdentChar(*P));
      T.Payload = uint64_t(P - Start);
      T.Kind = keyword(Start, size_t(P - Start));
      Cur = P;
      return T;
    }
    case Digit: {
      // 18 digits cannot overflow; longer literals and suffixes take the slow path.
      const char *Start = P;
      uint64_t V = 0;
      do
        V = V * 10 + unsigned(*P++ - '0');
      while (Chars.Info[uint8_t(*P)].Action == Digit && P - Start < 18);
      if (isIdentChar(*P))
        return lexNumberSlow(Start);
      T.Kind = TokKind::Integer;
      T.Payload = V;
      Cur = P;
      return T;
    }
    case MaybeEq: {
      bool Eq = P[1] == '=';
      T.Kind = Eq ? I.WithEq : I.Kind;
      T.Payload = Eq ? 2 : 1;
      Cur = P + T.Payload;
      return T;
    }
    default:
      return lexRare(P);
    }
  }
  Token lexRare(const char *P);
  Token lexString(const char *Start);
  Token lexNumberSlow(const char *Start);
  Token unexpected(const char *P);
  Token makeError(const char *At, std::string Message);

  const char *Begin, *Cur, *End;
  Token ErrorToken;
  std::string ErrorMessage;
};

/// Human-readable name of a token kind, for diagnostics ("')'", "identifier", ...).
const char *tokenSpelling(TokKind K);

} // namespace toy

#endif // TOY_PARSER_LEXER_H
