// Autocast (automatic mixed precision) state, as LibTorch keeps it: per OS thread.
#pragma once

#include <ATen/ATen.h>

namespace rmoe {

// The calling thread's autocast settings. The enabled flags live in the dispatch-key TLS,
// which at::ThreadLocalState already carries to other threads; the dtypes and the cache
// flag are plain thread_locals in LibTorch 1.13 that it does not carry, so a thread that
// runs work on behalf of another (the concurrent expert backward) must apply this itself.
struct AutocastState {
  bool cpuEnabled;
  bool gpuEnabled;
  at::ScalarType cpuDtype;
  at::ScalarType gpuDtype;
  bool cacheEnabled;

  static AutocastState capture();
  void apply() const;
};

}  // namespace rmoe
