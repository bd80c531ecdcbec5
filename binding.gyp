{
  "targets": [
    {
      "target_name": "robust_moe",
      "sources": [
        "native/addon.cc",
        "native/autocast.cc",
        "native/autograd.cc",
        "native/concurrent_branches.cc",
        "native/cpu_allocator.cc",
        "native/dist.cc",
        "native/generator.cc",
        "native/grad_ready.cc",
        "native/op_call.cc",
        "native/runtime.cc",
        "native/tensor_data.cc",
        "native/tensor_handle.cc"
      ],
      "include_dirs": [
        "<!@(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node scripts/libtorch-config.mjs include)"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "_GLIBCXX_USE_CXX11_ABI=<!(node scripts/libtorch-config.mjs abi)",
        "<!@(node scripts/libtorch-config.mjs defines)"
      ],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-frtti", "-fexceptions", "-O2", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
      "ldflags": ["<!@(node scripts/libtorch-config.mjs ldflags)"],
      "libraries": ["<!@(node scripts/libtorch-config.mjs libs)"]
    }
  ]
}
