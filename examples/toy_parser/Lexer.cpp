//===- toy_parser/Lexer.cpp - Tokens of the toy language ------------------===//

#include "Lexer.h"

#include <fmt/format.h>


namespace toy {

Token Lexer::makeError(const char *At, std::string Message) {
  ErrorToken.Kind = TokKind::Error;
  ErrorToken.Offset = uint32_t(At - Begin);
  ErrorToken.Payload = 0;
  ErrorMessage = std::move(Message);
  Cur = End; // every later call sees the error again (see lexToken's first line)
  return ErrorToken;
}

Token Lexer::lexRare(const char *P) {
  using namespace detail;
  Token T;
  T.Offset = uint32_t(P - Begin);
  switch (Chars.Info[uint8_t(*P)].Action) {
  case Slash:
    if (P[1] != '/') {
      T.Kind = TokKind::Slash;
      T.Payload = 1;
      Cur = P + 1;
      return T;
    }
    // `//` comments, and the whitespace between them, up to the next token. (A loop, not a
    // recursion: a file of a million comment lines must not need a million stack frames.)
    do {
      while (*P != '\n' && P < End)
        P++;
      while (Chars.Info[uint8_t(*P)].Action == Space)
        P++;
    } while (P[0] == '/' && P[1] == '/');
    Cur = P;
    return lexToken();
  case Quote:
    return lexString(P);
  case Nul:
    if (P >= End) {
      T.Kind = TokKind::Eof;
      Cur = P;
      return T;
    }
    return makeError(P, "unexpected NUL byte in source");
  default:
    return unexpected(P);
  }
}

Token Lexer::lexNumberSlow(const char *Start) {
  const char *P = Start;
  uint64_t V = 0;
  for (; *P >= '0' && *P <= '9'; P++) {
    unsigned D = unsigned(*P - '0');
    if (V > (uint64_t(INT64_MAX) - D) / 10) {
      while (detail::isIdentChar(*P))
        P++;
      return makeError(Start, fmt::format("integer literal '{}' is too large",
                                          llvm::StringRef(Start, size_t(P - Start))));
    }
    V = V * 10 + D;
  }
  if (detail::isIdentChar(*P))
    return makeError(P, fmt::format("invalid suffix '{}' on integer literal", *P));
  Token T;
  T.Kind = TokKind::Integer;
  T.Offset = uint32_t(Start - Begin);
  T.Payload = V;
  Cur = P;
  return T;
}

Token Lexer::lexString(const char *Start) {
  const char *Q = Start + 1;
  Token T;
  for (;;) {
    char C = *Q;
    if (C == '"')
      break;
    if (C == '\n' || (C == '\0' && Q >= End))
      return makeError(Start, "unterminated string literal");
    if (C == '\\') {
      char E = Q[1];
      if (E == 'n' || E == 't' || E == '\\' || E == '"' || E == '0') {
        T.HasEscapes = true;
        Q += 2;
        continue;
      }
      if (E == '\n' || (E == '\0' && Q + 1 >= End))
        return makeError(Start, "unterminated string literal");
      return makeError(Q, (E >= 0x20 && E < 0x7f) ? fmt::format("unknown escape sequence '\\{}'", E)
                                                  : std::string("unknown escape sequence"));
    }
    Q++;
  }
  T.Kind = TokKind::String;
  T.Offset = uint32_t(Start - Begin);
  T.Payload = uint64_t(Q + 1 - Start); // with both quotes
  Cur = Q + 1;
  return T;
}

Token Lexer::unexpected(const char *P) {
  unsigned char C = uint8_t(*P);
  if (C >= 0x20 && C < 0x7f)
    return makeError(P, fmt::format("unexpected character '{}'", char(C)));
  return makeError(P, fmt::format("unexpected byte 0x{:02x}", C));
}

const char *tokenSpelling(TokKind K) {
  switch (K) {
  case TokKind::Eof: return "end of file";
  case TokKind::Error: return "invalid token";
  case TokKind::Identifier: return "identifier";
  case TokKind::Integer: return "integer literal";
  case TokKind::String: return "string literal";
  case TokKind::KwFn: return "'fn'";
  case TokKind::KwLet: return "'let'";
  case TokKind::KwIf: return "'if'";
  case TokKind::KwElse: return "'else'";
  case TokKind::KwWhile: return "'while'";
  case TokKind::KwReturn: return "'return'";
  case TokKind::LParen: return "'('";
  case TokKind::RParen: return "')'";
  case TokKind::LBrace: return "'{'";
  case TokKind::RBrace: return "'}'";
  case TokKind::Comma: return "','";
  case TokKind::Semi: return "';'";
  case TokKind::Assign: return "'='";
  case TokKind::EqEq: return "'=='";
  case TokKind::NotEq: return "'!='";
  case TokKind::Less: return "'<'";
  case TokKind::LessEq: return "'<='";
  case TokKind::Greater: return "'>'";
  case TokKind::GreaterEq: return "'>='";
  case TokKind::Plus: return "'+'";
  case TokKind::Minus: return "'-'";
  case TokKind::Star: return "'*'";
  case TokKind::Slash: return "'/'";
  case TokKind::Percent: return "'%'";
  case TokKind::Bang: return "'!'";
  }
  return "token";
}

} // namespace toy
