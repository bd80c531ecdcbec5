#include "tensor_handle.h"

#include <string>

#include "common.h"

namespace rmoe {

namespace {

LiveStats g_stats;

// Random 128-bit tag; only needs to be unique to this addon.
const napi_type_tag kTensorTag = {0x7f3a9c21d4e8b605ULL, 0x2b91e7c4a0d35f18ULL};

int64_t bytesOf(const at::Tensor& t) {
  if (!t.defined()) return 0;
  return static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
}

void release(Napi::Env env, TensorBox* box) {
  if (!box->tensor.defined() && box->reported_bytes == 0) return;
  g_stats.count -= 1;
  g_stats.bytes -= box->reported_bytes;
  if (box->reported_bytes != 0) {
    int64_t unused;
    napi_adjust_external_memory(env, -box->reported_bytes, &unused);
  }
  box->reported_bytes = 0;
  box->tensor = at::Tensor();
}

TensorBox* boxOf(Napi::Env env, const Napi::Value& v) {
  if (!v.IsExternal()) return nullptr;
  Napi::Object obj = v.As<Napi::Object>();
  if (!obj.CheckTypeTag(&kTensorTag)) return nullptr;
  return v.As<Napi::External<TensorBox>>().Data();
}

Napi::Value Dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TensorBox* box = boxOf(env, info[0]);
  if (box == nullptr) throw typeError(env, "dispose: argument is not a tensor handle");
  release(env, box);
  return env.Undefined();
}

Napi::Value IsDisposed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TensorBox* box = boxOf(env, info[0]);
  if (box == nullptr) throw typeError(env, "isDisposed: argument is not a tensor handle");
  return Napi::Boolean::New(env, !box->tensor.defined());
}

Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("liveTensors", Napi::Number::New(env, static_cast<double>(g_stats.count)));
  out.Set("liveBytes", Napi::Number::New(env, static_cast<double>(g_stats.bytes)));
  return out;
}

}  // namespace

const LiveStats& liveStats() { return g_stats; }

Napi::Value wrapTensor(Napi::Env env, at::Tensor t) {
  auto* box = new TensorBox{std::move(t), 0};
  box->reported_bytes = bytesOf(box->tensor);
  g_stats.count += 1;
  g_stats.bytes += box->reported_bytes;
  if (box->reported_bytes != 0) {
    int64_t unused;
    napi_adjust_external_memory(env, box->reported_bytes, &unused);
  }
  auto ext = Napi::External<TensorBox>::New(env, box, [](Napi::Env e, TensorBox* b) {
    release(e, b);
    delete b;
  });
  ext.TypeTag(&kTensorTag);
  return ext;
}

bool isTensorHandle(Napi::Env env, const Napi::Value& v) { return boxOf(env, v) != nullptr; }

at::Tensor& unwrapTensor(Napi::Env env, const Napi::Value& v, const char* what) {
  TensorBox* box = boxOf(env, v);
  if (box == nullptr) throw typeError(env, std::string(what) + ": expected a tensor");
  if (!box->tensor.defined()) {
    throw Napi::Error::New(env, std::string(what) + ": tensor was already disposed");
  }
  return box->tensor;
}

void initTensorHandle(Napi::Env env, Napi::Object exports) {
  exports.Set("dispose", Napi::Function::New(env, Dispose));
  exports.Set("isDisposed", Napi::Function::New(env, IsDisposed));
  exports.Set("memoryStats", Napi::Function::New(env, MemoryStats));
}

}  // namespace rmoe
