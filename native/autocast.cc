// Autocast: the thread-local switches behind robust-moe's autocast() (src/tensor/autocast.ts).
//
// Why native: LibTorch's autocast is thread-local state (the AutocastCPU/AutocastCUDA
// dispatch keys in the local dispatch-key set, plus thread_local dtypes, nesting counter and
// cast cache). Once set, every op called through the dispatcher (op_call.cc) is cast exactly
// as PyTorch's torch.autocast would cast it; nothing else here knows about precision.
#include "autocast.h"

#include <ATen/autocast_mode.h>

#include <string>

#include "common.h"

namespace rmoe {

AutocastState AutocastState::capture() {
  return {at::autocast::is_cpu_enabled(), at::autocast::is_enabled(), at::autocast::get_autocast_cpu_dtype(),
          at::autocast::get_autocast_gpu_dtype(), at::autocast::is_autocast_cache_enabled()};
}

void AutocastState::apply() const {
  at::autocast::set_cpu_enabled(cpuEnabled);
  at::autocast::set_enabled(gpuEnabled);
  at::autocast::set_autocast_cpu_dtype(cpuDtype);
  at::autocast::set_autocast_gpu_dtype(gpuDtype);
  at::autocast::set_autocast_cache_enabled(cacheEnabled);
}

namespace {

bool isCuda(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined()) return false;
  if (!info[i].IsString()) throw typeError(info.Env(), "autocast: device type must be a string");
  const std::string d = info[i].As<Napi::String>().Utf8Value();
  if (d == "cpu") return false;
  if (d == "cuda") return true;
  throw typeError(info.Env(), "autocast: device type must be 'cpu' or 'cuda', got '" + d + "'");
}

// autocastState(deviceType) -> { enabled, dtype (c10::ScalarType code), cacheEnabled }
Napi::Value GetState(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const bool cuda = isCuda(info, 0);
    Napi::Object o = Napi::Object::New(env);
    o.Set("enabled", Napi::Boolean::New(env, cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled()));
    const at::ScalarType d = cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
    o.Set("dtype", Napi::Number::New(env, static_cast<double>(static_cast<int>(d))));
    o.Set("cacheEnabled", Napi::Boolean::New(env, at::autocast::is_autocast_cache_enabled()));
    return o;
  });
}

// autocastSetState(deviceType, enabled, dtypeCode, cacheEnabled)
Napi::Value SetState(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const bool cuda = isCuda(info, 0);
    if (!info[1].IsBoolean() || !info[2].IsNumber() || !info[3].IsBoolean())
      throw typeError(env, "autocastSetState(deviceType, enabled, dtypeCode, cacheEnabled): bad arguments");
    const int code = info[2].As<Napi::Number>().Int32Value();
    if (code < 0 || code >= static_cast<int>(at::ScalarType::NumOptions))
      throw typeError(env, "autocast: unknown dtype code " + std::to_string(code));
    const auto dtype = static_cast<at::ScalarType>(code);
    if (cuda) {
      at::autocast::set_enabled(info[1].As<Napi::Boolean>().Value());
      at::autocast::set_autocast_gpu_dtype(dtype);
    } else {
      at::autocast::set_cpu_enabled(info[1].As<Napi::Boolean>().Value());
      at::autocast::set_autocast_cpu_dtype(dtype);
    }
    at::autocast::set_autocast_cache_enabled(info[3].As<Napi::Boolean>().Value());
    return env.Undefined();
  });
}

// Entering and leaving a region, as torch.autocast's __enter__/__exit__: the cast cache
// (fp32 weights cast once per region, not once per use) is dropped when the outermost
// region ends, so the next step casts the updated weights again.
Napi::Value Enter(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::autocast::increment_nesting());
}

Napi::Value Exit(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const int depth = at::autocast::decrement_nesting();
    if (depth == 0) at::autocast::clear_cache();
    return Napi::Number::New(info.Env(), depth);
  });
}

Napi::Value ClearCache(const Napi::CallbackInfo& info) {
  at::autocast::clear_cache();
  return info.Env().Undefined();
}

}  // namespace

void initAutocast(Napi::Env env, Napi::Object exports) {
  exports.Set("autocastState", Napi::Function::New(env, GetState));
  exports.Set("autocastSetState", Napi::Function::New(env, SetState));
  exports.Set("autocastEnter", Napi::Function::New(env, Enter));
  exports.Set("autocastExit", Napi::Function::New(env, Exit));
  exports.Set("autocastClearCache", Napi::Function::New(env, ClearCache));
}

}  // namespace rmoe
