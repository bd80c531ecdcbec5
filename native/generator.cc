// Random-number generators as objects (torch.Generator): creation, seeding, and the
// state as bytes. The bytes are LibTorch's own serialisation (at::Generator::get_state,
// a uint8 tensor), which is also what Python's torch.Generator.get_state() returns, so
// states move between robust-moe and PyTorch unchanged.
#include "generator.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <cstring>
#include <mutex>
#include <string>

#include "common.h"

namespace rmoe {

namespace {

// Random 128-bit tag, distinct from the tensor handles' tag.
const napi_type_tag kGeneratorTag = {0x5c0e8a41f2d7b936ULL, 0x91d4a6e03b7fc258ULL};

struct GeneratorBox {
  at::Generator gen;  // undefined once disposed
};

GeneratorBox* boxOf(const Napi::Value& v) {
  if (!v.IsExternal()) return nullptr;
  Napi::Object obj = v.As<Napi::Object>();
  if (!obj.CheckTypeTag(&kGeneratorTag)) return nullptr;
  return v.As<Napi::External<GeneratorBox>>().Data();
}

Napi::Value wrap(Napi::Env env, at::Generator g) {
  auto* box = new GeneratorBox{std::move(g)};
  auto ext = Napi::External<GeneratorBox>::New(env, box, [](Napi::Env, GeneratorBox* b) { delete b; });
  ext.TypeTag(&kGeneratorTag);
  return ext;
}

// Seeds are uint64 in LibTorch; JS numbers are exact only up to 2^53, so both a safe
// integer and a BigInt are accepted, and nothing is silently rounded or wrapped.
uint64_t toSeed(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t s = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw typeError(env, what + ": seed must be in [0, 2^64), got a BigInt outside it");
    return s;
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (std::isfinite(d) && std::floor(d) == d && d >= 0 && d <= 9007199254740991.0) {
      return static_cast<uint64_t>(d);
    }
  }
  throw typeError(env, what + ": seed must be a non-negative safe integer or a BigInt below 2^64");
}

// generatorNew(device, seed?) -> handle
Napi::Value GeneratorNew(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    if (!info[0].IsString()) throw typeError(env, "Generator: device must be a string");
    c10::Device device(info[0].As<Napi::String>().Utf8Value());
    if (!device.is_cpu()) {
      // A new CUDA generator needs libtorch_cuda's createCUDAGenerator, which the addon
      // does not link (Debian's LibTorch has no CUDA); refusing beats a CPU stand-in.
      throw Napi::Error::New(env, "Generator: only CPU generators are supported, got device '" + device.str() + "'");
    }
    at::Generator g = at::detail::createCPUGenerator();
    if (info.Length() > 1 && !info[1].IsUndefined()) {
      uint64_t seed = toSeed(env, info[1], "Generator");
      std::lock_guard<std::mutex> lock(g.mutex());
      g.set_current_seed(seed);
    }
    return wrap(env, std::move(g));
  });
}

// generatorDefault() -> a handle sharing the process-wide CPU generator that
// manualSeed seeds and every op without an explicit generator draws from.
Napi::Value GeneratorDefault(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return wrap(info.Env(), at::detail::getDefaultCPUGenerator()); });
}

Napi::Value GeneratorManualSeed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    at::Generator& g = unwrapGenerator(env, info[0], "Generator.manualSeed");
    uint64_t seed = toSeed(env, info[1], "Generator.manualSeed");
    std::lock_guard<std::mutex> lock(g.mutex());
    g.set_current_seed(seed);
    return env.Undefined();
  });
}

// Seeds from a non-deterministic source and returns the seed (torch.Generator.seed).
Napi::Value GeneratorSeed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    at::Generator& g = unwrapGenerator(env, info[0], "Generator.seed");
    std::lock_guard<std::mutex> lock(g.mutex());
    return Napi::BigInt::New(env, static_cast<uint64_t>(g.seed()));
  });
}

Napi::Value GeneratorInitialSeed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    at::Generator& g = unwrapGenerator(env, info[0], "Generator.initialSeed");
    std::lock_guard<std::mutex> lock(g.mutex());
    return Napi::BigInt::New(env, static_cast<uint64_t>(g.current_seed()));
  });
}

Napi::Value GeneratorGetState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    at::Generator& g = unwrapGenerator(env, info[0], "Generator.getState");
    at::Tensor state;
    {
      std::lock_guard<std::mutex> lock(g.mutex());
      state = g.get_state();
    }
    state = state.contiguous();
    const size_t n = static_cast<size_t>(state.numel());
    Napi::Uint8Array out = Napi::Uint8Array::New(env, n);
    if (n > 0) std::memcpy(out.Data(), state.data_ptr<uint8_t>(), n);
    return out;
  });
}

Napi::Value GeneratorSetState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    at::Generator& g = unwrapGenerator(env, info[0], "Generator.setState");
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      throw typeError(env, "Generator.setState: expected a Uint8Array (from getState() or torch.Generator.get_state())");
    }
    Napi::Uint8Array bytes = info[1].As<Napi::Uint8Array>();
    std::lock_guard<std::mutex> lock(g.mutex());
    // The expected length is whatever this generator itself serialises to, so the check
    // holds for any generator kind; LibTorch would also accept its pre-1.5 "legacy"
    // CPU layout, which nothing produces any more.
    const int64_t expected = g.get_state().numel();
    if (static_cast<int64_t>(bytes.ElementLength()) != expected) {
      throw Napi::Error::New(env, "Generator.setState: expected a state of " + std::to_string(expected) +
                                      " bytes for a " + g.device().str() + " generator, got " +
                                      std::to_string(bytes.ElementLength()));
    }
    at::Tensor state = at::empty({expected}, at::TensorOptions().dtype(at::kByte));
    if (expected > 0) std::memcpy(state.data_ptr<uint8_t>(), bytes.Data(), static_cast<size_t>(expected));
    try {
      // LibTorch validates the content (e.g. "Invalid mt19937 state") and leaves the
      // generator unchanged when it throws.
      g.set_state(state);
    } catch (const c10::Error& e) {
      throw Napi::Error::New(env, std::string("Generator.setState: ") + e.what_without_backtrace());
    }
    return env.Undefined();
  });
}

Napi::Value GeneratorDispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  GeneratorBox* box = boxOf(info[0]);
  if (box == nullptr) throw typeError(env, "Generator.dispose: argument is not a generator handle");
  box->gen = at::Generator();
  return env.Undefined();
}

}  // namespace

bool isGeneratorHandle(const Napi::Value& v) { return boxOf(v) != nullptr; }

at::Generator& unwrapGenerator(Napi::Env env, const Napi::Value& v, const std::string& what) {
  GeneratorBox* box = boxOf(v);
  if (box == nullptr) throw typeError(env, what + ": expected a generator");
  if (!box->gen.defined()) throw Napi::Error::New(env, what + ": generator was already disposed");
  return box->gen;
}

void initGenerator(Napi::Env env, Napi::Object exports) {
  exports.Set("generatorNew", Napi::Function::New(env, GeneratorNew));
  exports.Set("generatorDefault", Napi::Function::New(env, GeneratorDefault));
  exports.Set("generatorManualSeed", Napi::Function::New(env, GeneratorManualSeed));
  exports.Set("generatorSeed", Napi::Function::New(env, GeneratorSeed));
  exports.Set("generatorInitialSeed", Napi::Function::New(env, GeneratorInitialSeed));
  exports.Set("generatorGetState", Napi::Function::New(env, GeneratorGetState));
  exports.Set("generatorSetState", Napi::Function::New(env, GeneratorSetState));
  exports.Set("generatorDispose", Napi::Function::New(env, GeneratorDispose));
}

}  // namespace rmoe
