#include "plan/catalog.h"

#include <cmath>
#include <fstream>
#include <set>

#include "core/check.h"

namespace parallama::plan {

namespace {

using nlohmann::json;

json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) PL_THROW(path << ": cannot open the catalogue file");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    PL_THROW(path << ": not valid JSON: " << e.what());
  }
}

// Field readers that name the entry and the field in their errors.
class Entry {
 public:
  Entry(const json& j, std::string where) : j_(j), where_(std::move(where)) {
    if (!j_.is_object()) PL_THROW(where_ << ": an entry must be a JSON object");
  }
  std::string str(const char* key, bool required = true) const {
    const auto it = j_.find(key);
    if (it == j_.end()) {
      if (required) PL_THROW(where_ << ": field '" << key << "' is missing");
      return "";
    }
    if (!it->is_string()) PL_THROW(where_ << ": field '" << key << "' must be a string");
    return it->get<std::string>();
  }
  double positive(const char* key) const {
    const auto it = j_.find(key);
    if (it == j_.end()) PL_THROW(where_ << ": field '" << key << "' is missing");
    if (!it->is_number()) PL_THROW(where_ << ": field '" << key << "' must be a number");
    const double v = it->get<double>();
    if (!(v > 0) || !std::isfinite(v)) PL_THROW(where_ << ": field '" << key << "' must be positive, got " << v);
    return v;
  }
  int64_t count(const char* key) const {
    const auto it = j_.find(key);
    if (it == j_.end()) PL_THROW(where_ << ": field '" << key << "' is missing");
    if (!it->is_number_integer()) PL_THROW(where_ << ": field '" << key << "' must be an integer");
    const int64_t v = it->get<int64_t>();
    if (v <= 0) PL_THROW(where_ << ": field '" << key << "' must be positive, got " << v);
    return v;
  }
  bool flag(const char* key) const {
    const auto it = j_.find(key);
    if (it == j_.end()) PL_THROW(where_ << ": field '" << key << "' is missing");
    if (!it->is_boolean()) PL_THROW(where_ << ": field '" << key << "' must be true or false");
    return it->get<bool>();
  }
  // Every figure must say where it comes from.
  std::string source(const char* key = "source") const {
    std::string s = str(key);
    if (s.find_first_not_of(" \t") == std::string::npos) PL_THROW(where_ << ": field '" << key << "' is empty");
    return s;
  }

 private:
  const json& j_;
  std::string where_;
};

const json& entries(const json& doc, const char* key, const std::string& origin) {
  if (!doc.is_object() || !doc.contains(key) || !doc[key].is_array())
    PL_THROW(origin << ": expected an object with an array '" << key << "'");
  if (doc[key].empty()) PL_THROW(origin << ": '" << key << "' is empty");
  return doc[key];
}

std::string where_of(const std::string& origin, const char* key, size_t i, const json& e) {
  std::string w = origin + ": " + key + "[" + std::to_string(i) + "]";
  if (e.is_object() && e.contains("name") && e["name"].is_string()) w += " '" + e["name"].get<std::string>() + "'";
  return w;
}

template <class T>
void check_unique(const std::vector<T>& v, const std::string& origin) {
  std::set<std::string> seen;
  for (const T& x : v) {
    if (x.name.empty()) PL_THROW(origin << ": an entry has an empty name");
    if (!seen.insert(x.name).second) PL_THROW(origin << ": name '" << x.name << "' appears twice");
  }
}

template <class T>
const T& find_named(const std::vector<T>& v, std::string_view name, const char* what) {
  for (const T& x : v)
    if (x.name == name) return x;
  std::string known;
  for (const T& x : v) known += (known.empty() ? "" : ", ") + x.name;
  PL_THROW("unknown " << what << " '" << name << "' (known: " << known << ")");
}

}  // namespace

Catalog Catalog::from_json(const json& acc, const json& links, const json& models, const std::string& origin) {
  Catalog c;
  const std::string oa = origin + " accelerators", ol = origin + " links", om = origin + " models";
  const json& ja = entries(acc, "accelerators", oa);
  for (size_t i = 0; i < ja.size(); ++i) {
    const Entry e(ja[i], where_of(oa, "accelerators", i, ja[i]));
    AcceleratorSpec a;
    a.name = e.str("name");
    a.description = e.str("description", false);
    a.mem_bw_GBps = e.positive("mem_bw_GBps");
    a.bf16_tflops = e.positive("bf16_tflops");
    a.memory_GiB = e.positive("memory_GiB");
    a.source = e.source();
    c.accelerators_.push_back(std::move(a));
  }
  const json& jl = entries(links, "links", ol);
  for (size_t i = 0; i < jl.size(); ++i) {
    const Entry e(jl[i], where_of(ol, "links", i, jl[i]));
    LinkSpec l;
    l.name = e.str("name");
    l.description = e.str("description", false);
    l.bw_GBps = e.positive("bw_GBps");
    l.latency_us = e.positive("latency_us");
    l.source = e.source();
    l.latency_source = e.source("latency_source");
    c.links_.push_back(std::move(l));
  }
  const json& jm = entries(models, "models", om);
  for (size_t i = 0; i < jm.size(); ++i) {
    const std::string where = where_of(om, "models", i, jm[i]);
    const Entry e(jm[i], where);
    ModelSpec m;
    m.name = e.str("name");
    m.hf_repo = e.str("hf_repo", false);
    m.n_layers = e.count("n_layers");
    m.n_embd = e.count("n_embd");
    m.n_heads = e.count("n_heads");
    m.n_kv_heads = e.count("n_kv_heads");
    m.head_dim = e.count("head_dim");
    m.n_ff = e.count("n_ff");
    m.n_vocab = e.count("n_vocab");
    m.tied = e.flag("tied");
    m.n_ctx_train = e.count("n_ctx_train");
    m.source = e.source();
    if (m.n_heads % m.n_kv_heads != 0)
      PL_THROW(where << ": n_heads " << m.n_heads << " is not a multiple of n_kv_heads " << m.n_kv_heads);
    c.models_.push_back(std::move(m));
  }
  check_unique(c.accelerators_, oa);
  check_unique(c.links_, ol);
  check_unique(c.models_, om);
  return c;
}

Catalog Catalog::load(const std::string& dir) {
  // One after the other, so that the first missing file is the one named.
  const json a = read_json(dir + "/accelerators.json");
  const json l = read_json(dir + "/links.json");
  const json m = read_json(dir + "/models.json");
  return from_json(a, l, m, dir);
}

const AcceleratorSpec& Catalog::accelerator(std::string_view name) const {
  return find_named(accelerators_, name, "accelerator");
}
const LinkSpec& Catalog::link(std::string_view name) const { return find_named(links_, name, "link"); }
const ModelSpec& Catalog::model(std::string_view name) const { return find_named(models_, name, "model"); }

}  // namespace parallama::plan
