// Concurrent backward of independent branches of the autograd graph.
//
// Why: an MoE's experts are disjoint subgraphs, each run on a sub-batch of about B/E
// samples. LibTorch's engine walks the graph on one thread, and each of a small
// sub-batch's operators is split over the intra-op threads, which costs a thread wake-up
// and a barrier per operator: on a 2-vCPU VM, a width-16 ResNet18 at batch 32 spends a
// third of its time there (docs/PERFORMANCE.md). Running whole expert backwards side by
// side, one intra-op thread each, removes those synchronisations.
//
// concurrentBranches(roots) returns, for each root, a copy of it (detached) whose grad_fn
// is one shared node. When the backward pass reaches that node with the copies'
// gradients, it runs torch::autograd::backward(root_i, grad_i) for every branch on a small
// pool of threads (nested backward calls, as activation checkpointing makes) and waits for
// them. Parameter gradients accumulate exactly as a sequential backward would put them.
// What cannot be honoured is refused with an error instead of giving a wrong answer:
// create_graph (no second-order terms through the branches), and autograd.grad through such
// a node at all (native/autograd.cc asks reachesConcurrentBranches first: the branches'
// gradients go to .grad, and the engine would skip the node, not fail, when only
// tensors inside a branch were asked for). Branches must not share intermediate tensors
// that require grad: two threads would then both walk the shared part.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/csrc/autograd/graph_task.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <thread>
#include <unordered_set>
#include <vector>

#include "autocast.h"
#include "common.h"
#include "concurrent_branches.h"
#include "tensor_handle.h"

// libgomp's per-thread setting. Weak, so that a LibTorch built without OpenMP still loads
// (the threads then keep ATen's default); at::set_num_threads would instead also rewrite
// process-wide state (the default of threads not yet initialised, the pthreadpool).
extern "C" void omp_set_num_threads(int) __attribute__((weak));

namespace rmoe {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Not a tensor, so that the custom Function does not make the roots its inputs: the
// engine must not walk their subgraphs itself after our node has.
struct Roots {
  std::vector<at::Tensor> tensors;
};

void runBranch(const at::Tensor& root, const at::Tensor& grad, bool keepGraph) {
  torch::autograd::backward({root}, {grad}, keepGraph, false);
}

void runBranches(const std::vector<at::Tensor>& roots, const variable_list& grads, bool keepGraph) {
  std::vector<size_t> todo;
  bool allCpu = true;
  for (size_t i = 0; i < roots.size() && i < grads.size(); ++i) {
    if (grads[i].defined() && roots[i].defined() && roots[i].requires_grad()) {
      todo.push_back(i);
      allCpu = allCpu && roots[i].device().is_cpu();
    }
  }
  // Largest first (output elements as the proxy for work: an expert's rows), so that the
  // last branch to start is a small one and the threads finish close together.
  std::stable_sort(todo.begin(), todo.end(), [&](size_t a, size_t b) { return roots[a].numel() > roots[b].numel(); });
  const int mainThreads = at::get_num_threads();
  const size_t workers = std::min(todo.size(), static_cast<size_t>(std::max(1, mainThreads)));
  // Device work is queued to the engine's device threads, one of which may be the thread
  // waiting here: only CPU branches run side by side.
  if (workers <= 1 || !allCpu) {
    for (size_t i : todo) runBranch(roots[i], grads[i], keepGraph);
    return;
  }
  const int perWorker = std::max(1, mainThreads / static_cast<int>(workers));
  const at::ThreadLocalState state;  // profiler, dispatch keys, saved-tensor hooks of the caller
  // Autocast's dtypes and cache flag are not part of at::ThreadLocalState in LibTorch 1.13
  // (its enabled flags are: they are dispatch keys): without this a branch would cast to the
  // default dtype, not the caller's.
  const AutocastState autocast = AutocastState::capture();
  std::atomic<size_t> next{0};
  std::vector<std::exception_ptr> errors(workers + 1);
  auto work = [&](size_t slot) {
    try {
      for (size_t k; (k = next.fetch_add(1)) < todo.size();) runBranch(roots[todo[k]], grads[todo[k]], keepGraph);
    } catch (...) {
      errors[slot] = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(workers);
  try {
    for (size_t w = 0; w < workers; ++w) {
      pool.emplace_back([&, w] {
        at::ThreadLocalStateGuard guard(state);
        autocast.apply();
        at::internal::lazy_init_num_threads();
        if (omp_set_num_threads != nullptr) omp_set_num_threads(perWorker);
        work(w);
      });
    }
  } catch (...) {
    // Could not start a thread: this one takes what is left, then everyone is joined.
    errors[workers] = std::current_exception();
  }
  if (errors[workers]) {
    errors[workers] = nullptr;
    work(workers);
  }
  for (auto& t : pool) t.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

struct ConcurrentBranches : public torch::autograd::Function<ConcurrentBranches> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& anchor, Roots roots) {
    ctx->set_materialize_grads(false);  // an unused branch gets no backward at all
    // Saved variables, not plain values: an in-place change of a root after this forward is
    // then an error, and a second backward without retainGraph says so as usual.
    ctx->save_for_backward(roots.tensors);
    variable_list out;
    out.reserve(roots.tensors.size());
    // Copies, not views: our outputs must not alias tensors the engine tracks elsewhere.
    for (const auto& r : roots.tensors) out.push_back(r.detach().clone());
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    TORCH_CHECK(!at::GradMode::is_enabled(),
                "concurrent expert backward: create_graph=true is not supported (no second-order terms flow through "
                "the experts); disable it (MoE option concurrentBackward: false) for higher-order gradients");
    std::vector<at::Tensor> roots = ctx->get_saved_variables();
    runBranches(roots, grads, torch::autograd::get_current_graph_task_keep_graph());
    return {at::Tensor(), at::Tensor()};
  }
};

using BranchesNode = torch::autograd::CppNode<ConcurrentBranches>;

Napi::Value ConcurrentBranchesFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    if (!info[0].IsArray()) throw typeError(env, "concurrentBranches: expected an array of tensors");
    Napi::Array a = info[0].As<Napi::Array>();
    Roots roots;
    for (uint32_t i = 0; i < a.Length(); ++i) {
      roots.tensors.push_back(unwrapTensor(env, a.Get(i), "concurrentBranches"));
    }
    // A leaf that requires grad makes the node part of the graph; it receives no gradient.
    at::Tensor anchor = at::zeros({});
    anchor.set_requires_grad(true);
    variable_list out = ConcurrentBranches::apply(anchor, std::move(roots));
    Napi::Array result = Napi::Array::New(env, out.size());
    for (size_t i = 0; i < out.size(); ++i) result.Set(static_cast<uint32_t>(i), wrapTensor(env, out[i]));
    return result;
  });
}

}  // namespace

bool reachesConcurrentBranches(const std::vector<at::Tensor>& outputs) {
  std::vector<torch::autograd::Node*> stack;
  std::unordered_set<torch::autograd::Node*> seen;
  for (const auto& t : outputs) {
    if (t.defined() && t.grad_fn()) stack.push_back(t.grad_fn().get());
  }
  while (!stack.empty()) {
    torch::autograd::Node* n = stack.back();
    stack.pop_back();
    if (!seen.insert(n).second) continue;
    if (dynamic_cast<BranchesNode*>(n) != nullptr) return true;
    for (const auto& e : n->next_edges()) {
      if (e.function) stack.push_back(e.function.get());
    }
  }
  return false;
}

void initConcurrentBranches(Napi::Env env, Napi::Object exports) {
  exports.Set("concurrentBranches", Napi::Function::New(env, ConcurrentBranchesFn));
}

}  // namespace rmoe
