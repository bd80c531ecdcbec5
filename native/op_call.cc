// The whole ATen op surface through one entry point. Instead of generating one N-API
// function per op (tch-rs style), we look ops up in the c10 dispatcher by schema name
// and call them boxed: the schema itself drives argument conversion, defaults and
// kwargs. The same code therefore works for every op of LibTorch 1.13 and 2.x.
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <c10/core/Device.h>

#include <cmath>
#include <string>
#include <vector>

#include "common.h"
#include "generator.h"
#include "tensor_handle.h"

namespace rmoe {

namespace {

struct OpEntry {
  c10::OperatorHandle handle;
  std::string display;  // "aten::add.Tensor", used in error messages
  bool returns_input_alias;
};

std::vector<OpEntry>& registry() {
  static std::vector<OpEntry> ops;
  return ops;
}

std::string describe(const Napi::Value& v) {
  if (v.IsNull()) return "null";
  if (v.IsUndefined()) return "undefined";
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  if (v.IsNumber()) {
    return v.ToString().Utf8Value();
  }
  if (v.IsString()) return "\"" + v.As<Napi::String>().Utf8Value() + "\"";
  if (v.IsArray()) return "an array";
  if (isGeneratorHandle(v)) return "a generator";
  if (v.IsExternal()) return "a tensor";
  return "an object";
}

struct ArgContext {
  Napi::Env env;
  const OpEntry& op;
  const c10::Argument& arg;
  [[noreturn]] void fail(const std::string& expected, const Napi::Value& got) const {
    throw typeError(env, op.display + ": argument '" + arg.name() + "' must be " + expected +
                             ", got " + describe(got));
  }
};

int64_t toInt(const ArgContext& cx, const Napi::Value& v) {
  if (!v.IsNumber()) cx.fail("an integer", v);
  double d = v.As<Napi::Number>().DoubleValue();
  // 2^63 itself is not representable: the cast would wrap to INT64_MIN.
  if (!std::isfinite(d) || std::floor(d) != d) cx.fail("an integer", v);
  if (d >= 9223372036854775808.0 || d < -9223372036854775808.0) cx.fail("an integer in the int64 range", v);
  return static_cast<int64_t>(d);
}

double toDouble(const ArgContext& cx, const Napi::Value& v) {
  if (!v.IsNumber()) cx.fail("a number", v);
  return v.As<Napi::Number>().DoubleValue();
}

bool toBool(const ArgContext& cx, const Napi::Value& v) {
  if (!v.IsBoolean()) cx.fail("a boolean", v);
  return v.As<Napi::Boolean>().Value();
}

c10::Scalar toScalar(const ArgContext& cx, const Napi::Value& v) {
  if (v.IsBoolean()) return c10::Scalar(v.As<Napi::Boolean>().Value());
  if (!v.IsNumber()) cx.fail("a number", v);
  double d = v.As<Napi::Number>().DoubleValue();
  // Integral JS numbers become integer scalars so that integer tensors stay integer.
  if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) <= 9007199254740992.0) {
    return c10::Scalar(static_cast<int64_t>(d));
  }
  return c10::Scalar(d);
}

at::Tensor toTensor(const ArgContext& cx, const Napi::Value& v) {
  if (isTensorHandle(cx.env, v)) {
    return unwrapTensor(cx.env, v, (cx.op.display + ": argument '" + cx.arg.name() + "'").c_str());
  }
  if (v.IsNumber() || v.IsBoolean()) {
    // Like Python: a plain number where a tensor is expected is a 0-d "wrapped
    // number", which type promotion treats as a scalar (x.where(m, 0) stays float32).
    at::Tensor t = c10::scalar_to_tensor(toScalar(cx, v));
    t.unsafeGetTensorImpl()->set_wrapped_number(true);
    return t;
  }
  cx.fail("a tensor", v);
}

c10::IValue convert(const ArgContext& cx, const c10::TypePtr& type, const Napi::Value& v);

c10::IValue convertList(const ArgContext& cx, const c10::TypePtr& elem, const Napi::Value& v) {
  const auto n = cx.arg.N();
  switch (elem->kind()) {
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType: {
      std::vector<int64_t> out;
      if (v.IsNumber()) {
        // int[2] stride=1 style broadcasting, as in Python.
        out.assign(n ? static_cast<size_t>(*n) : 1, toInt(cx, v));
      } else if (v.IsArray()) {
        Napi::Array a = v.As<Napi::Array>();
        for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(toInt(cx, a.Get(i)));
      } else {
        cx.fail("an integer or an array of integers", v);
      }
      return c10::IValue(out);
    }
    case c10::TypeKind::FloatType: {
      std::vector<double> out;
      if (v.IsNumber()) {
        out.assign(n ? static_cast<size_t>(*n) : 1, toDouble(cx, v));
      } else if (v.IsArray()) {
        Napi::Array a = v.As<Napi::Array>();
        for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(toDouble(cx, a.Get(i)));
      } else {
        cx.fail("a number or an array of numbers", v);
      }
      return c10::IValue(out);
    }
    case c10::TypeKind::BoolType: {
      if (!v.IsArray()) cx.fail("an array of booleans", v);
      Napi::Array a = v.As<Napi::Array>();
      c10::List<bool> out;
      for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(toBool(cx, a.Get(i)));
      return c10::IValue(out);
    }
    case c10::TypeKind::TensorType: {
      if (!v.IsArray()) cx.fail("an array of tensors", v);
      Napi::Array a = v.As<Napi::Array>();
      c10::List<at::Tensor> out;
      for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(toTensor(cx, a.Get(i)));
      return c10::IValue(out);
    }
    case c10::TypeKind::OptionalType: {
      if (!v.IsArray()) cx.fail("an array of tensors or nulls", v);
      Napi::Array a = v.As<Napi::Array>();
      c10::List<c10::optional<at::Tensor>> out;
      for (uint32_t i = 0; i < a.Length(); ++i) {
        Napi::Value e = a.Get(i);
        if (e.IsNull() || e.IsUndefined()) {
          out.push_back(c10::nullopt);
        } else {
          out.push_back(toTensor(cx, e));
        }
      }
      return c10::IValue(out);
    }
    default:
      throw typeError(cx.env, cx.op.display + ": argument '" + cx.arg.name() +
                                  "' has a list type the binding does not support: " +
                                  cx.arg.type()->str());
  }
}

c10::IValue convert(const ArgContext& cx, const c10::TypePtr& type, const Napi::Value& v) {
  switch (type->kind()) {
    case c10::TypeKind::TensorType:
      return toTensor(cx, v);
    case c10::TypeKind::OptionalType:
      if (v.IsNull() || v.IsUndefined()) return c10::IValue();
      return convert(cx, type->expectRef<c10::OptionalType>().getElementType(), v);
    case c10::TypeKind::ListType:
      return convertList(cx, type->expectRef<c10::ListType>().getElementType(), v);
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType:
    case c10::TypeKind::ScalarTypeType:
    case c10::TypeKind::LayoutType:
    case c10::TypeKind::MemoryFormatType:
      return toInt(cx, v);
    case c10::TypeKind::FloatType:
      return toDouble(cx, v);
    case c10::TypeKind::BoolType:
      return toBool(cx, v);
    case c10::TypeKind::NumberType:
      return toScalar(cx, v);
    case c10::TypeKind::StringType:
      if (!v.IsString()) cx.fail("a string", v);
      return c10::IValue(v.As<Napi::String>().Utf8Value());
    case c10::TypeKind::GeneratorType:
      // `Generator? generator` of the random ops; null/undefined (the default generator)
      // is handled by the OptionalType case above.
      if (!isGeneratorHandle(v)) cx.fail("a Generator or null", v);
      return c10::IValue(unwrapGenerator(cx.env, v, cx.op.display + ": argument '" + cx.arg.name() + "'"));
    case c10::TypeKind::DeviceObjType:
      if (!v.IsString()) cx.fail("a device string such as \"cpu\" or \"cuda:0\"", v);
      return c10::IValue(c10::Device(v.As<Napi::String>().Utf8Value()));
    default:
      throw typeError(cx.env, cx.op.display + ": argument '" + cx.arg.name() +
                                  "' has a type the binding does not support: " + type->str());
  }
}

Napi::Value toJs(Napi::Env env, c10::IValue v) {
  if (v.isTensor()) {
    at::Tensor t = std::move(v).toTensor();
    if (!t.defined()) return env.Null();
    return wrapTensor(env, std::move(t));
  }
  if (v.isNone()) return env.Null();
  if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
  if (v.isInt()) return Napi::Number::New(env, static_cast<double>(v.toInt()));
  if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
  if (v.isTensorList()) {
    auto list = v.toTensorList();
    Napi::Array a = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); ++i) a.Set(static_cast<uint32_t>(i), toJs(env, list.get(i)));
    return a;
  }
  if (v.isTuple()) {
    const auto& elems = v.toTupleRef().elements();
    Napi::Array a = Napi::Array::New(env, elems.size());
    for (size_t i = 0; i < elems.size(); ++i) a.Set(static_cast<uint32_t>(i), toJs(env, elems[i]));
    return a;
  }
  if (v.isIntList()) {
    auto list = v.toIntVector();
    Napi::Array a = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); ++i) {
      a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(list[i])));
    }
    return a;
  }
  if (v.isList()) {
    auto list = v.toList();
    Napi::Array a = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); ++i) a.Set(static_cast<uint32_t>(i), toJs(env, list.get(i)));
    return a;
  }
  throw Napi::Error::New(env, "op returned a value the binding cannot convert: " + v.tagKind());
}

// op(name, overload) -> { id, schema }
Napi::Value ResolveOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    if (!info[0].IsString() || !info[1].IsString()) {
      throw typeError(env, "op: expected (name, overload) strings");
    }
    std::string name = info[0].As<Napi::String>().Utf8Value();
    std::string overload = info[1].As<Napi::String>().Utf8Value();
    auto handle = c10::Dispatcher::singleton().findSchema({name, overload});
    if (!handle.has_value()) {
      throw Napi::Error::New(env, "op: LibTorch " TORCH_VERSION " has no operator " + name +
                                      (overload.empty() ? "" : "." + overload));
    }
    const auto& schema = handle->schema();
    const auto& rets = schema.returns();
    bool alias = rets.size() == 1 && rets[0].alias_info() != nullptr && rets[0].alias_info()->isWrite();
    registry().push_back(OpEntry{*handle, name + (overload.empty() ? "" : "." + overload), alias});
    Napi::Object out = Napi::Object::New(env);
    out.Set("id", Napi::Number::New(env, static_cast<double>(registry().size() - 1)));
    std::ostringstream ss;
    ss << schema;
    out.Set("schema", Napi::String::New(env, ss.str()));
    return out;
  });
}

// call(id, positional[], named?) -> result
Napi::Value CallOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(info, [&]() -> Napi::Value {
    if (!info[0].IsNumber()) throw typeError(env, "call: expected an op id");
    uint32_t id = info[0].As<Napi::Number>().Uint32Value();
    if (id >= registry().size()) throw typeError(env, "call: unknown op id");
    const OpEntry& op = registry()[id];
    const auto& params = op.handle.schema().arguments();
    Napi::Array args = info[1].IsArray() ? info[1].As<Napi::Array>() : Napi::Array::New(env, 0);
    const bool has_named = info.Length() > 2 && info[2].IsObject();
    Napi::Object named = has_named ? info[2].As<Napi::Object>() : Napi::Object();
    if (args.Length() > params.size()) {
      throw typeError(env, op.display + ": takes at most " + std::to_string(params.size()) +
                               " arguments, got " + std::to_string(args.Length()));
    }
    if (has_named) {
      Napi::Array keys = named.GetPropertyNames();
      for (uint32_t k = 0; k < keys.Length(); ++k) {
        std::string key = keys.Get(k).As<Napi::String>().Utf8Value();
        bool found = false;
        for (const auto& p : params) found = found || p.name() == key;
        if (!found) throw typeError(env, op.display + ": unknown argument '" + key + "'");
      }
    }

    torch::jit::Stack stack;
    stack.reserve(params.size());
    for (size_t i = 0; i < params.size(); ++i) {
      const c10::Argument& p = params[i];
      Napi::Value v = i < args.Length() ? args.Get(static_cast<uint32_t>(i)) : env.Undefined();
      if (has_named && named.Has(p.name())) v = named.Get(p.name());
      ArgContext cx{env, op, p};
      if (v.IsUndefined()) {
        if (p.default_value().has_value()) {
          stack.push_back(*p.default_value());
        } else if (p.type()->kind() == c10::TypeKind::OptionalType) {
          stack.emplace_back();
        } else {
          throw typeError(env, op.display + ": missing argument '" + p.name() + "'");
        }
        continue;
      }
      stack.push_back(convert(cx, p.type(), v));
    }

    op.handle.callBoxed(stack);

    if (op.returns_input_alias) return env.Undefined();
    if (stack.size() == 1) return toJs(env, std::move(stack[0]));
    Napi::Array out = Napi::Array::New(env, stack.size());
    for (size_t i = 0; i < stack.size(); ++i) out.Set(static_cast<uint32_t>(i), toJs(env, std::move(stack[i])));
    return out;
  });
}

}  // namespace

void initOpCall(Napi::Env env, Napi::Object exports) {
  exports.Set("op", Napi::Function::New(env, ResolveOp));
  exports.Set("call", Napi::Function::New(env, CallOp));
}

}  // namespace rmoe
