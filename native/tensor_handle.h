// A JS-visible handle owns one at::Tensor. Handles are napi Externals tagged with a
// type tag so that a foreign object passed where a tensor is expected is rejected.
#pragma once

#include <ATen/ATen.h>
#include <napi.h>

#include <cstdint>

namespace rmoe {

struct TensorBox {
  at::Tensor tensor;
  int64_t reported_bytes = 0;  // what was announced to V8 as external memory
};

struct LiveStats {
  int64_t count = 0;
  int64_t bytes = 0;
};

const LiveStats& liveStats();

// Takes ownership of t and returns a new handle.
Napi::Value wrapTensor(Napi::Env env, at::Tensor t);
bool isTensorHandle(Napi::Env env, const Napi::Value& v);
// Throws a TypeError naming `what` when v is not a live handle.
at::Tensor& unwrapTensor(Napi::Env env, const Napi::Value& v, const char* what);

void initTensorHandle(Napi::Env env, Napi::Object exports);

}  // namespace rmoe
