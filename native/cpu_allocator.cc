// A caching CPU allocator for LibTorch, installed when the addon loads.
//
// Why: a training or attack loop allocates the same activation sizes every step. With
// glibc, big blocks either go back to the OS and are faulted in again on the next step
// (mmap), or they live in the brk heap, where the small records of tensor handles that
// still wait for V8's GC sit between them and stop freed holes from being reused, so the
// heap keeps growing (docs/PERFORMANCE.md, "Allocator"). Blocks of 1 MiB and more are
// therefore served from their own 2 MiB-aligned mappings, advised as transparent huge
// pages, and kept in per-size free lists when freed: after the first step nothing is
// faulted in again and elementwise kernels take fewer TLB misses. A request takes the
// smallest cached block that fits it and is at most 1.5x its size. Smaller blocks use
// posix_memalign as c10's default allocator does. PyTorch's CUDA caching allocator makes
// the same trade: cached memory is not returned to the OS until emptyCache() is called,
// or (here) until the cache exceeds its limit.
//
// RMOE_CPU_ALLOCATOR=system keeps c10's default allocator; RMOE_CPU_CACHE_MB bounds the
// bytes kept in free lists (default: a quarter of physical memory, at most 8 GiB).
#include "cpu_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace rmoe {

namespace {

constexpr size_t kAlignment = 64;  // c10's gAlignment on x86
constexpr size_t kLargeBlock = size_t{1} << 20;
constexpr size_t kHugePage = size_t{2} << 20;

size_t roundUp(size_t n, size_t to) { return (n + to - 1) / to * to; }

size_t defaultCacheLimit() {
  const char* env = std::getenv("RMOE_CPU_CACHE_MB");
  if (env != nullptr && *env != '\0') {
    char* end = nullptr;
    unsigned long long mb = std::strtoull(env, &end, 10);
    if (end != nullptr && *end == '\0') return static_cast<size_t>(std::min(mb, 1ULL << 40)) << 20;
  }
  long pages = sysconf(_SC_PHYS_PAGES);
  long page = sysconf(_SC_PAGESIZE);
  size_t quarter = (pages > 0 && page > 0) ? static_cast<size_t>(pages) * static_cast<size_t>(page) / 4 : (size_t{1} << 30);
  return std::min(quarter, size_t{8} << 30);
}

class CachingCpuAllocator final : public c10::Allocator {
 public:
  CachingCpuAllocator() : cacheLimit_(defaultCacheLimit()) {}

  c10::DataPtr allocate(size_t n) const override {
    void* p = self().rawAlloc(n);
    return {p, p, &CachingCpuAllocator::rawDelete, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &CachingCpuAllocator::rawDelete; }

  static CachingCpuAllocator& instance() {
    static CachingCpuAllocator* a = new CachingCpuAllocator();  // never destroyed: tensors may outlive static teardown
    return *a;
  }

  CpuAllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    CpuAllocatorStats s = stats_;
    s.mappedBytes = s.allocatedBytes + s.cachedBytes;
    s.cacheLimitBytes = cacheLimit_;
    return s;
  }

  size_t emptyCache() {
    std::lock_guard<std::mutex> lock(mu_);
    return releaseCachedLocked();
  }

 private:
  CachingCpuAllocator& self() const { return const_cast<CachingCpuAllocator&>(*this); }

  void* rawAlloc(size_t n) {
    if (n == 0) return nullptr;
    if (n < kLargeBlock) {
      void* p = nullptr;
      int err = posix_memalign(&p, kAlignment, n);
      TORCH_CHECK(err == 0 && p != nullptr, "robust-moe CPU allocator: out of memory allocating ", n, " bytes");
      return p;
    }
    // c10's own allocator refuses sizes that look negative; rounding up must not wrap either.
    TORCH_CHECK(n <= static_cast<size_t>(PTRDIFF_MAX) - kHugePage, "robust-moe CPU allocator: cannot allocate ", n,
                " bytes");
    size_t size = roundUp(n, kHugePage);
    std::lock_guard<std::mutex> lock(mu_);
    void* p = nullptr;
    // Best fit among cached blocks up to half as large again: an MoE's sub-batches change
    // size every step, and exact-size reuse would keep a block per size ever seen.
    auto it = free_.lower_bound(size);
    if (it != free_.end() && it->first <= size + size / 2) {
      size = it->first;
      p = it->second.back();
      it->second.pop_back();
      if (it->second.empty()) free_.erase(it);  // only sizes with a cached block are keys
      stats_.cachedBytes -= size;
      stats_.cacheHits += 1;
    }
    if (p == nullptr) {
      int err = 0;
      p = mapAligned(size, &err);
      if (p == nullptr) {
        releaseCachedLocked();
        p = mapAligned(size, &err);
      }
      TORCH_CHECK(p != nullptr, "robust-moe CPU allocator: out of memory allocating ", n, " bytes (mmap of ", size,
                  " bytes failed, errno ", err, ")");
      stats_.maps += 1;
    }
    live_[p] = size;
    stats_.allocatedBytes += size;
    if (stats_.allocatedBytes > stats_.peakAllocatedBytes) stats_.peakAllocatedBytes = stats_.allocatedBytes;
    return p;
  }

  static void rawDelete(void* p) {
    if (p != nullptr) instance().release(p);
  }

  void release(void* p) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = live_.find(p);
      if (it != live_.end()) {
        size_t size = it->second;
        live_.erase(it);
        stats_.allocatedBytes -= size;
        if (stats_.cachedBytes + size <= cacheLimit_) {
          free_[size].push_back(p);
          stats_.cachedBytes += size;
        } else {
          munmap(p, size);
        }
        return;
      }
    }
    std::free(p);
  }

  // 2 MiB-aligned, so that the kernel can back the block with huge pages.
  static void* mapAligned(size_t size, int* err) {
    size_t span = size + kHugePage;
    void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
      *err = errno;
      return nullptr;
    }
    auto base = reinterpret_cast<uintptr_t>(raw);
    uintptr_t aligned = roundUp(base, kHugePage);
    if (aligned > base) munmap(raw, aligned - base);
    uintptr_t end = base + span;
    if (end > aligned + size) munmap(reinterpret_cast<void*>(aligned + size), end - (aligned + size));
    void* p = reinterpret_cast<void*>(aligned);
    madvise(p, size, MADV_HUGEPAGE);  // advisory: ignored where THP is off
    return p;
  }

  size_t releaseCachedLocked() {
    size_t released = 0;
    for (auto& [size, list] : free_) {
      for (void* p : list) {
        munmap(p, size);
        released += size;
      }
    }
    free_.clear();
    stats_.cachedBytes -= released;
    return released;
  }

  std::mutex mu_;
  size_t cacheLimit_;
  std::unordered_map<void*, size_t> live_;
  std::map<size_t, std::vector<void*>> free_;  // ordered for best fit; no empty lists
  CpuAllocatorStats stats_{};
};

bool g_installed = false;

}  // namespace

void installCpuAllocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("RMOE_CPU_ALLOCATOR");
    if (env != nullptr && std::string(env) == "system") return;
    // Priority above c10's default (0), so a later default registration cannot displace it.
    c10::SetCPUAllocator(&CachingCpuAllocator::instance(), /*priority=*/1);
    g_installed = true;
  });
}

bool cpuAllocatorInstalled() { return g_installed; }

CpuAllocatorStats cpuAllocatorStats() {
  if (!g_installed) return CpuAllocatorStats{};
  return CachingCpuAllocator::instance().stats();
}

size_t cpuAllocatorEmptyCache() {
  if (!g_installed) return 0;
  return CachingCpuAllocator::instance().emptyCache();
}

}  // namespace rmoe
