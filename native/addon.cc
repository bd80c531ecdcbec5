#include <napi.h>

namespace rmoe {
void initTensorHandle(Napi::Env env, Napi::Object exports);
void initOpCall(Napi::Env env, Napi::Object exports);
void initTensorData(Napi::Env env, Napi::Object exports);
void initAutograd(Napi::Env env, Napi::Object exports);
void initRuntime(Napi::Env env, Napi::Object exports);
void initConcurrentBranches(Napi::Env env, Napi::Object exports);
void initGenerator(Napi::Env env, Napi::Object exports);
void initDist(Napi::Env env, Napi::Object exports);
void initGradReady(Napi::Env env, Napi::Object exports);
void initAutocast(Napi::Env env, Napi::Object exports);
}  // namespace rmoe

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  rmoe::initRuntime(env, exports);
  rmoe::initTensorHandle(env, exports);
  rmoe::initOpCall(env, exports);
  rmoe::initTensorData(env, exports);
  rmoe::initAutograd(env, exports);
  rmoe::initConcurrentBranches(env, exports);
  rmoe::initGenerator(env, exports);
  rmoe::initDist(env, exports);
  rmoe::initGradReady(env, exports);
  rmoe::initAutocast(env, exports);
  return exports;
}

NODE_API_MODULE(robust_moe, Init)
