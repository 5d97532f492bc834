//===- toy_parser/Source.h - Source text and diagnostics ----------*- C++ -*-===//
//
// SourceFile holds the text being compiled (a file's contents or a generated program) and the
// name diagnostics print. Nodes and tokens refer to it by byte offset; line and column are
// computed only when a diagnostic is printed, so the hot paths never track them.
//
// A Diagnostic is the first error of a phase (lexer, parser, resolver, evaluator): every phase
// stops at its first error, so there is never more than one.
//
//===----------------------------------------------------------------------===//
#ifndef TOY_PARSER_SOURCE_H
#define TOY_PARSER_SOURCE_H

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <cstdio>
#include <string>

namespace toy {

struct SourceFile {
  std::string Name; ///< as given on the command line, or "<generated>"
  std::string Text; ///< std::string keeps a NUL after the last byte: the lexer's sentinel

  /// 1-based line and column (in bytes) of \p Offset.
  void lineColumn(uint32_t Offset, unsigned &Line, unsigned &Column) const;
  /// The text of the line containing \p Offset, without its newline.
  llvm::StringRef lineAt(uint32_t Offset) const;
};

struct Diagnostic {
  uint32_t Offset = 0;
  std::string Message;

  explicit operator bool() const { return !Message.empty(); }
  /// Sets the error unless one is already recorded (the first error wins).
  void set(uint32_t At, std::string Msg) {
    if (Message.empty()) {
      Offset = At;
      Message = std::move(Msg);
    }
  }
};

/// Prints `name:line:col: error: message`, the source line and a caret to \p Out.
void printDiagnostic(std::FILE *Out, const SourceFile &File, const Diagnostic &D);

} // namespace toy

#endif // TOY_PARSER_SOURCE_H
