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
// create_graph (no second-order terms through the branches) and autograd.grad with inputs
// (the branches' gradients go to .grad, not to the caller).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/csrc/autograd/graph_task.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "common.h"
#include "tensor_handle.h"

namespace rmoe {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Not a tensor, so that the custom Function does not make the roots its inputs: the
// engine must not walk their subgraphs itself after our node has.
struct Roots {
  std::vector<at::Tensor> tensors;
};

void runBranches(const std::vector<at::Tensor>& roots, const variable_list& grads, bool keepGraph) {
  std::vector<size_t> todo;
  for (size_t i = 0; i < roots.size() && i < grads.size(); ++i) {
    if (grads[i].defined() && roots[i].defined() && roots[i].requires_grad()) todo.push_back(i);
  }
  // Largest first (output elements as the proxy for work: an expert's rows), so that the
  // last branch to start is a small one and the threads finish close together.
  std::stable_sort(todo.begin(), todo.end(), [&](size_t a, size_t b) { return roots[a].numel() > roots[b].numel(); });
  const int mainThreads = at::get_num_threads();
  const size_t workers = std::min(todo.size(), static_cast<size_t>(std::max(1, mainThreads)));
  if (workers <= 1) {
    for (size_t i : todo) torch::autograd::backward({roots[i]}, {grads[i]}, keepGraph, false);
    return;
  }
  const int perWorker = std::max(1, mainThreads / static_cast<int>(workers));
  std::atomic<size_t> next{0};
  std::vector<std::exception_ptr> errors(workers);
  std::vector<std::thread> pool;
  pool.reserve(workers);
  for (size_t w = 0; w < workers; ++w) {
    pool.emplace_back([&, w] {
      try {
        at::internal::lazy_init_num_threads();
        at::set_num_threads(perWorker);
        for (size_t k; (k = next.fetch_add(1)) < todo.size();) {
          size_t i = todo[k];
          torch::autograd::backward({roots[i]}, {grads[i]}, keepGraph, false);
        }
      } catch (...) {
        errors[w] = std::current_exception();
      }
    });
  }
  for (auto& t : pool) t.join();
  // at::set_num_threads also stores a process-wide default that new threads start from.
  at::set_num_threads(mainThreads);
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

struct ConcurrentBranches : public torch::autograd::Function<ConcurrentBranches> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& anchor, Roots roots) {
    ctx->set_materialize_grads(false);  // an unused branch gets no backward at all
    ctx->saved_data["n"] = static_cast<int64_t>(roots.tensors.size());
    variable_list out;
    out.reserve(roots.tensors.size());
    for (size_t i = 0; i < roots.tensors.size(); ++i) {
      ctx->saved_data["root" + std::to_string(i)] = roots.tensors[i];  // keeps the branch's graph alive
      // A copy, not a view: our outputs must not alias tensors the engine tracks elsewhere.
      out.push_back(roots.tensors[i].detach().clone());
    }
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    TORCH_CHECK(!at::GradMode::is_enabled(),
                "concurrent expert backward: create_graph=true is not supported (no second-order terms flow through "
                "the experts); disable it (MoE option concurrentBackward: false) for higher-order gradients");
    const auto* exec = torch::autograd::get_current_graph_task_exec_info();
    TORCH_CHECK(exec == nullptr || exec->empty(),
                "concurrent expert backward: autograd.grad with inputs is not supported (expert gradients go to "
                ".grad); disable it (MoE option concurrentBackward: false) to differentiate with respect to chosen inputs");
    const bool keep = torch::autograd::get_current_graph_task_keep_graph();
    const int64_t n = ctx->saved_data["n"].toInt();
    std::vector<at::Tensor> roots;
    roots.reserve(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) roots.push_back(ctx->saved_data["root" + std::to_string(i)].toTensor());
    if (!keep) {
      // As a sequential backward would: without retain_graph the branches' graphs go now.
      for (int64_t i = 0; i < n; ++i) ctx->saved_data.erase("root" + std::to_string(i));
    }
    runBranches(roots, grads, keep);
    return {at::Tensor(), at::Tensor()};
  }
};

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

void initConcurrentBranches(Napi::Env env, Napi::Object exports) {
  exports.Set("concurrentBranches", Napi::Function::New(env, ConcurrentBranchesFn));
}

}  // namespace rmoe
