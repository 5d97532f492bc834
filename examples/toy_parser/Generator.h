//===- toy_parser/Generator.h - Deterministic program generator ----*- C++ -*-===//
//
// generateProgram(N, Seed) writes the source of a toy program whose syntax tree has exactly N
// nodes, the same text for the same (N, Seed) on every machine. The generator counts the nodes
// each construct will parse to as it writes it, and pads the end of `main` to hit N.
//
// The programs are built to evaluate quickly, whatever N: loops count to at most 3 and nest
// at most twice; functions are either leaves (no calls) or call only leaves, and never from
// inside a loop; main calls every function once, folding the results into its return value.
// So evaluation costs a small constant number of steps per node.
//
//===----------------------------------------------------------------------===//
#ifndef TOY_PARSER_GENERATOR_H
#define TOY_PARSER_GENERATOR_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace toy {

/// The smallest program: fn main() { let acc = 0; return acc; } is 7 nodes with its Program.
constexpr size_t MinGeneratedNodes = 7;

/// The source of a program of exactly \p Nodes nodes (at least MinGeneratedNodes).
std::string generateProgram(size_t Nodes, uint64_t Seed);

} // namespace toy

#endif // TOY_PARSER_GENERATOR_H
