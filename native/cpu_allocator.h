// The addon's caching CPU allocator (see cpu_allocator.cc for why).
#pragma once

#include <cstddef>
#include <cstdint>

namespace rmoe {

struct CpuAllocatorStats {
  size_t allocatedBytes;      // large blocks in use by tensors (rounded sizes)
  size_t peakAllocatedBytes;  // maximum of allocatedBytes
  size_t cachedBytes;         // large blocks freed and kept for reuse
  size_t mappedBytes;         // allocated + cached: what the allocator holds from the OS (derived)
  size_t cacheLimitBytes;     // cachedBytes never exceeds this
  uint64_t maps;              // blocks obtained from the OS
  uint64_t cacheHits;         // allocations served from the cache
};

// Installs the caching allocator as LibTorch's CPU allocator, unless
// RMOE_CPU_ALLOCATOR=system. Idempotent; call before any tensor is created.
void installCpuAllocator();
bool cpuAllocatorInstalled();
CpuAllocatorStats cpuAllocatorStats();
// Returns every cached block to the OS; the number of bytes released.
size_t cpuAllocatorEmptyCache();

}  // namespace rmoe
