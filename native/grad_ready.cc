// Gradient-ready notifications: a post hook on each given parameter's gradient accumulator
// (AccumulateGrad, the node that writes .grad) tells JavaScript that the parameter's
// gradient is final for this backward pass, while the pass is still running. This is how
// PyTorch's DDP overlaps gradient communication with the backward pass; what to do with the
// notification (buckets, collectives) is TypeScript (src/dist/data-parallel.ts).
//
// LibTorch runs a CPU backward pass on the thread that called backward(), i.e. the JS
// thread, so a hook firing there calls the JS callback synchronously. A hook firing on any
// other thread (the MoE's concurrent expert backward, a device thread) cannot call into JS:
// it queues the index, and the queue is handed over at the next hook on the JS thread or by
// gradReadyDrain() after backward returns.
#include <napi.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common.h"
#include "tensor_handle.h"

namespace rmoe {

namespace {

const napi_type_tag kHooksTag = {0x4b7e2a90c3d15f68ULL, 0xe1a5093d7c2b846fULL};

struct HookState {
  std::thread::id jsThread;
  napi_env env = nullptr;
  Napi::FunctionReference callback;
  std::mutex mutex;
  std::vector<int32_t> queued;  // indices that became ready off the JS thread
  bool active = true;
};

void deliverQueued(HookState& st) {
  std::vector<int32_t> q;
  {
    std::lock_guard<std::mutex> lock(st.mutex);
    q.swap(st.queued);
  }
  Napi::Env env(st.env);
  for (int32_t i : q) st.callback.Call({Napi::Number::New(env, i)});
}

struct ReadyHook final : torch::autograd::FunctionPostHook {
  std::shared_ptr<HookState> st;
  int32_t index;
  ReadyHook(std::shared_ptr<HookState> s, int32_t i) : st(std::move(s)), index(i) {}

  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    if (!st->active) return outputs;
    if (std::this_thread::get_id() != st->jsThread) {
      std::lock_guard<std::mutex> lock(st->mutex);
      st->queued.push_back(index);
      return outputs;
    }
    // On the JS thread, inside the native backward() call that JS made: calling back is a
    // nested call, as a synchronous callback is. A JS exception propagates as the backward
    // pass's error.
    Napi::Env env(st->env);
    Napi::HandleScope scope(env);
    deliverQueued(*st);
    st->callback.Call({Napi::Number::New(env, index)});
    return outputs;
  }
};

struct HooksBox {
  std::shared_ptr<HookState> st;
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, uintptr_t>> hooks;  // the accumulators kept alive

  void remove() {
    if (!st) return;
    st->active = false;
    for (auto& [node, key] : hooks) node->del_post_hook(key);
    hooks.clear();
    st.reset();
  }
};

HooksBox* hooksOf(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsExternal() || !v.As<Napi::Object>().CheckTypeTag(&kHooksTag))
    throw typeError(env, std::string(what) + ": expected a gradient-hooks handle");
  return v.As<Napi::External<HooksBox>>().Data();
}

// gradReadyHooks(params[], callback(index)) -> handle
Napi::Value GradReadyHooks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    if (!info[0].IsArray()) throw typeError(env, "gradReadyHooks: expected an array of parameters");
    if (!info[1].IsFunction()) throw typeError(env, "gradReadyHooks: expected a callback");
    auto st = std::make_shared<HookState>();
    st->jsThread = std::this_thread::get_id();
    st->env = env;
    st->callback = Napi::Persistent(info[1].As<Napi::Function>());
    auto* box = new HooksBox{st, {}};
    Napi::Array a = info[0].As<Napi::Array>();
    try {
      for (uint32_t i = 0; i < a.Length(); i++) {
        at::Tensor& p = unwrapTensor(env, a.Get(i), "gradReadyHooks");
        if (!p.requires_grad() || !p.is_leaf()) {
          throw typeError(env, "gradReadyHooks: parameter " + std::to_string(i) + " is not a leaf that requires grad");
        }
        std::shared_ptr<torch::autograd::Node> acc = torch::autograd::impl::grad_accumulator(p);
        uintptr_t key = acc->add_post_hook(std::make_unique<ReadyHook>(st, static_cast<int32_t>(i)));
        box->hooks.emplace_back(acc, key);
      }
    } catch (...) {
      box->remove();
      delete box;
      throw;
    }
    auto ext = Napi::External<HooksBox>::New(env, box, [](Napi::Env, HooksBox* b) {
      b->remove();
      delete b;
    });
    ext.TypeTag(&kHooksTag);
    return ext;
  });
}

// gradReadyDrain(handle) -> indices that became ready off the JS thread and were not yet handed over
Napi::Value GradReadyDrain(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  HooksBox* box = hooksOf(env, info[0], "gradReadyDrain");
  std::vector<int32_t> q;
  if (box->st) {
    std::lock_guard<std::mutex> lock(box->st->mutex);
    q.swap(box->st->queued);
  }
  Napi::Array out = Napi::Array::New(env, q.size());
  for (size_t i = 0; i < q.size(); i++) out.Set(static_cast<uint32_t>(i), Napi::Number::New(env, q[i]));
  return out;
}

Napi::Value GradReadyRemove(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  hooksOf(env, info[0], "gradReadyRemove")->remove();
  return env.Undefined();
}

}  // namespace

void initGradReady(Napi::Env env, Napi::Object exports) {
  exports.Set("gradReadyHooks", Napi::Function::New(env, GradReadyHooks));
  exports.Set("gradReadyDrain", Napi::Function::New(env, GradReadyDrain));
  exports.Set("gradReadyRemove", Napi::Function::New(env, GradReadyRemove));
}

}  // namespace rmoe
