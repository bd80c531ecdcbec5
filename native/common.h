// Shared helpers for the robust-moe addon: every exported function goes through
// guarded() so a LibTorch error becomes a JS exception instead of an abort.
#pragma once

#include <napi.h>
#include <torch/version.h>

#include <exception>
#include <string>

namespace rmoe {

template <typename Fn>
Napi::Value guarded(const Napi::CallbackInfo& info, Fn&& fn) {
  Napi::Env env = info.Env();
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    // what_without_backtrace: users want LibTorch's message, not a C++ stack.
    throw Napi::Error::New(env, e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

inline Napi::Error typeError(Napi::Env env, const std::string& msg) {
  return Napi::TypeError::New(env, msg);
}

}  // namespace rmoe
