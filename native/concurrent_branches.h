// autograd.concurrentBranches (see concurrent_branches.cc).
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace rmoe {

// Whether a concurrent-branches node can be reached backwards from these outputs: then
// autograd.grad cannot give correct results through them and must refuse.
bool reachesConcurrentBranches(const std::vector<at::Tensor>& outputs);

}  // namespace rmoe
