#include "serve/step_plan.h"

#include <cstring>
#include <type_traits>

#include "core/check.h"

namespace parallama {

namespace {

constexpr uint32_t kMagic = 0x504c414e;  // "PLAN"

class Writer {
 public:
  template <typename T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    buf.insert(buf.end(), p, p + sizeof(T));
  }
  template <typename T>
  void put_vec(const std::vector<T>& v) {
    put(static_cast<uint32_t>(v.size()));
    const auto* p = reinterpret_cast<const uint8_t*>(v.data());
    buf.insert(buf.end(), p, p + v.size() * sizeof(T));
  }
  std::vector<uint8_t> buf;
};

class Reader {
 public:
  Reader(const uint8_t* d, size_t n) : d_(d), n_(n) {}
  template <typename T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, d_ + off_, sizeof(T));
    off_ += sizeof(T);
    return v;
  }
  template <typename T>
  std::vector<T> get_vec() {
    const uint32_t n = get<uint32_t>();
    need(static_cast<size_t>(n) * sizeof(T));
    std::vector<T> v(n);
    if (n) std::memcpy(v.data(), d_ + off_, n * sizeof(T));
    off_ += n * sizeof(T);
    return v;
  }
  bool done() const { return off_ == n_; }

 private:
  void need(size_t k) const {
    if (n_ - off_ < k) PL_THROW("step plan truncated: need " << k << " bytes at offset " << off_ << " of " << n_);
  }
  const uint8_t* d_;
  size_t n_, off_ = 0;
};

}  // namespace

std::vector<uint8_t> StepPlan::serialize() const {
  Writer w;
  w.put(kMagic);
  w.put(step);
  w.put(static_cast<uint8_t>(uint8_t(shutdown) | uint8_t(heartbeat) << 1));
  w.put(static_cast<uint32_t>(added.size()));
  for (const auto& a : added) {
    w.put(a.id);
    w.put(a.sampling);
    w.put(a.logprobs);
    w.put_vec(a.prompt);
  }
  w.put_vec(released);
  w.put(static_cast<uint32_t>(items.size()));
  for (const auto& it : items) {
    w.put(it.id);
    w.put(it.n_past);
    w.put(it.kept_blocks);
    w.put(static_cast<uint8_t>(it.want_logits));
    w.put_vec(it.new_blocks);
    w.put_vec(it.tokens);
  }
  return std::move(w.buf);
}

StepPlan StepPlan::deserialize(const uint8_t* data, size_t size) {
  Reader r(data, size);
  if (r.get<uint32_t>() != kMagic) PL_THROW("step plan: bad magic");
  StepPlan p;
  p.step = r.get<uint64_t>();
  const uint8_t flags = r.get<uint8_t>();
  if (flags > 3) PL_THROW("step plan: bad flags " << int(flags));
  p.shutdown = flags & 1;
  p.heartbeat = (flags & 2) != 0;
  const uint32_t n_added = r.get<uint32_t>();
  for (uint32_t i = 0; i < n_added; ++i) {
    PlanNewSeq a;
    a.id = r.get<uint64_t>();
    a.sampling = r.get<SamplingParams>();
    a.logprobs = r.get<int32_t>();
    if (a.logprobs < -1 || a.logprobs > kMaxTopLogprobs) PL_THROW("step plan: bad logprobs " << a.logprobs);
    a.prompt = r.get_vec<int32_t>();
    p.added.push_back(std::move(a));
  }
  p.released = r.get_vec<uint64_t>();
  const uint32_t n_items = r.get<uint32_t>();
  for (uint32_t i = 0; i < n_items; ++i) {
    PlanItem it;
    it.id = r.get<uint64_t>();
    it.n_past = r.get<int32_t>();
    it.kept_blocks = r.get<int32_t>();
    it.want_logits = r.get<uint8_t>() != 0;
    it.new_blocks = r.get_vec<int32_t>();
    it.tokens = r.get_vec<int32_t>();
    if (it.n_past < 0 || it.kept_blocks < 0 || it.tokens.empty())
      PL_THROW("step plan: item " << i << " is malformed");
    p.items.push_back(std::move(it));
  }
  if (!r.done()) PL_THROW("step plan: trailing bytes");
  return p;
}

}  // namespace parallama
