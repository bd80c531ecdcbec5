// c10d, PyTorch's distributed engine, as opaque handles: stores (TCPStore, FileStore,
// PrefixStore), process groups (ProcessGroupGloo; ProcessGroupNCCL where the build has it)
// and work handles. Nothing here knows about training: bucketing, data parallelism, the
// store-based barrier and launching are TypeScript (src/dist/).
//
// The event loop is never blocked without a bound:
// - anything that can wait on a peer (connecting a store, the rendezvous inside a process
//   group's constructor, store get/wait, destroying a group) runs on libuv's thread pool
//   and returns a Promise;
// - a collective returns at once: c10d itself runs it on the backend's threads. Its
//   completion (the c10d Work's future) resolves a Promise through a thread-safe function,
//   so no thread sits blocked on it; workWait() blocks the caller, but only up to a timeout
//   the caller gives (the training step uses it: the step is synchronous compute anyway).
// Every error names the rank, the backend and the operation.
#include <napi.h>

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#ifdef RMOE_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef RMOE_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <ATen/core/ivalue.h>
#include <torch/csrc/autograd/custom_function.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common.h"
#include "tensor_handle.h"

namespace rmoe {

namespace {

using Ms = std::chrono::milliseconds;

// Random 128-bit tags, distinct from the tensor and generator tags.
const napi_type_tag kStoreTag = {0x3e9d0c5a7b21f486ULL, 0xa4c1f02d96e8b573ULL};
const napi_type_tag kGroupTag = {0x81f5b02ce47a9d36ULL, 0x2d07e9a5c31b64f8ULL};
const napi_type_tag kWorkTag = {0xc62a7e14d09f3b85ULL, 0x5f8b31e0a7d26c49ULL};

// ---------------------------------------------------------------- process groups

// ProcessGroupGloo and ProcessGroupNCCL derive from ProcessGroup in LibTorch 1.13 and from
// Backend in 2.x; holding the concrete class behind this interface builds against both.
struct Collectives {
  virtual ~Collectives() = default;
  virtual c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor>& t, const c10d::AllreduceOptions& o) = 0;
  virtual c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& t, const c10d::BroadcastOptions& o) = 0;
  virtual c10::intrusive_ptr<c10d::Work> allgather(std::vector<std::vector<at::Tensor>>& out, std::vector<at::Tensor>& in,
                                                   const c10d::AllgatherOptions& o) = 0;
  virtual c10::intrusive_ptr<c10d::Work> barrier(const c10d::BarrierOptions& o) = 0;
  virtual void setSequenceNumberForGroup() = 0;
};

template <class PG>
struct CollectivesOf final : Collectives {
  c10::intrusive_ptr<PG> pg;
  explicit CollectivesOf(c10::intrusive_ptr<PG> p) : pg(std::move(p)) {}
  c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor>& t, const c10d::AllreduceOptions& o) override {
    return pg->allreduce(t, o);
  }
  c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& t, const c10d::BroadcastOptions& o) override {
    return pg->broadcast(t, o);
  }
  c10::intrusive_ptr<c10d::Work> allgather(std::vector<std::vector<at::Tensor>>& out, std::vector<at::Tensor>& in,
                                           const c10d::AllgatherOptions& o) override {
    return pg->allgather(out, in, o);
  }
  c10::intrusive_ptr<c10d::Work> barrier(const c10d::BarrierOptions& o) override { return pg->barrier(o); }
  void setSequenceNumberForGroup() override { pg->setSequenceNumberForGroup(); }
};

struct GroupBox {
  std::shared_ptr<Collectives> pg;  // null once destroyed
  int rank = 0;
  int size = 0;
  std::string backend;
  int64_t inFlight = 0;  // collectives started and not yet delivered to JS
  int64_t id = 0;        // key in g_groups
  std::string who() const {
    return "dist rank " + std::to_string(rank) + "/" + std::to_string(size) + " (" + backend + ")";
  }
};

// Groups by id, for the differentiable allreduce's backward (an autograd context holds
// IValues only). Weak: a destroyed group's id no longer resolves.
struct GroupRef {
  std::weak_ptr<Collectives> pg;
  std::string who;
};
std::mutex g_groupsMutex;
std::unordered_map<int64_t, GroupRef> g_groups;
std::atomic<int64_t> g_nextGroupId{1};

struct StoreBox {
  c10::intrusive_ptr<c10d::Store> store;  // null once disposed
  std::string describe;                   // e.g. "tcp store 127.0.0.1:29500", for messages
};

struct WorkBox {
  c10::intrusive_ptr<c10d::Work> work;
  std::string what;  // "dist rank 1/2 (gloo): allreduce"
};

template <class Box>
Box* boxOf(const Napi::Value& v, const napi_type_tag& tag) {
  if (!v.IsExternal()) return nullptr;
  Napi::Object obj = v.As<Napi::Object>();
  if (!obj.CheckTypeTag(&tag)) return nullptr;
  return v.As<Napi::External<Box>>().Data();
}

template <class Box>
Napi::Value wrapBox(Napi::Env env, Box* box, const napi_type_tag& tag) {
  auto ext = Napi::External<Box>::New(env, box, [](Napi::Env, Box* b) { delete b; });
  ext.TypeTag(&tag);
  return ext;
}

StoreBox& storeOf(Napi::Env env, const Napi::Value& v, const char* what) {
  auto* b = boxOf<StoreBox>(v, kStoreTag);
  if (b == nullptr) throw typeError(env, std::string(what) + ": expected a store handle");
  if (!b->store) throw Napi::Error::New(env, std::string(what) + ": the store was disposed");
  return *b;
}

GroupBox& groupOf(Napi::Env env, const Napi::Value& v, const char* what) {
  auto* b = boxOf<GroupBox>(v, kGroupTag);
  if (b == nullptr) throw typeError(env, std::string(what) + ": expected a process group handle");
  if (!b->pg) throw Napi::Error::New(env, std::string(what) + ": the process group was destroyed");
  return *b;
}

// ---------------------------------------------------------------- promises off the JS thread

// Runs `work` on libuv's pool; `done` turns its result into a JS value on the JS thread.
// Errors become a rejection whose message starts with `what`.
template <class R>
class Task final : public Napi::AsyncWorker {
 public:
  Task(Napi::Env env, std::string what, std::function<R()> work, std::function<Napi::Value(Napi::Env, R&)> done)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), what_(std::move(what)),
        work_(std::move(work)), done_(std::move(done)) {}

  Napi::Promise promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      result_ = work_();
    } catch (const c10::Error& e) {
      SetError(what_ + ": " + e.what_without_backtrace());
    } catch (const std::exception& e) {
      SetError(what_ + ": " + e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(done_(env, result_));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::string what_;
  std::function<R()> work_;
  std::function<Napi::Value(Napi::Env, R&)> done_;
  R result_{};
};

template <class R>
Napi::Value runTask(Napi::Env env, std::string what, std::function<R()> work,
                    std::function<Napi::Value(Napi::Env, R&)> done) {
  auto* t = new Task<R>(env, std::move(what), std::move(work), std::move(done));
  Napi::Promise p = t->promise();
  t->Queue();  // the AsyncWorker deletes itself after OnOK/OnError
  return p;
}

// ---------------------------------------------------------------- completions of collectives

struct Completion {
  Napi::Promise::Deferred deferred;
  GroupBox* group;                     // kept alive by `groupRef` below
  Napi::Reference<Napi::Value> groupRef;
  std::string what;
  std::string error;  // empty: success
};

void deliver(Napi::Env env, Napi::Function, std::nullptr_t*, Completion* c);
using CompletionFn = Napi::TypedThreadSafeFunction<std::nullptr_t, Completion, deliver>;

// One per process (the main thread's environment): created on the first collective, and
// referenced only while collectives are in flight, so an idle group never keeps Node alive.
CompletionFn g_completions;
napi_env g_completionsEnv = nullptr;
int64_t g_inFlight = 0;

void deliver(Napi::Env env, Napi::Function, std::nullptr_t*, Completion* c) {
  if (env != nullptr) {
    c->group->inFlight -= 1;
    if (--g_inFlight == 0) g_completions.Unref(env);
    if (c->error.empty()) {
      c->deferred.Resolve(env.Undefined());
    } else {
      c->deferred.Reject(Napi::Error::New(env, c->what + " failed: " + c->error).Value());
    }
    c->groupRef.Reset();
  } else {
    // The environment is going away: its references go with it.
    c->groupRef.SuppressDestruct();
  }
  delete c;
}

void ensureCompletions(Napi::Env env) {
  if (g_completionsEnv == nullptr) {
    g_completions = CompletionFn::New(env, "rmoe.dist.completion", 0, 1);
    g_completions.Unref(env);
    g_completionsEnv = env;
  } else if (g_completionsEnv != static_cast<napi_env>(env)) {
    throw Napi::Error::New(env, "dist: collectives can only be started from the main thread");
  }
}

// Returns { work, done }: the handle, and a Promise settled when c10d completes the work.
Napi::Value startedWork(Napi::Env env, const Napi::Value& groupValue, GroupBox& g, const std::string& op,
                        c10::intrusive_ptr<c10d::Work> work) {
  ensureCompletions(env);
  std::string what = g.who() + ": " + op;
  auto* c = new Completion{Napi::Promise::Deferred::New(env), &g, Napi::Reference<Napi::Value>::New(groupValue, 1), what, ""};
  Napi::Object out = Napi::Object::New(env);
  out.Set("done", c->deferred.Promise());
  out.Set("work", wrapBox(env, new WorkBox{work, what}, kWorkTag));
  g.inFlight += 1;
  if (g_inFlight++ == 0) g_completions.Ref(env);
  c10::intrusive_ptr<c10::ivalue::Future> fut;
  try {
    fut = work->getFuture();
  } catch (...) {
    fut.reset();
  }
  if (!fut) {
    // A backend whose works have no future: settle by a waiting thread instead.
    std::thread([work, c]() {
      try {
        work->wait();
      } catch (const c10::Error& e) {
        c->error = e.what_without_backtrace();
      } catch (const std::exception& e) {
        c->error = e.what();
      }
      g_completions.NonBlockingCall(c);
    }).detach();
    return out;
  }
  // Runs on the backend's thread when the work completes (or at once if it already has).
  fut->addCallback([c](c10::ivalue::Future& f) {
    if (f.hasError()) c->error = f.tryRetrieveErrorMessage();
    g_completions.NonBlockingCall(c);
  });
  return out;
}

// ---------------------------------------------------------------- argument helpers

Ms msArg(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsNumber()) throw typeError(env, what + ": timeout must be a number of milliseconds");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d > 0) || d > 1e12) throw typeError(env, what + ": timeout must be a positive number of milliseconds");
  return Ms(static_cast<int64_t>(d));
}

// Optional per-operation timeout (undefined: the group's own).
Ms optionalMs(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (v.IsUndefined() || v.IsNull()) return c10d::kUnsetTimeout;
  return msArg(env, v, what);
}

std::string stringArg(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsString()) throw typeError(env, what + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

int intArg(Napi::Env env, const Napi::Value& v, const std::string& what, int lo, int hi) {
  if (!v.IsNumber()) throw typeError(env, what + " must be an integer");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<int64_t>(d)) || d < lo || d > hi) {
    throw typeError(env, what + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                             v.ToString().Utf8Value());
  }
  return static_cast<int>(d);
}

// A tensor c10d can read and write in place: dense, contiguous, and on the backend's device.
at::Tensor collectiveTensor(Napi::Env env, const Napi::Value& v, const GroupBox& g, const std::string& what) {
  at::Tensor& t = unwrapTensor(env, v, what.c_str());
  if (!t.is_contiguous() || t.layout() != at::kStrided) {
    throw Napi::Error::New(env, g.who() + ": " + what + ": the tensor must be dense and contiguous (call .contiguous())");
  }
  if (g.backend == "gloo" && !t.device().is_cpu()) {
    throw Napi::Error::New(env, g.who() + ": " + what + ": gloo here takes CPU tensors, got one on " + t.device().str());
  }
  if (g.backend == "nccl" && !t.device().is_cuda()) {
    throw Napi::Error::New(env, g.who() + ": " + what + ": nccl takes CUDA tensors, got one on " + t.device().str());
  }
  return t;
}

std::vector<at::Tensor> tensorList(Napi::Env env, const Napi::Value& v, const GroupBox& g, const std::string& what) {
  if (!v.IsArray()) throw typeError(env, what + ": expected an array of tensors");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<at::Tensor> out;
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(collectiveTensor(env, a.Get(i), g, what));
  if (out.empty()) throw typeError(env, what + ": expected at least one tensor");
  return out;
}

// ---------------------------------------------------------------- stores

std::vector<uint8_t> bytesArg(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw typeError(env, what + ": value must be a Uint8Array");
  }
  Napi::Uint8Array a = v.As<Napi::Uint8Array>();
  return std::vector<uint8_t>(a.Data(), a.Data() + a.ElementLength());
}

Napi::Value wrapStore(Napi::Env env, c10::intrusive_ptr<c10d::Store> s, std::string describe) {
  return wrapBox(env, new StoreBox{std::move(s), std::move(describe)}, kStoreTag);
}

// storeTcp(host, port, isServer, worldSize|null, waitWorkers, timeoutMs, multiTenant) -> Promise<store>
// The same arguments Python's torch.distributed.TCPStore passes, so a Node rank and a
// Python rank count the same workers on the same server.
Napi::Value StoreTcp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    std::string host = stringArg(env, info[0], "dist.TCPStore: host");
    c10d::TCPStoreOptions o;
    o.port = static_cast<std::uint16_t>(intArg(env, info[1], "dist.TCPStore: port", 0, 65535));
    o.isServer = info[2].ToBoolean().Value();
    if (!info[3].IsNull() && !info[3].IsUndefined()) {
      o.numWorkers = static_cast<std::size_t>(intArg(env, info[3], "dist.TCPStore: worldSize", 1, 1 << 20));
    }
    o.waitWorkers = info[4].ToBoolean().Value();
    o.timeout = msArg(env, info[5], "dist.TCPStore");
    o.multiTenant = info[6].ToBoolean().Value();
    std::string describe = "tcp store " + host + ":" + std::to_string(o.port) + (o.isServer ? " (server)" : "");
    return runTask<c10::intrusive_ptr<c10d::Store>>(
        env, "dist: " + describe,
        [host, o]() -> c10::intrusive_ptr<c10d::Store> { return c10::make_intrusive<c10d::TCPStore>(host, o); },
        [describe](Napi::Env e, c10::intrusive_ptr<c10d::Store>& s) { return wrapStore(e, s, describe); });
  });
}

// storeFile(path, worldSize) -> Promise<store>
Napi::Value StoreFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    std::string path = stringArg(env, info[0], "dist.FileStore: path");
    int n = intArg(env, info[1], "dist.FileStore: worldSize", 1, 1 << 20);
    std::string describe = "file store " + path;
    return runTask<c10::intrusive_ptr<c10d::Store>>(
        env, "dist: " + describe,
        [path, n]() -> c10::intrusive_ptr<c10d::Store> { return c10::make_intrusive<c10d::FileStore>(path, n); },
        [describe](Napi::Env e, c10::intrusive_ptr<c10d::Store>& s) { return wrapStore(e, s, describe); });
  });
}

// storePrefix(store, prefix) -> store: keys become "prefix/key", as Python's PrefixStore.
Napi::Value StorePrefix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    StoreBox& s = storeOf(env, info[0], "dist.PrefixStore");
    std::string prefix = stringArg(env, info[1], "dist.PrefixStore: prefix");
    return wrapStore(env, c10::make_intrusive<c10d::PrefixStore>(prefix, s.store), s.describe + " prefix " + prefix);
  });
}

Napi::Value StoreSet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    StoreBox& s = storeOf(env, info[0], "dist.store.set");
    std::string key = stringArg(env, info[1], "dist.store.set: key");
    auto value = bytesArg(env, info[2], "dist.store.set");
    auto store = s.store;
    return runTask<bool>(
        env, "dist: " + s.describe + ": set '" + key + "'",
        [store, key, value]() {
          store->set(key, value);
          return true;
        },
        [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
  });
}

Napi::Value StoreGet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    StoreBox& s = storeOf(env, info[0], "dist.store.get");
    std::string key = stringArg(env, info[1], "dist.store.get: key");
    auto store = s.store;
    return runTask<std::vector<uint8_t>>(
        env, "dist: " + s.describe + ": get '" + key + "'", [store, key]() { return store->get(key); },
        [](Napi::Env e, std::vector<uint8_t>& v) -> Napi::Value {
          Napi::Uint8Array out = Napi::Uint8Array::New(e, v.size());
          if (!v.empty()) std::memcpy(out.Data(), v.data(), v.size());
          return out;
        });
  });
}

Napi::Value StoreAdd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    StoreBox& s = storeOf(env, info[0], "dist.store.add");
    std::string key = stringArg(env, info[1], "dist.store.add: key");
    if (!info[2].IsNumber()) throw typeError(env, "dist.store.add: amount must be an integer");
    int64_t amount = info[2].As<Napi::Number>().Int64Value();
    auto store = s.store;
    return runTask<int64_t>(
        env, "dist: " + s.describe + ": add '" + key + "'", [store, key, amount]() { return store->add(key, amount); },
        [](Napi::Env e, int64_t& v) -> Napi::Value { return Napi::Number::New(e, static_cast<double>(v)); });
  });
}

// storeWait(store, keys[], timeoutMs) -> Promise<void>
Napi::Value StoreWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    StoreBox& s = storeOf(env, info[0], "dist.store.wait");
    if (!info[1].IsArray()) throw typeError(env, "dist.store.wait: keys must be an array of strings");
    std::vector<std::string> keys;
    Napi::Array a = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) keys.push_back(stringArg(env, a.Get(i), "dist.store.wait: key"));
    Ms timeout = msArg(env, info[2], "dist.store.wait");
    auto store = s.store;
    return runTask<bool>(
        env, "dist: " + s.describe + ": wait",
        [store, keys, timeout]() {
          store->wait(keys, timeout);
          return true;
        },
        [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
  });
}

Napi::Value StoreSetTimeout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    StoreBox& s = storeOf(env, info[0], "dist.store.setTimeout");
    s.store->setTimeout(msArg(env, info[1], "dist.store.setTimeout"));
    return env.Undefined();
  });
}

// Drops this handle's reference (a TCPStore server stops when no group uses it any more).
Napi::Value StoreDispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* b = boxOf<StoreBox>(info[0], kStoreTag);
  if (b == nullptr) throw typeError(env, "dist.store.dispose: expected a store handle");
  b->store.reset();
  return env.Undefined();
}

// ---------------------------------------------------------------- groups

// groupCreate(backend, store, rank, size, timeoutMs) -> Promise<group>. The constructor
// connects to every peer (rendezvous through the store), hence off the JS thread.
Napi::Value GroupCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    std::string backend = stringArg(env, info[0], "dist.initProcessGroup: backend");
    StoreBox& s = storeOf(env, info[1], "dist.initProcessGroup");
    int size = intArg(env, info[3], "dist.initProcessGroup: worldSize", 1, 1 << 20);
    int rank = intArg(env, info[2], "dist.initProcessGroup: rank", 0, size - 1);
    Ms timeout = msArg(env, info[4], "dist.initProcessGroup");
    auto store = s.store;
    std::string who = "dist rank " + std::to_string(rank) + "/" + std::to_string(size) + " (" + backend + ")";
    std::function<std::shared_ptr<Collectives>()> make;
    if (backend == "gloo") {
#ifdef RMOE_WITH_GLOO
      make = [store, rank, size, timeout]() -> std::shared_ptr<Collectives> {
        auto o = c10d::ProcessGroupGloo::Options::create(timeout);
        // As Python's ProcessGroupGloo binding: GLOO_SOCKET_IFNAME names the interface(s),
        // else the device bound to this host's name (loopback if it does not resolve).
        const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
        if (ifname != nullptr && *ifname != '\0') {
          std::string names(ifname);
          size_t start = 0;
          while (start <= names.size()) {
            size_t comma = names.find(',', start);
            std::string one = names.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
            if (!one.empty()) o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(one));
            if (comma == std::string::npos) break;
            start = comma + 1;
          }
        } else {
          o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
        }
        o->threads = static_cast<int>(o->devices.size()) * 2;
        auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, o);
        return std::make_shared<CollectivesOf<c10d::ProcessGroupGloo>>(pg);
      };
#else
      throw Napi::Error::New(env, who + ": this build has no gloo (its headers were not found at build time: "
                                        "apt-get install libgloo-dev, or set GLOO_INCLUDE_DIR, then rebuild the addon)");
#endif
    } else if (backend == "nccl") {
#ifdef RMOE_WITH_NCCL
      make = [store, rank, size, timeout]() -> std::shared_ptr<Collectives> {
        auto o = c10d::ProcessGroupNCCL::Options::create();
        o->timeout = timeout;
        auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, o);
        return std::make_shared<CollectivesOf<c10d::ProcessGroupNCCL>>(pg);
      };
#else
      throw Napi::Error::New(env, who + ": this build has no NCCL (it needs a CUDA LibTorch built with NCCL and nccl.h: "
                                        "LIBTORCH=... npm run build:native)");
#endif
    } else {
      throw typeError(env, "dist.initProcessGroup: backend must be 'gloo' or 'nccl', got '" + backend + "'");
    }
    return runTask<std::shared_ptr<Collectives>>(
        env, who + ": initProcessGroup (rendezvous through " + s.describe + ")", make,
        [rank, size, backend](Napi::Env e, std::shared_ptr<Collectives>& pg) -> Napi::Value {
          auto* box = new GroupBox{pg, rank, size, backend, 0, g_nextGroupId++};
          {
            std::lock_guard<std::mutex> lock(g_groupsMutex);
            g_groups[box->id] = GroupRef{pg, box->who()};
          }
          return wrapBox(e, box, kGroupTag);
        });
  });
}

// Collectives started and not yet delivered to JS (a completed one is delivered when the
// event loop next turns).
Napi::Value GroupInFlight(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    return Napi::Number::New(env, static_cast<double>(groupOf(env, info[0], "dist.inFlight").inFlight));
  });
}

// Rank 0 draws the group's sequence number and the others read it from the store, as
// Python's init_process_group does after its store barrier: a Python peer waits for it.
Napi::Value GroupSetSequenceNumber(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    GroupBox& g = groupOf(env, info[0], "dist.setSequenceNumber");
    auto pg = g.pg;
    return runTask<bool>(
        env, g.who() + ": setSequenceNumberForGroup",
        [pg]() {
          pg->setSequenceNumberForGroup();
          return true;
        },
        [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
  });
}

// groupDestroy(group) -> Promise<void>. c10d's destructor drains the queue and joins the
// backend's threads, hence off the JS thread; refused while collectives are in flight.
Napi::Value GroupDestroy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    GroupBox& g = groupOf(env, info[0], "dist.destroyProcessGroup");
    if (g.inFlight > 0) {
      throw Napi::Error::New(env, g.who() + ": destroyProcessGroup: " + std::to_string(g.inFlight) +
                                      " collective(s) still in flight; wait for them first");
    }
    std::shared_ptr<Collectives> pg = std::move(g.pg);
    g.pg.reset();
    {
      std::lock_guard<std::mutex> lock(g_groupsMutex);
      g_groups.erase(g.id);
    }
    return runTask<bool>(
        env, g.who() + ": destroyProcessGroup",
        [pg]() mutable {
          pg.reset();
          return true;
        },
        [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
  });
}

c10d::ReduceOp reduceOpArg(Napi::Env env, const Napi::Value& v, const GroupBox& g) {
  std::string op = stringArg(env, v, g.who() + ": allreduce: op");
  if (op == "sum") return c10d::ReduceOp(c10d::ReduceOp::SUM);
  if (op == "product") return c10d::ReduceOp(c10d::ReduceOp::PRODUCT);
  if (op == "min") return c10d::ReduceOp(c10d::ReduceOp::MIN);
  if (op == "max") return c10d::ReduceOp(c10d::ReduceOp::MAX);
  throw typeError(env, g.who() + ": allreduce: op must be 'sum', 'product', 'min' or 'max', got '" + op + "'");
}

// A collective's own call can throw at once (bad arguments, a group already broken).
template <class Fn>
c10::intrusive_ptr<c10d::Work> start(Napi::Env env, const GroupBox& g, const std::string& op, Fn&& fn) {
  try {
    return fn();
  } catch (const c10::Error& e) {
    throw Napi::Error::New(env, g.who() + ": " + op + " failed: " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, g.who() + ": " + op + " failed: " + e.what());
  }
}

// allreduce(group, tensors[], op, timeoutMs?) -> { work, done }
Napi::Value Allreduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    GroupBox& g = groupOf(env, info[0], "dist.allreduce");
    auto tensors = tensorList(env, info[1], g, "allreduce");
    c10d::AllreduceOptions o;
    o.reduceOp = reduceOpArg(env, info[2], g);
    o.timeout = optionalMs(env, info[3], g.who() + ": allreduce");
    auto w = start(env, g, "allreduce", [&]() { return g.pg->allreduce(tensors, o); });
    return startedWork(env, info[0], g, "allreduce", w);
  });
}

// broadcast(group, tensors[], root, timeoutMs?) -> { work, done }
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    GroupBox& g = groupOf(env, info[0], "dist.broadcast");
    auto tensors = tensorList(env, info[1], g, "broadcast");
    c10d::BroadcastOptions o;
    o.rootRank = intArg(env, info[2], g.who() + ": broadcast: src", 0, g.size - 1);
    o.timeout = optionalMs(env, info[3], g.who() + ": broadcast");
    std::string op = "broadcast from rank " + std::to_string(o.rootRank);
    auto w = start(env, g, op, [&]() { return g.pg->broadcast(tensors, o); });
    return startedWork(env, info[0], g, op, w);
  });
}

// allgather(group, outputs[], input, timeoutMs?) -> { work, done }: outputs[r] receives rank r's input.
Napi::Value Allgather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    GroupBox& g = groupOf(env, info[0], "dist.allgather");
    std::vector<std::vector<at::Tensor>> outputs{tensorList(env, info[1], g, "allgather output")};
    if (static_cast<int>(outputs[0].size()) != g.size) {
      throw Napi::Error::New(env, g.who() + ": allgather: needs one output tensor per rank (" + std::to_string(g.size) +
                                      "), got " + std::to_string(outputs[0].size()));
    }
    std::vector<at::Tensor> inputs{collectiveTensor(env, info[2], g, "allgather input")};
    c10d::AllgatherOptions o;
    o.timeout = optionalMs(env, info[3], g.who() + ": allgather");
    auto w = start(env, g, "allgather", [&]() { return g.pg->allgather(outputs, inputs, o); });
    return startedWork(env, info[0], g, "allgather", w);
  });
}

// barrier(group, timeoutMs?) -> { work, done }
Napi::Value Barrier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    GroupBox& g = groupOf(env, info[0], "dist.barrier");
    c10d::BarrierOptions o;
    o.timeout = optionalMs(env, info[1], g.who() + ": barrier");
    auto w = start(env, g, "barrier", [&]() { return g.pg->barrier(o); });
    return startedWork(env, info[0], g, "barrier", w);
  });
}

// ---------------------------------------------------------------- differentiable allreduce

// Sums a tensor over the ranks, waiting (at most timeout) in this thread, and throws an error
// naming the rank and the operation.
void allreduceNow(const GroupRef& ref, at::Tensor& t, Ms timeout, const char* op) {
  auto pg = ref.pg.lock();
  if (!pg) throw std::runtime_error(ref.who + ": " + op + ": the process group was destroyed");
  std::vector<at::Tensor> v{t};
  c10d::AllreduceOptions o;
  o.timeout = timeout;
  auto w = pg->allreduce(v, o);
  try {
    w->wait(timeout);
  } catch (const c10::Error& e) {
    throw std::runtime_error(ref.who + ": " + op + " failed: " + e.what_without_backtrace());
  }
}

GroupRef groupRef(int64_t id) {
  std::lock_guard<std::mutex> lock(g_groupsMutex);
  auto it = g_groups.find(id);
  if (it == g_groups.end()) throw std::runtime_error("dist: allreduce with autograd: the process group was destroyed");
  return it->second;
}

// torch.distributed.nn.functional.all_reduce (sum): y = sum over ranks of x, and the
// gradient of x is the sum over ranks of y's gradient. Both directions block the calling
// thread (bounded by the timeout): a backward pass cannot await.
struct AllreduceSum : public torch::autograd::Function<AllreduceSum> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, int64_t groupId, int64_t timeoutMs) {
    ctx->saved_data["group"] = groupId;
    ctx->saved_data["timeout"] = timeoutMs;
    at::Tensor y = x.detach().contiguous().clone();
    allreduceNow(groupRef(groupId), y, Ms(timeoutMs), "allreduce (autograd forward)");
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    at::Tensor g = grads[0].contiguous().clone();
    allreduceNow(groupRef(ctx->saved_data["group"].toInt()), g, Ms(ctx->saved_data["timeout"].toInt()),
                 "allreduce (autograd backward)");
    return {g, at::Tensor(), at::Tensor()};
  }
};

// allreduceAutograd(group, tensor, timeoutMs) -> tensor
Napi::Value AllreduceAutograd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    GroupBox& g = groupOf(env, info[0], "dist.allreduceWithGrad");
    at::Tensor x = collectiveTensor(env, info[1], g, "allreduceWithGrad");
    Ms timeout = msArg(env, info[2], g.who() + ": allreduceWithGrad");
    return wrapTensor(env, AllreduceSum::apply(x, g.id, static_cast<int64_t>(timeout.count())));
  });
}

// ---------------------------------------------------------------- work handles

WorkBox& workOf(Napi::Env env, const Napi::Value& v, const char* what) {
  auto* b = boxOf<WorkBox>(v, kWorkTag);
  if (b == nullptr) throw typeError(env, std::string(what) + ": expected a work handle");
  return *b;
}

Napi::Value WorkIsCompleted(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    return Napi::Boolean::New(env, workOf(env, info[0], "Work.isCompleted").work->isCompleted());
  });
}

// workWait(work, timeoutMs): blocks this thread until the work completes, at most timeoutMs;
// throws the work's error, or a timeout, naming the rank and the operation.
Napi::Value WorkWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  WorkBox& w = workOf(env, info[0], "Work.waitSync");
  Ms timeout = msArg(env, info[1], w.what + ": wait");
  bool done = false;
  std::string error;
  try {
    done = w.work->wait(timeout);
  } catch (const c10::Error& e) {
    error = e.what_without_backtrace();
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!error.empty()) {
    if (!w.work->isCompleted()) {
      throw Napi::Error::New(env, w.what + " did not complete within " + std::to_string(timeout.count()) +
                                      " ms (a peer is gone or stalled; the group cannot be used any more)");
    }
    throw Napi::Error::New(env, w.what + " failed: " + error);
  }
  if (!done) throw Napi::Error::New(env, w.what + " was aborted");
  return env.Undefined();
}

Napi::Value Features(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
#ifdef RMOE_WITH_GLOO
  o.Set("gloo", Napi::Boolean::New(env, true));
#else
  o.Set("gloo", Napi::Boolean::New(env, false));
#endif
#ifdef RMOE_WITH_NCCL
  o.Set("nccl", Napi::Boolean::New(env, true));
#else
  o.Set("nccl", Napi::Boolean::New(env, false));
#endif
  return o;
}

}  // namespace

void initDist(Napi::Env env, Napi::Object exports) {
  Napi::Object d = Napi::Object::New(env);
  d.Set("features", Napi::Function::New(env, Features));
  d.Set("storeTcp", Napi::Function::New(env, StoreTcp));
  d.Set("storeFile", Napi::Function::New(env, StoreFile));
  d.Set("storePrefix", Napi::Function::New(env, StorePrefix));
  d.Set("storeSet", Napi::Function::New(env, StoreSet));
  d.Set("storeGet", Napi::Function::New(env, StoreGet));
  d.Set("storeAdd", Napi::Function::New(env, StoreAdd));
  d.Set("storeWait", Napi::Function::New(env, StoreWait));
  d.Set("storeSetTimeout", Napi::Function::New(env, StoreSetTimeout));
  d.Set("storeDispose", Napi::Function::New(env, StoreDispose));
  d.Set("groupCreate", Napi::Function::New(env, GroupCreate));
  d.Set("groupSetSequenceNumber", Napi::Function::New(env, GroupSetSequenceNumber));
  d.Set("groupDestroy", Napi::Function::New(env, GroupDestroy));
  d.Set("groupInFlight", Napi::Function::New(env, GroupInFlight));
  d.Set("allreduce", Napi::Function::New(env, Allreduce));
  d.Set("broadcast", Napi::Function::New(env, Broadcast));
  d.Set("allgather", Napi::Function::New(env, Allgather));
  d.Set("barrier", Napi::Function::New(env, Barrier));
  d.Set("allreduceAutograd", Napi::Function::New(env, AllreduceAutograd));
  d.Set("workIsCompleted", Napi::Function::New(env, WorkIsCompleted));
  d.Set("workWait", Napi::Function::New(env, WorkWait));
  exports.Set("dist", d);
}

}  // namespace rmoe
