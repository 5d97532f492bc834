//===- toy_parser/Source.cpp - Source text and diagnostics ----------------===//

#include "Source.h"
#include "AST.h"

#include <fmt/format.h>

#include <algorithm>

namespace toy {

void SourceFile::lineColumn(uint32_t Offset, unsigned &Line, unsigned &Column) const {
  size_t End = std::min<size_t>(Offset, Text.size());
  Line = 1;
  size_t LineStart = 0;
  for (size_t I = 0; I < End; I++)
    if (Text[I] == '\n')
      Line++, LineStart = I + 1;
  Column = unsigned(End - LineStart) + 1;
}

llvm::StringRef SourceFile::lineAt(uint32_t Offset) const {
  size_t At = std::min<size_t>(Offset, Text.size());
  size_t Begin = 0;
  if (At > 0) {
    size_t NewLine = Text.rfind('\n', At - 1);
    Begin = NewLine == std::string::npos ? 0 : NewLine + 1;
  }
  size_t End = Text.find('\n', At);
  if (End == std::string::npos)
    End = Text.size();
  if (End > Begin && Text[End - 1] == '\r')
    End--;
  return llvm::StringRef(Text).slice(Begin, End);
}

void printDiagnostic(std::FILE *Out, const SourceFile &File, const Diagnostic &D) {
  unsigned Line, Column;
  File.lineColumn(D.Offset, Line, Column);
  fmt::print(Out, "{}:{}:{}: error: {}\n", File.Name, Line, Column, D.Message);
  llvm::StringRef Text = File.lineAt(D.Offset);
  // Long generated lines would flood the terminal: show at most 160 bytes around the column.
  if (Text.size() <= 160) {
    std::string Caret(Column - 1, ' ');
    for (size_t I = 0; I + 1 < Column && I < Text.size(); I++)
      if (Text[I] == '\t')
        Caret[I] = '\t';
    fmt::print(Out, "{}\n{}^\n", Text, Caret);
  }
}

const char *opSpelling(OpKind Op) {
  switch (Op) {
  case OpKind::None: return "?";
  case OpKind::Eq: return "==";
  case OpKind::Ne: return "!=";
  case OpKind::Lt: return "<";
  case OpKind::Le: return "<=";
  case OpKind::Gt: return ">";
  case OpKind::Ge: return ">=";
  case OpKind::Add: return "+";
  case OpKind::Sub: return "-";
  case OpKind::Mul: return "*";
  case OpKind::Div: return "/";
  case OpKind::Rem: return "%";
  case OpKind::Neg: return "neg";
  case OpKind::Not: return "not";
  }
  return "?";
}

} // namespace toy
