#include "core/ggml_type.h"

#include "core/check.h"

namespace parallama {

TypeTraits type_traits(uint32_t id) {
  switch (static_cast<GgmlType>(id)) {
    case GgmlType::F32: return {"F32", 1, 4, true};
    case GgmlType::F16: return {"F16", 1, 2, true};
    case GgmlType::BF16: return {"BF16", 1, 2, true};
    case GgmlType::Q4_0: return {"Q4_0", 32, 18, true};
    case GgmlType::Q4_1: return {"Q4_1", 32, 20, true};
    case GgmlType::Q5_0: return {"Q5_0", 32, 22, false};
    case GgmlType::Q5_1: return {"Q5_1", 32, 24, false};
    case GgmlType::Q8_0: return {"Q8_0", 32, 34, true};
    case GgmlType::Q8_1: return {"Q8_1", 32, 36, false};
    case GgmlType::Q2_K: return {"Q2_K", 256, 84, false};
    case GgmlType::Q3_K: return {"Q3_K", 256, 110, false};
    case GgmlType::Q4_K: return {"Q4_K", 256, 144, true};
    case GgmlType::Q5_K: return {"Q5_K", 256, 176, true};
    case GgmlType::Q6_K: return {"Q6_K", 256, 210, true};
    case GgmlType::Q8_K: return {"Q8_K", 256, 292, false};  // activation-only type
  }
  return {nullptr, 0, 0, false};
}

std::string type_name(uint32_t id) {
  TypeTraits t = type_traits(id);
  if (t.name) return t.name;
  return "unknown(" + std::to_string(id) + ")";
}

size_t row_size(GgmlType t, int64_t n) {
  TypeTraits tr = type_traits(t);
  PL_CHECK(tr.name != nullptr);
  PL_CHECK_MSG(n % tr.block_size == 0, "row of " << n << " elements is not a multiple of "
                                                  << tr.block_size << " for " << tr.name);
  return static_cast<size_t>(n / tr.block_size) * static_cast<size_t>(tr.type_size);
}

}  // namespace parallama
