// Moving bytes between JS and tensors, and reading tensor metadata.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>

#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "tensor_handle.h"

namespace rmoe {

namespace {

std::vector<int64_t> shapeFrom(Napi::Env env, const Napi::Value& v) {
  if (!v.IsArray()) throw typeError(env, "shape must be an array of non-negative integers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> shape;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : -1.0;
    if (d < 0 || static_cast<double>(static_cast<int64_t>(d)) != d) {
      throw typeError(env, "shape must be an array of non-negative integers, got element " +
                               std::to_string(i) + " = " + e.ToString().Utf8Value());
    }
    shape.push_back(static_cast<int64_t>(d));
  }
  return shape;
}

// fromBuffer(typedArray, shape, dtypeCode, device?) copies the bytes into a new tensor.
Napi::Value FromBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    if (!info[0].IsTypedArray()) throw typeError(env, "fromBuffer: expected a typed array");
    Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
    std::vector<int64_t> shape = shapeFrom(env, info[1]);
    auto dtype = static_cast<at::ScalarType>(info[2].As<Napi::Number>().Int32Value());
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
    const size_t want = t.numel() * t.element_size();
    if (ta.ByteLength() != want) {
      throw typeError(env, "fromBuffer: " + std::to_string(ta.ByteLength()) + " bytes of data for shape " +
                               c10::str(t.sizes()) + " of " + std::string(c10::toString(dtype)) +
                               " which needs " + std::to_string(want));
    }
    if (want != 0) {
      const uint8_t* src = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
      std::memcpy(t.data_ptr(), src, want);
    }
    if (info.Length() > 3 && info[3].IsString()) {
      std::string dev = info[3].As<Napi::String>().Utf8Value();
      if (dev != "cpu") t = t.to(c10::Device(dev));
    }
    return wrapTensor(env, std::move(t));
  });
}

// toBuffer(h) -> ArrayBuffer with the tensor's values in row-major order.
Napi::Value ToBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    at::Tensor t = unwrapTensor(env, info[0], "toBuffer").detach().to(at::kCPU).contiguous();
    const size_t n = t.numel() * t.element_size();
    Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, n);
    if (n != 0) std::memcpy(buf.Data(), t.data_ptr(), n);
    return buf;
  });
}

Napi::Value Shape(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    const at::Tensor& t = unwrapTensor(env, info[0], "shape");
    auto sizes = t.sizes();
    Napi::Array a = Napi::Array::New(env, sizes.size());
    for (size_t i = 0; i < sizes.size(); ++i) {
      a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(sizes[i])));
    }
    return a;
  });
}

Napi::Value Meta(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    const at::Tensor& t = unwrapTensor(env, info[0], "meta");
    Napi::Object o = Napi::Object::New(env);
    o.Set("dtype", Napi::Number::New(env, static_cast<int>(t.scalar_type())));
    o.Set("device", Napi::String::New(env, t.device().str()));
    o.Set("requiresGrad", Napi::Boolean::New(env, t.requires_grad()));
    o.Set("isLeaf", Napi::Boolean::New(env, t.is_leaf()));
    o.Set("isContiguous", Napi::Boolean::New(env, t.is_contiguous()));
    auto fn = t.grad_fn();
    o.Set("gradFn", fn ? Napi::Value(Napi::String::New(env, fn->name())) : env.Null());
    return o;
  });
}

// Strides and memory format: apart from meta(), which requiresGrad and friends read often.
Napi::Value Layout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    const at::Tensor& t = unwrapTensor(env, info[0], "layout");
    Napi::Object o = Napi::Object::New(env);
    Napi::Array strides = Napi::Array::New(env, t.dim());
    for (int64_t i = 0; i < t.dim(); i++) {
      strides.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(t.stride(i))));
    }
    o.Set("strides", strides);
    o.Set("isContiguous", Napi::Boolean::New(env, t.is_contiguous()));
    o.Set("isChannelsLast", Napi::Boolean::New(env, t.dim() == 4 && t.is_contiguous(at::MemoryFormat::ChannelsLast)));
    return o;
  });
}

Napi::Value Dtype(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    return Napi::Number::New(env, static_cast<int>(unwrapTensor(env, info[0], "dtype").scalar_type()));
  });
}

// Scalar read without going through a boxed op: used for loss.item() in hot loops.
Napi::Value Item(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    const at::Tensor& t = unwrapTensor(env, info[0], "item");
    if (t.numel() != 1) {
      throw Napi::Error::New(env, "item: tensor with " + std::to_string(t.numel()) +
                                      " elements cannot be converted to a number; it needs exactly one");
    }
    c10::Scalar s = t.item();
    if (s.isBoolean()) return Napi::Boolean::New(env, s.toBool());
    return Napi::Number::New(env, s.toDouble());
  });
}

}  // namespace

void initTensorData(Napi::Env env, Napi::Object exports) {
  exports.Set("fromBuffer", Napi::Function::New(env, FromBuffer));
  exports.Set("toBuffer", Napi::Function::New(env, ToBuffer));
  exports.Set("shape", Napi::Function::New(env, Shape));
  exports.Set("meta", Napi::Function::New(env, Meta));
  exports.Set("layout", Napi::Function::New(env, Layout));
  exports.Set("dtype", Napi::Function::New(env, Dtype));
  exports.Set("item", Napi::Function::New(env, Item));
}

}  // namespace rmoe
