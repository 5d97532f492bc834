// A heavy LLVM-header translation unit for bench/toolchain/run.sh: IR construction, the ADT
// containers and Support, as a compiler's own sources include them. It is compiled, never linked.
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/IR/BasicBlock.h"
#include "llvm/IR/Function.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/PassManager.h"
#include "llvm/IR/Verifier.h"
#include "llvm/Support/raw_ostream.h"

llvm::Function *buildSum(llvm::Module &M) {
  llvm::LLVMContext &Ctx = M.getContext();
  llvm::IRBuilder<> B(Ctx);
  auto *I64 = B.getInt64Ty();
  auto *FT = llvm::FunctionType::get(I64, {I64, I64}, false);
  auto *F = llvm::Function::Create(FT, llvm::Function::ExternalLinkage, "sum", M);
  B.SetInsertPoint(llvm::BasicBlock::Create(Ctx, "entry", F));
  llvm::SmallVector<llvm::Value *, 4> Args;
  for (auto &A : F->args())
    Args.push_back(&A);
  llvm::DenseMap<llvm::Value *, unsigned> Uses;
  llvm::StringMap<unsigned> Names;
  for (auto *V : Args)
    Uses[V]++, Names[V->getName()]++;
  B.CreateRet(B.CreateAdd(Args[0], Args[1]));
  llvm::verifyFunction(*F, &llvm::errs());
  return F;
}
