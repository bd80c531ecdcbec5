// A JS-visible handle owns one at::Generator (a reference-counted pointer to the
// generator's implementation). Handles are napi Externals with their own type tag, so
// a tensor handle passed where a generator is expected (or the reverse) is rejected.
#pragma once

#include <ATen/core/Generator.h>
#include <napi.h>

#include <string>

namespace rmoe {

bool isGeneratorHandle(const Napi::Value& v);
// Throws a TypeError naming `what` when v is not a generator handle, an Error when the
// generator was disposed.
at::Generator& unwrapGenerator(Napi::Env env, const Napi::Value& v, const std::string& what);

void initGenerator(Napi::Env env, Napi::Object exports);

}  // namespace rmoe
