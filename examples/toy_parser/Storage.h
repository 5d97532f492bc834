//===- toy_parser/Storage.h - Where the AST lives: four strategies -*- C++ -*-===//
//
// The parser is written once, as a template over a storage strategy; each strategy below
// decides where nodes, child arrays, string bytes and identifiers go, and how they die:
//
//   RegionStorage  every node (`Region::create<T>`), child array, string and identifier entry
//                  in ONE exclusive spaces::Region. Teardown: one spaces_chunk_destroy.
//                  (UntrackedStorage: the same in a Region::Untracked.)
//   PoolStorage    each node kind in its own spaces::TypedPool<T> (exact-size slots, no size
//                  class rounding); the variable-sized pieces (child arrays, strings,
//                  identifiers) in a spaces::Region. Teardown: the 15 pools' destructors (each
//                  frees its pages, a reset and a destroy of its own region: time proportional
//                  to pages, not nodes) and one destroy of the region.
//   MallocStorage  per-node `new T`, `new[]` for arrays and strings, identifiers in an
//                  llvm::StringMap over llvm::MallocAllocator (one malloc per entry).
//                  Teardown: an explicit recursive walk that deletes every node.
//   BumpStorage    llvm::BumpPtrAllocator for everything (identifiers: a StringMap over it).
//                  Teardown: its destructor (frees its slabs).
//
// All four allocate a node with its exact size and alignment (sizeof(T), alignof(T)), so
// they differ only in where the bytes come from. A strategy is a plain class with the same
// member names (a compile-time interface: no virtual calls in the parser's hot path):
//   make<T>(Args...)    construct a node              copyArray(ArrayRef<T>)  a child array
//   copyString(StringRef)                              intern(StringRef)       an identifier
//   discard(Node *)     free a subtree the parser gave up on (error path; a no-op where the
//                       memory dies wholesale)
//   releaseIdentifiers(), releaseNodes(Program *)      the two timed steps of teardown
//
// Identifier tables: entries of an llvm::StringMap live in the strategy's memory, but its
// bucket array is always malloc'ed by LLVM. Where entries die wholesale (region, pool, bump),
// releaseIdentifiers() first tells the map to forget them (forgetEntries), so its destructor
// frees only the bucket array instead of handing every entry back one by one.
//
// Threads: a storage is used by one thread.
//
//===----------------------------------------------------------------------===//
#ifndef TOY_PARSER_STORAGE_H
#define TOY_PARSER_STORAGE_H

#include "AST.h"

#include "spaces/Region.h"
#include "spaces/TypedPool.h"

#include "llvm/Support/Allocator.h"

#include <cstring>
#include <memory>
#include <optional>
#include <tuple>

namespace toy {

/// An llvm::StringMap of identifiers over allocator \p AllocT.
template <typename AllocT> class InternTable : public llvm::StringMap<IdentInfo, AllocT> {
  using Base = llvm::StringMap<IdentInfo, AllocT>;

public:
  using Base::Base;

  IdentEntry *intern(llvm::StringRef Name) { return &*this->try_emplace(Name).first; }

  /// For entries whose memory is released wholesale (a region, a bump allocator): makes the
  /// map empty without destroying its entries, so that ~StringMap frees only its bucket array.
  /// The entries must be trivially destructible (IdentInfo is).
  void forgetEntries() {
    static_assert(std::is_trivially_destructible<IdentInfo>::value, "entries are not destroyed");
    this->NumItems = 0;
    this->NumTombstones = 0;
  }
};

/// The Spaces regions a strategy holds (none for malloc and bump), for the teardown check.
struct HeldRegions {
  size_t Regions = 0;
  size_t Footprint = 0; ///< bytes of slabs and large blocks held for them
};

//===----------------------------------------------------------------------===//
// region: everything in one exclusive spaces::Region
//===----------------------------------------------------------------------===//

/// Untracked: the same in a Region::Untracked (no per-block marks: the parser never walks the
/// AST's region nor frees a node, so it gives up nothing it uses).
template <bool Untracked> class RegionStorageOf {
public:
  static constexpr const char *Name = Untracked ? "untracked" : "region";
  static constexpr const char *Description =
      Untracked ? "every node (Region::create<T>), child array, string and identifier in one "
                  "spaces::Region 'ast' created Untracked"
                : "every node (Region::create<T>), child array, string and identifier in one exclusive "
                  "spaces::Region 'ast'";

  RegionStorageOf()
      : Nodes(std::in_place, Untracked ? spaces::Region::Untracked : spaces::Region::Exclusive, "ast"),
        Idents(std::in_place, *Nodes) {}

  template <typename T, typename... ArgTs> T *make(ArgTs &&...Args) {
    NodesMade++;
    return Nodes->create<T>(std::forward<ArgTs>(Args)...);
  }
  template <typename T> llvm::ArrayRef<T> copyArray(llvm::ArrayRef<T> Src) {
    if (Src.empty())
      return {};
    T *P = Nodes->Allocate<T>(Src.size());
    std::memcpy(P, Src.data(), Src.size() * sizeof(T));
    return {P, Src.size()};
  }
  llvm::StringRef copyString(llvm::StringRef S) {
    if (S.empty())
      return {};
    char *P = Nodes->Allocate<char>(S.size());
    std::memcpy(P, S.data(), S.size());
    return {P, S.size()};
  }
  IdentEntry *intern(llvm::StringRef S) { return Idents->intern(S); }
  void discard(Node *) {}
  template <typename T> void discardArray(llvm::ArrayRef<T>) {}

  size_t nodesMade() const { return NodesMade; }
  spaces::Region &region() { return *Nodes; }
  HeldRegions held() const {
    return {1, Nodes->stats().footprint};
  }

  void releaseIdentifiers() {
    Idents->forgetEntries();
    Idents.reset();
  }
  /// One call: spaces_chunk_destroy of the region.
  void releaseNodes(Program *) { Nodes.reset(); }

private:
  std::optional<spaces::Region> Nodes;
  std::optional<InternTable<spaces::Region &>> Idents;
  size_t NodesMade = 0;
};
using RegionStorage = RegionStorageOf<false>;
using UntrackedStorage = RegionStorageOf<true>;

//===----------------------------------------------------------------------===//
// pool: a TypedPool per node kind, a Region for the variable-sized pieces
//===----------------------------------------------------------------------===//

class PoolStorage {
public:
  static constexpr const char *Name = "pool";
  static constexpr const char *Description =
      "each node kind in its own spaces::TypedPool<T> (exact-size slots); child arrays, strings "
      "and identifiers in a spaces::Region 'pieces'";

  PoolStorage() : Pieces(std::in_place, spaces::Region::Exclusive, "pieces"), Idents(std::in_place, *Pieces) {
    Pools.emplace();
  }

  template <typename T, typename... ArgTs> T *make(ArgTs &&...Args) {
    NodesMade++;
    return std::get<spaces::TypedPool<T>>(*Pools).create(std::forward<ArgTs>(Args)...);
  }
  template <typename T> llvm::ArrayRef<T> copyArray(llvm::ArrayRef<T> Src) {
    if (Src.empty())
      return {};
    T *P = Pieces->Allocate<T>(Src.size());
    std::memcpy(P, Src.data(), Src.size() * sizeof(T));
    return {P, Src.size()};
  }
  llvm::StringRef copyString(llvm::StringRef S) {
    if (S.empty())
      return {};
    char *P = Pieces->Allocate<char>(S.size());
    std::memcpy(P, S.data(), S.size());
    return {P, S.size()};
  }
  IdentEntry *intern(llvm::StringRef S) { return Idents->intern(S); }
  void discard(Node *) {}
  template <typename T> void discardArray(llvm::ArrayRef<T>) {}

  size_t nodesMade() const { return NodesMade; }
  spaces::Region &region() { return *Pieces; }
  HeldRegions held() const {
    HeldRegions H{1, Pieces->stats().footprint};
    std::apply([&](auto &...Pool) { ((H.Regions++, H.Footprint += Pool.footprint()), ...); }, *Pools);
    return H;
  }
  /// Calls \p Fn(KindName, LiveObjects, SlotSize, FootprintBytes) for every pool.
  template <typename FnT> void forEachPool(FnT &&Fn) const {
    forEachPoolImpl(Fn, std::make_index_sequence<std::tuple_size<PoolTuple>::value>());
  }

  void releaseIdentifiers() {
    Idents->forgetEntries();
    Idents.reset();
  }
  /// The 15 pools' destructors (node kinds are trivially destructible: no walk), then the
  /// pieces region's destroy.
  void releaseNodes(Program *) {
    Pools.reset();
    Pieces.reset();
  }

private:
  using PoolTuple = std::tuple<spaces::TypedPool<IntLit>, spaces::TypedPool<StrLit>, spaces::TypedPool<VarRef>,
                               spaces::TypedPool<Unary>, spaces::TypedPool<Binary>, spaces::TypedPool<Call>,
                               spaces::TypedPool<Let>, spaces::TypedPool<Assign>, spaces::TypedPool<If>,
                               spaces::TypedPool<While>, spaces::TypedPool<Return>, spaces::TypedPool<ExprStmt>,
                               spaces::TypedPool<Block>, spaces::TypedPool<FunctionDecl>,
                               spaces::TypedPool<Program>>;
  static constexpr const char *PoolNames[] = {"IntLit", "StrLit", "VarRef", "Unary",    "Binary",
                                              "Call",   "Let",    "Assign", "If",       "While",
                                              "Return", "ExprStmt", "Block", "Function", "Program"};
  template <typename FnT, size_t... I> void forEachPoolImpl(FnT &Fn, std::index_sequence<I...>) const {
    (Fn(PoolNames[I], std::get<I>(*Pools).size(), std::tuple_element_t<I, PoolTuple>::slotSize(),
        std::get<I>(*Pools).footprint()),
     ...);
  }

  std::optional<spaces::Region> Pieces;
  std::optional<InternTable<spaces::Region &>> Idents;
  std::optional<PoolTuple> Pools;
  size_t NodesMade = 0;
};

//===----------------------------------------------------------------------===//
// malloc: new/delete per node, explicit recursive teardown
//===----------------------------------------------------------------------===//

class MallocStorage {
public:
  static constexpr const char *Name = "malloc";
  static constexpr const char *Description =
      "per-node new, new[] for child arrays and strings, identifiers in an llvm::StringMap "
      "over malloc; teardown deletes every node (recursive walk)";

  template <typename T, typename... ArgTs> T *make(ArgTs &&...Args) {
    NodesMade++;
    Live++;
    return new T(std::forward<ArgTs>(Args)...);
  }
  template <typename T> llvm::ArrayRef<T> copyArray(llvm::ArrayRef<T> Src) {
    if (Src.empty())
      return {};
    Live++;
    T *P = new T[Src.size()];
    std::memcpy(P, Src.data(), Src.size() * sizeof(T));
    return {P, Src.size()};
  }
  llvm::StringRef copyString(llvm::StringRef S) {
    if (S.empty())
      return {};
    Live++;
    char *P = new char[S.size()];
    std::memcpy(P, S.data(), S.size());
    return {P, S.size()};
  }
  IdentEntry *intern(llvm::StringRef S) { return Idents->intern(S); }
  /// Deletes \p N and everything below it.
  void discard(Node *N) { destroyTree(N); }
  template <typename T> void discardArray(llvm::ArrayRef<T> A) { freeArray(A); }

  size_t nodesMade() const { return NodesMade; }
  /// Nodes, arrays and strings allocated and not yet deleted: 0 after teardown, or a leak.
  size_t live() const { return Live; }
  HeldRegions held() const { return {}; }

  /// ~StringMap: one free per identifier, then the bucket array.
  void releaseIdentifiers() { Idents.reset(); }
  /// Deletes every node, array and string of the tree.
  void releaseNodes(Program *P) { destroyTree(P); }

private:
  template <typename T> void freeArray(llvm::ArrayRef<T> A) {
    if (!A.empty()) {
      Live--;
      delete[] A.data();
    }
  }
  template <typename T> void freeNode(T *N) {
    Live--;
    delete N;
  }
  void destroyTree(Node *N);

  std::optional<InternTable<llvm::MallocAllocator>> Idents{std::in_place};
  size_t NodesMade = 0;
  size_t Live = 0;
};

inline void MallocStorage::destroyTree(Node *N) {
  if (!N)
    return;
  switch (N->Kind) {
  case NodeKind::IntLit:
    return freeNode(static_cast<IntLit *>(N));
  case NodeKind::StrLit: {
    auto *S = static_cast<StrLit *>(N);
    if (!S->Value.empty()) {
      Live--;
      delete[] S->Value.data();
    }
    return freeNode(S);
  }
  case NodeKind::VarRef:
    return freeNode(static_cast<VarRef *>(N));
  case NodeKind::Unary: {
    auto *U = static_cast<Unary *>(N);
    destroyTree(U->Operand);
    return freeNode(U);
  }
  case NodeKind::Binary: {
    auto *B = static_cast<Binary *>(N);
    destroyTree(B->LHS);
    destroyTree(B->RHS);
    return freeNode(B);
  }
  case NodeKind::Call: {
    auto *C = static_cast<Call *>(N);
    for (Node *A : C->Args)
      destroyTree(A);
    freeArray(C->Args);
    return freeNode(C);
  }
  case NodeKind::Let:
  case NodeKind::Assign: {
    auto *B = static_cast<Binding *>(N);
    destroyTree(B->Init);
    if (N->Kind == NodeKind::Let)
      return freeNode(static_cast<Let *>(N));
    return freeNode(static_cast<Assign *>(N));
  }
  case NodeKind::If: {
    auto *I = static_cast<If *>(N);
    destroyTree(I->Cond);
    destroyTree(I->Then);
    destroyTree(I->Else);
    return freeNode(I);
  }
  case NodeKind::While: {
    auto *W = static_cast<While *>(N);
    destroyTree(W->Cond);
    destroyTree(W->Body);
    return freeNode(W);
  }
  case NodeKind::Return: {
    auto *R = static_cast<Return *>(N);
    destroyTree(R->Value);
    return freeNode(R);
  }
  case NodeKind::ExprStmt: {
    auto *E = static_cast<ExprStmt *>(N);
    destroyTree(E->E);
    return freeNode(E);
  }
  case NodeKind::Block: {
    auto *B = static_cast<Block *>(N);
    for (Node *S : B->Stmts)
      destroyTree(S);
    freeArray(B->Stmts);
    return freeNode(B);
  }
  case NodeKind::Function: {
    auto *F = static_cast<FunctionDecl *>(N);
    destroyTree(F->Body);
    freeArray(F->Params);
    return freeNode(F);
  }
  case NodeKind::Program: {
    auto *P = static_cast<Program *>(N);
    for (FunctionDecl *F : P->Functions)
      destroyTree(F);
    freeArray(P->Functions);
    return freeNode(P);
  }
  }
}

//===----------------------------------------------------------------------===//
// bump: llvm::BumpPtrAllocator for everything
//===----------------------------------------------------------------------===//

class BumpStorage {
public:
  static constexpr const char *Name = "bump";
  static constexpr const char *Description =
      "llvm::BumpPtrAllocator for every node, child array, string and identifier (StringMap "
      "over it); teardown is its destructor";

  BumpStorage() : Bump(std::in_place), Idents(std::in_place, *Bump) {}

  template <typename T, typename... ArgTs> T *make(ArgTs &&...Args) {
    NodesMade++;
    return new (Bump->Allocate(sizeof(T), alignof(T))) T(std::forward<ArgTs>(Args)...);
  }
  template <typename T> llvm::ArrayRef<T> copyArray(llvm::ArrayRef<T> Src) {
    if (Src.empty())
      return {};
    T *P = static_cast<T *>(Bump->Allocate(Src.size() * sizeof(T), alignof(T)));
    std::memcpy(P, Src.data(), Src.size() * sizeof(T));
    return {P, Src.size()};
  }
  llvm::StringRef copyString(llvm::StringRef S) {
    if (S.empty())
      return {};
    char *P = static_cast<char *>(Bump->Allocate(S.size(), 1));
    std::memcpy(P, S.data(), S.size());
    return {P, S.size()};
  }
  IdentEntry *intern(llvm::StringRef S) { return Idents->intern(S); }
  void discard(Node *) {}
  template <typename T> void discardArray(llvm::ArrayRef<T>) {}

  size_t nodesMade() const { return NodesMade; }
  HeldRegions held() const { return {}; }
  size_t bytesAllocated() const { return Bump->getBytesAllocated(); }
  size_t totalMemory() const { return Bump->getTotalMemory(); }

  void releaseIdentifiers() {
    Idents->forgetEntries();
    Idents.reset();
  }
  /// ~BumpPtrAllocator: one free() per slab.
  void releaseNodes(Program *) { Bump.reset(); }

private:
  std::optional<llvm::BumpPtrAllocator> Bump;
  std::optional<InternTable<llvm::BumpPtrAllocator &>> Idents;
  size_t NodesMade = 0;
};

} // namespace toy

#endif // TOY_PARSER_STORAGE_H
