// The hand-written part of autograd: everything that is not an ATen op.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <vector>

#include "common.h"
#include "concurrent_branches.h"
#include "tensor_handle.h"

namespace rmoe {

namespace {

std::vector<at::Tensor> tensorList(Napi::Env env, const Napi::Value& v, const char* what) {
  std::vector<at::Tensor> out;
  if (v.IsNull() || v.IsUndefined()) return out;
  if (!v.IsArray()) throw typeError(env, std::string(what) + ": expected an array of tensors");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    // null inside grad_outputs means "implicit ones / none", as in PyTorch.
    out.push_back(e.IsNull() ? at::Tensor() : unwrapTensor(env, e, what));
  }
  return out;
}

c10::optional<bool> optionalBool(const Napi::Value& v) {
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value();
  return c10::nullopt;
}

Napi::Value SetRequiresGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    unwrapTensor(env, info[0], "requiresGrad").set_requires_grad(info[1].ToBoolean().Value());
    return env.Undefined();
  });
}

Napi::Value GetGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    const at::Tensor& g = unwrapTensor(env, info[0], "grad").grad();
    if (!g.defined()) return env.Null();
    return wrapTensor(env, g);
  });
}

Napi::Value SetGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    at::Tensor& t = unwrapTensor(env, info[0], "grad");
    if (info[1].IsNull() || info[1].IsUndefined()) {
      t.mutable_grad().reset();
    } else {
      t.mutable_grad() = unwrapTensor(env, info[1], "grad");
    }
    return env.Undefined();
  });
}

// backward(outputs[], gradOutputs[]|null, retainGraph?, createGraph)
Napi::Value Backward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    auto outputs = tensorList(env, info[0], "backward");
    auto grads = tensorList(env, info[1], "backward");
    torch::autograd::backward(outputs, grads, optionalBool(info[2]), info[3].ToBoolean().Value());
    return env.Undefined();
  });
}

// grad(outputs[], inputs[], gradOutputs[]|null, retainGraph?, createGraph, allowUnused)
Napi::Value Grad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    auto outputs = tensorList(env, info[0], "autograd.grad outputs");
    auto inputs = tensorList(env, info[1], "autograd.grad inputs");
    auto grads = tensorList(env, info[2], "autograd.grad gradOutputs");
    if (reachesConcurrentBranches(outputs)) {
      throw Napi::Error::New(env,
                             "autograd.grad: the graph goes through experts differentiated concurrently (a training-mode "
                             "MoE forward); their gradients can only go to .grad via backward(). Set "
                             "moe.concurrentBackward = false for autograd.grad, or give the input requiresGrad");
    }
    auto result = torch::autograd::grad(outputs, inputs, grads, optionalBool(info[3]),
                                        info[4].ToBoolean().Value(), info[5].ToBoolean().Value());
    Napi::Array out = Napi::Array::New(env, result.size());
    for (size_t i = 0; i < result.size(); ++i) {
      out.Set(static_cast<uint32_t>(i),
              result[i].defined() ? wrapTensor(env, result[i]) : Napi::Value(env.Null()));
    }
    return out;
  });
}

// setData(h, src): swaps the storage behind a tensor while keeping its identity and
// autograd leaf status, like `param.data = ...` in PyTorch (Module.to(), loading weights).
Napi::Value SetData(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    at::Tensor& t = unwrapTensor(env, info[0], "setData");
    const at::Tensor& src = unwrapTensor(env, info[1], "setData");
    t.set_data(src);
    return env.Undefined();
  });
}

Napi::Value IsGradEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), at::GradMode::is_enabled());
}

Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  at::GradMode::set_enabled(info[0].ToBoolean().Value());
  return info.Env().Undefined();
}

}  // namespace

void initAutograd(Napi::Env env, Napi::Object exports) {
  exports.Set("setRequiresGrad", Napi::Function::New(env, SetRequiresGrad));
  exports.Set("getGrad", Napi::Function::New(env, GetGrad));
  exports.Set("setGrad", Napi::Function::New(env, SetGrad));
  exports.Set("backward", Napi::Function::New(env, Backward));
  exports.Set("grad", Napi::Function::New(env, Grad));
  exports.Set("setData", Napi::Function::New(env, SetData));
  exports.Set("isGradEnabled", Napi::Function::New(env, IsGradEnabled));
  exports.Set("setGradEnabled", Napi::Function::New(env, SetGradEnabled));
}

}  // namespace rmoe
