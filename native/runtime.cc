// Process-wide settings: threads, RNG, allocator, devices.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <malloc.h>
#include <torch/cuda.h>

#include "common.h"
#include "cpu_allocator.h"

namespace rmoe {

namespace {

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    int n = info[0].As<Napi::Number>().Int32Value();
    if (n < 1) throw typeError(info.Env(), "setNumThreads: need at least 1 thread, got " + std::to_string(n));
    at::set_num_threads(n);
    return info.Env().Undefined();
  });
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    double s = info[0].As<Napi::Number>().DoubleValue();
    if (s < 0) throw typeError(info.Env(), "manualSeed: seed must be non-negative");
    at::manual_seed(static_cast<uint64_t>(s));
    return info.Env().Undefined();
  });
}

Napi::Value CudaIsAvailable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), torch::cuda::is_available());
}

Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(torch::cuda::device_count()));
}

Napi::Value Config(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("torchVersion", Napi::String::New(env, TORCH_VERSION));
  o.Set("parallelInfo", Napi::String::New(env, at::get_parallel_info()));
  o.Set("cxx11Abi", Napi::Boolean::New(env, _GLIBCXX_USE_CXX11_ABI != 0));
  return o;
}

Napi::Value AllocatorStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CpuAllocatorStats s = cpuAllocatorStats();
  Napi::Object o = Napi::Object::New(env);
  o.Set("caching", Napi::Boolean::New(env, cpuAllocatorInstalled()));
  o.Set("allocatedBytes", Napi::Number::New(env, static_cast<double>(s.allocatedBytes)));
  o.Set("peakAllocatedBytes", Napi::Number::New(env, static_cast<double>(s.peakAllocatedBytes)));
  o.Set("cachedBytes", Napi::Number::New(env, static_cast<double>(s.cachedBytes)));
  o.Set("mappedBytes", Napi::Number::New(env, static_cast<double>(s.mappedBytes)));
  o.Set("cacheLimitBytes", Napi::Number::New(env, static_cast<double>(s.cacheLimitBytes)));
  o.Set("maps", Napi::Number::New(env, static_cast<double>(s.maps)));
  o.Set("cacheHits", Napi::Number::New(env, static_cast<double>(s.cacheHits)));
  return o;
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(cpuAllocatorEmptyCache()));
}

}  // namespace

void initRuntime(Napi::Env env, Napi::Object exports) {
  // Before any tensor exists: blocks of 1 MiB and more come from the caching allocator.
  installCpuAllocator();
  // For the smaller blocks (and everything, with RMOE_CPU_ALLOCATOR=system): glibc returns
  // large buffers to the OS and faults them in again every step; keep them in the heap.
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(2000000000));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads));
  exports.Set("manualSeed", Napi::Function::New(env, ManualSeed));
  exports.Set("cudaIsAvailable", Napi::Function::New(env, CudaIsAvailable));
  exports.Set("cudaDeviceCount", Napi::Function::New(env, CudaDeviceCount));
  exports.Set("config", Napi::Function::New(env, Config));
  exports.Set("allocatorStats", Napi::Function::New(env, AllocatorStats));
  exports.Set("emptyCache", Napi::Function::New(env, EmptyCache));
}

}  // namespace rmoe
