#include "model/weight_arena.h"

#include "core/check.h"

namespace parallama {

uint8_t* WeightArena::take(size_t n) {
  const size_t need = footprint(n);
  PL_CHECK_MSG(region_.data() && need <= capacity() - used_,
               "weight arena: " << need << " bytes requested, " << capacity() - used_ << " left");
  uint8_t* p = region_.data() + used_;
  used_ += need;
  return p;
}

}  // namespace parallama
