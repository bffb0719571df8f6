// parallama plan: for a model, a cluster (catalogue GPUs and links, or a
// hardware profile of CPU hosts) and a workload, predicts every TP x PP layout
// that uses all the devices: whether it fits in memory, and its latency and
// throughput under load at the given rate (src/plan: the cost of one step per
// layout, driven through a simulation of our own scheduler). Recommends one.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/child_process.h"
#include "cli/commands.h"
#include "cli/paths.h"
#include "bench/sharegpt.h"
#include "bench/sweep.h"
#include "gguf/gguf_file.h"
#include "tokenizer/tokenizer.h"
#include "core/check.h"
#include "plan/catalog.h"
#include "plan/cost_model.h"
#include "plan/model_shape.h"
#include "plan/simulator.h"

namespace parallama::cli {

namespace {

struct PlanArgs {
  std::string model_file, model_name, dtype = "fp16";
  std::string gpu, intra = "nvlink3", inter = "ib-hdr", profile;
  int gpus_per_node = 0, nodes = 1, hosts = 0;
  double rate = 1, burstiness = 1, range_ratio = 0;
  int input_len = 512, output_len = 128, num_prompts = 1000;
  uint64_t seed = 0;
  int max_num_seqs = 256, max_num_batched_tokens = 2048;
  double slo_ttft_ms = 0, slo_tpot_ms = 0, slo_e2el_ms = 0;  // on the medians (TTFT, TPOT) and the p90 (E2EL)
  std::string catalog, plot;
  bool json = false, list = false;
  // Given layouts (bench sweep's syntax) at given rates instead of every tp x pp at --rate.
  std::string layouts, rates;
  std::string dataset_path, tokenizer;  // ShareGPT lengths instead of --input-len/--output-len
  std::vector<std::pair<int32_t, int32_t>> sharegpt;  // (prompt, output) tokens, when dataset_path is given
  std::string efficiency;  // with --gpu: efficiencies (JSON) instead of the catalogue's efficiency-gpu.json
  bool emulated_hosts = false;  // with --profile: the hosts share this machine's cores
};

// A profile written by `plan calibrate`: the hardware, and beside it the
// measured links by name and the machine's cores.
struct Profile {
  plan::Hardware hw;
  std::map<std::string, plan::Link> links;
  int cores = 0;
  int threads_per_device = 1;
};

Profile read_profile(const std::string& path) {
  std::ifstream in(path);
  if (!in) PL_THROW("--profile: cannot read '" << path << "'");
  Profile p;
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    if (j.contains("links"))
      for (const auto& [name, l] : j["links"].items()) p.links[name] = l.get<plan::Link>();
    p.cores = j.value("cores", 0);
    p.threads_per_device = j.value("threads_per_device", 1);
    for (const char* k : {"links", "cores", "threads_per_device", "calibration", "serving_fit"}) j.erase(k);
    p.hw = j.get<plan::Hardware>();
  } catch (const nlohmann::json::exception& e) {
    PL_THROW("--profile '" << path << "': " << e.what());
  }
  return p;
}

const plan::Link& profile_link(const Profile& p, const std::string& name, const char* what) {
  const auto it = p.links.find(name);
  if (it != p.links.end()) return it->second;
  std::string known;
  for (const auto& [k, v] : p.links) known += (known.empty() ? "" : ", ") + k;
  PL_THROW(what << ": the profile has no link '" << name << "' (it has: " << (known.empty() ? "none" : known) << ")");
}

// One layout to predict: its ranks, the hardware they run on, and how they share cores.
struct Case {
  std::string label, spec;
  plan::Layout layout;
  plan::Hardware hw;
  double cores = 0;  // > 0: all devices share this many cores (SimConfig::cores)
  int devices_per_stage = 1;
};

// A bench sweep layout on hosts of a calibrated profile: a rank with t > 1
// threads runs t thread shards (TP over the "threads" link, as `serve -t`
// does), MPI ranks on one host talk over "shm", emulated hosts over "tcp" (or
// "tcp-RATE" for a shaped link).
Case case_of(const bench::SweepLayout& l, const Profile& p, bool emulated) {
  Case c;
  c.label = l.label();
  c.spec = l.spec;
  const int threads = std::max(1, l.threads) / std::max(1, p.threads_per_device);
  if (threads > 1 && l.tp > 1)
    PL_THROW("layout " << l.spec << ": thread shards inside TP ranks are not modelled (give threads with tp=1)");
  c.layout.tp = threads > 1 ? threads : l.tp;
  c.layout.pp = l.pp;
  c.layout.map_by_node = l.map_by == "node";
  c.hw = p.hw;
  c.hw.nodes = std::max(1, l.hosts);
  c.hw.devices_per_node = c.layout.tp * c.layout.pp / c.hw.nodes;
  c.hw.intra = profile_link(p, threads > 1 ? "threads" : "shm", "intra-host link");
  if (l.hosts > 1) c.hw.inter = profile_link(p, l.link.empty() ? "tcp" : "tcp-" + l.link, "link between hosts");
  c.devices_per_stage = c.layout.tp;
  if (emulated || l.hosts <= 1) c.cores = p.cores > 0 ? static_cast<double>(p.cores) / p.threads_per_device : 0;
  return c;
}

plan::LengthRange range(int len, double r) {
  return {std::max(1, static_cast<int>(std::floor(len * (1 - r)))), std::max(1, static_cast<int>(std::floor(len * (1 + r))))};
}

// Every (tp, pp) with tp x pp = n.
std::vector<std::pair<int, int>> layouts_of(int n) {
  std::vector<std::pair<int, int>> out;
  for (int tp = n; tp >= 1; --tp)
    if (n % tp == 0) out.emplace_back(tp, n / tp);
  return out;
}

struct Predictor {
  plan::ModelShape shape;
  plan::Hardware hw;
  const PlanArgs& a;

  Case whole(int tp, int pp) const {
    Case c;
    c.layout.tp = tp;
    c.layout.pp = pp;
    c.hw = hw;
    return c;
  }

  // One layout at one rate: the per-layout object of --json.
  nlohmann::json predict(int tp, int pp, double rate) const { return predict(whole(tp, pp), rate, a.seed); }
  nlohmann::json predict(const Case& k, double rate, uint64_t seed) const {
    const int tp = k.layout.tp, pp = k.layout.pp;
    nlohmann::json row = {{"tp", tp}, {"pp", pp}, {"fits", false}, {"sustains_rate", false}, {"rate", rate}};
    if (!k.label.empty()) row["label"] = k.label, row["layout"] = k.spec;
    std::unique_ptr<plan::CostModel> cm;
    try {
      cm = std::make_unique<plan::CostModel>(shape, k.layout, k.hw);
    } catch (const Error& e) {
      row["why_not"] = e.what();
      return row;
    }
    const plan::MemoryFit fit = cm->memory_fit(a.max_num_batched_tokens, a.max_num_seqs);
    row["weights_gib_per_rank"] = fit.weights_bytes_per_rank / 1073741824.0;
    row["kv_tokens"] = fit.kv_tokens_capacity;
    if (!fit.fits) {
      row["why_not"] = fit.why_not;
      return row;
    }
    row["fits"] = true;
    plan::SimConfig cfg;
    cfg.sched.max_num_seqs = a.max_num_seqs;
    cfg.sched.max_num_batched_tokens = a.max_num_batched_tokens;
    cfg.kv_blocks = static_cast<int32_t>(std::min<int64_t>(fit.kv_tokens_capacity / 16, 1 << 24));
    cfg.pp = pp;
    cfg.cores = k.cores;
    cfg.devices_per_stage = k.devices_per_stage;
    if (cfg.kv_blocks < 1) {
      row["fits"] = false;
      row["why_not"] = "no room left for the KV cache";
      return row;
    }
    const auto reqs = a.sharegpt.empty()
                          ? plan::make_requests(a.num_prompts, rate, a.burstiness, range(a.input_len, a.range_ratio),
                                                range(a.output_len, a.range_ratio), seed)
                          : plan::requests_with_lengths(a.sharegpt, rate, a.burstiness, seed);
    const plan::SimResult res = plan::simulate(reqs, cfg, [&](const plan::StepShape& s) { return cm->step(s); });
    const nlohmann::json sum = plan::summarize(res, {50, 90, 99});
    row["sustains_rate"] = sum["keeps_up"];
    row["pace"] = sum["pace"];
    for (const char* k : {"p50_e2el_ms", "p90_e2el_ms", "p99_e2el_ms", "median_ttft_ms", "p90_ttft_ms", "median_tpot_ms",
                          "request_throughput", "output_throughput", "completed", "failed", "stage_busy", "preemptions"})
      if (sum.contains(k)) row[k] = sum[k];
    row["output_tok_s"] = sum["output_throughput"];
    bool slo = true;
    if (a.slo_ttft_ms > 0 && sum["median_ttft_ms"].get<double>() > a.slo_ttft_ms) slo = false;
    if (a.slo_tpot_ms > 0 && sum["median_tpot_ms"].get<double>() > a.slo_tpot_ms) slo = false;
    if (a.slo_e2el_ms > 0 && sum["p90_e2el_ms"].get<double>() > a.slo_e2el_ms) slo = false;
    row["meets_slo"] = slo;
    return row;
  }
};

std::string layout_name(const nlohmann::json& r) {
  return "tp" + std::to_string(r["tp"].get<int>()) + " x pp" + std::to_string(r["pp"].get<int>());
}

// The workload in words: lengths and requests, or the ShareGPT sample.
std::string workload_text(const PlanArgs& a) {
  char b[160];
  if (a.sharegpt.empty()) {
    std::snprintf(b, sizeof(b), "%d in / %d out tokens, %d requests", a.input_len, a.output_len, a.num_prompts);
  } else {
    double in = 0, out = 0;
    for (auto [i, o] : a.sharegpt) in += i, out += o;
    const double n = static_cast<double>(a.sharegpt.size());
    std::snprintf(b, sizeof(b), "ShareGPT sample of %zu requests (mean %.0f in / %.0f out tokens)", a.sharegpt.size(),
                  in / n, out / n);
  }
  return b;
}

// A sweep-shaped JSON (FILE.json) drawn by tools/plot_sweep.py into FILE.
void draw(const nlohmann::json& sweep, const std::string& model, const PlanArgs& a, const std::string& file) {
  const std::string js = file + ".json";
  std::ofstream(js) << sweep.dump(1) << "\n";
  const std::string log = file + ".log";
  const int rc = run_logged({python_for_tools(), source_root() + "/tools/plot_sweep.py", js, file, "--title",
                             "predicted by parallama plan: " + model + ", " + workload_text(a) +
                                 "; star: highest rate kept up with"},
                            log);
  if (rc != 0) PL_THROW("--plot: tools/plot_sweep.py failed, see " << log << " (matplotlib missing? set PARALLAMA_PYTHON)");
  std::remove(log.c_str());
  std::fprintf(stderr, "plan: wrote %s (and the numbers in %s)\n", file.c_str(), js.c_str());
}

// Predicted p90 E2EL, median TTFT and TPOT against the rate, one line per
// layout that fits, drawn by tools/plot_sweep.py from a sweep-shaped JSON.
void plot(const Predictor& p, const std::vector<std::pair<int, int>>& layouts, const std::string& file) {
  nlohmann::json sweep = {{"model", p.shape.name}, {"num_prompts", p.a.num_prompts},
                          {"random_input_len", p.a.input_len}, {"random_output_len", p.a.output_len},
                          {"layouts", nlohmann::json::array()}};
  for (auto [tp, pp] : layouts) {
    nlohmann::json lay = {{"label", "tp" + std::to_string(tp) + " x pp" + std::to_string(pp)},
                          {"runs", nlohmann::json::array()}};
    double sustained = 0;
    bool ok_so_far = true;
    for (double f : {0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0}) {
      const nlohmann::json r = p.predict(tp, pp, p.a.rate * f);
      if (!r["fits"].get<bool>()) break;
      lay["runs"].push_back({{"request_rate", p.a.rate * f}, {"p90_e2el_ms", r["p90_e2el_ms"]},
                             {"median_ttft_ms", r["median_ttft_ms"]}, {"median_tpot_ms", r["median_tpot_ms"]},
                             {"keeps_up", r["sustains_rate"]}});
      ok_so_far = ok_so_far && r["sustains_rate"].get<bool>();
      if (ok_so_far) sustained = p.a.rate * f;
    }
    lay["sustained_rate"] = sustained;
    sweep["layouts"].push_back(lay);
  }
  draw(sweep, p.shape.name, p.a, file);
}

int run_layouts(const Predictor& p, const Profile& prof) {
  const PlanArgs& a = p.a;
  const std::vector<bench::SweepLayout> lays = bench::parse_layouts(a.layouts);
  const std::vector<double> rates = a.rates.empty() ? std::vector<double>{a.rate} : bench::parse_rates(a.rates);
  nlohmann::json rows = nlohmann::json::array();
  nlohmann::json sweep = {{"model", p.shape.name}, {"num_prompts", a.num_prompts}, {"random_input_len", a.input_len},
                          {"random_output_len", a.output_len}, {"layouts", nlohmann::json::array()}};
  if (!a.json)
    std::printf("%-34s %6s %5s %9s %10s %10s %10s %10s %11s\n", "layout", "rate", "fits", "keeps up", "p50 E2EL",
                "p90 E2EL", "med TTFT", "med TPOT", "out tok/s");
  for (const auto& l : lays) {
    const Case c = case_of(l, prof, a.emulated_hosts);
    nlohmann::json lay = {{"label", c.label}, {"layout", c.spec}, {"runs", nlohmann::json::array()}};
    double sustained = 0;
    bool ok_so_far = true;
    for (size_t i = 0; i < rates.size(); ++i) {
      nlohmann::json r = p.predict(c, rates[i], a.seed + 1000 * i);
      rows.push_back(r);
      if (!a.json) {
        if (!r["fits"].get<bool>())
          std::printf("%-34s %6g %5s  %s\n", c.label.c_str(), rates[i], "no", r.value("why_not", std::string()).c_str());
        else
          std::printf("%-34s %6g %5s %9s %9.2fs %9.2fs %8.0fms %8.1fms %11.1f\n", c.label.c_str(), rates[i], "yes",
                      r["sustains_rate"].get<bool>() ? "yes" : "no", r["p50_e2el_ms"].get<double>() / 1e3,
                      r["p90_e2el_ms"].get<double>() / 1e3, r["median_ttft_ms"].get<double>(),
                      r["median_tpot_ms"].get<double>(), r["output_tok_s"].get<double>());
      }
      if (!r["fits"].get<bool>()) continue;
      r["request_rate"] = rates[i];
      r["keeps_up"] = r["sustains_rate"];
      lay["runs"].push_back(r);
      ok_so_far = ok_so_far && r["sustains_rate"].get<bool>();
      if (ok_so_far) sustained = rates[i];
    }
    lay["sustained_rate"] = sustained;
    sweep["layouts"].push_back(lay);
  }
  if (a.json) std::cout << rows.dump() << std::endl;
  if (!a.plot.empty()) draw(sweep, p.shape.name, a, a.plot);
  return 0;
}

// --dataset-path: the lengths of a ShareGPT sample, counted by the model's
// tokenizer (or --tokenizer's), as bench serve picks them for the same seed.
std::vector<std::pair<int32_t, int32_t>> sharegpt_lengths(const PlanArgs& a) {
  const std::string tok_file = !a.tokenizer.empty() ? a.tokenizer : a.model_file;
  if (tok_file.empty())
    PL_THROW("--dataset-path needs a tokenizer to count tokens: -m MODEL.gguf or --tokenizer FILE.gguf");
  auto f = GgufFile::open(tok_file);
  auto tok = Tokenizer::from_gguf(*f);
  const auto pairs = bench::read_sharegpt(a.dataset_path, a.seed);
  std::vector<std::pair<int32_t, int32_t>> out;
  for (const auto& r : bench::select_sharegpt(pairs, a.num_prompts, [&tok](const std::string& s) {
         return static_cast<int64_t>(tok->encode(s, false, false).size());
       }))
    out.emplace_back(static_cast<int32_t>(std::min<int64_t>(r.prompt_len, 1 << 30)),
                     static_cast<int32_t>(std::min<int64_t>(r.output_len, 1 << 30)));
  return out;
}

int run_plan(const PlanArgs& args) {
  PlanArgs a = args;
  if (!a.dataset_path.empty()) a.sharegpt = sharegpt_lengths(a);
  const std::string dir = a.catalog.empty() ? source_root() + "/data/plan" : a.catalog;
  const plan::Catalog cat = plan::Catalog::load(dir);
  if (a.list) {
    for (const auto& x : cat.accelerators()) std::printf("gpu    %-12s %s\n", x.name.c_str(), x.description.c_str());
    for (const auto& x : cat.links()) std::printf("link   %-12s %s\n", x.name.c_str(), x.description.c_str());
    for (const auto& x : cat.models()) std::printf("model  %-12s %s\n", x.name.c_str(), x.hf_repo.c_str());
    return 0;
  }
  if (a.model_file.empty() == a.model_name.empty()) PL_THROW("give the model: -m FILE.gguf or --model-name NAME");
  if (a.rate <= 0) PL_THROW("--rate must be > 0");
  if (a.num_prompts < 1 || a.input_len < 1 || a.output_len < 1) PL_THROW("--num-prompts/--input-len/--output-len must be >= 1");
  plan::ModelShape shape =
      a.model_file.empty() ? plan::shape_from_spec(cat.model(a.model_name), a.dtype) : plan::shape_from_gguf(a.model_file);
  plan::Hardware hw;
  Profile prof;
  if (!a.profile.empty()) {
    if (!a.gpu.empty()) PL_THROW("--gpu and --profile exclude each other");
    prof = read_profile(a.profile);
    hw = prof.hw;
    if (a.hosts > 0) hw.nodes = a.hosts;
  } else {
    if (!a.layouts.empty()) PL_THROW("--layouts needs a calibrated --profile (plan calibrate)");
    if (a.gpu.empty()) PL_THROW("give the hardware: --gpu NAME --gpus-per-node N [--nodes M], or --profile FILE");
    if (a.gpus_per_node < 1 || a.nodes < 1) PL_THROW("--gpus-per-node and --nodes must be >= 1");
    hw = plan::make_hardware(cat, a.gpu, a.gpus_per_node, a.nodes, a.intra, a.inter);
    // The efficiencies a GPU engine reaches, fitted to published figures
    // (docs/STUDY-planner.md), or the user's own.
    const std::string eff_file = !a.efficiency.empty() ? a.efficiency : dir + "/efficiency-gpu.json";
    std::ifstream in(eff_file);
    if (!in && !a.efficiency.empty()) PL_THROW("--efficiency: cannot read '" << a.efficiency << "'");
    if (in) {
      try {
        nlohmann::json j = nlohmann::json::parse(in);
        j.erase("about");
        j.erase("fit");
        hw.eff = j.get<plan::Efficiency>();
      } catch (const nlohmann::json::exception& e) {
        PL_THROW("efficiencies '" << eff_file << "': " << e.what());
      }
    }
  }
  if (!a.layouts.empty()) return run_layouts(Predictor{shape, hw, a}, prof);
  const Predictor p{shape, hw, a};
  const auto layouts = layouts_of(hw.n_devices());
  nlohmann::json rows = nlohmann::json::array();
  for (auto [tp, pp] : layouts) rows.push_back(p.predict(tp, pp, a.rate));

  // The recommendation: the lowest predicted p90 latency among the layouts
  // that fit, keep up with the rate and meet the SLOs.
  const nlohmann::json* best = nullptr;
  for (const auto& r : rows)
    if (r["fits"].get<bool>() && r["sustains_rate"].get<bool>() && r.value("meets_slo", false) &&
        (!best || r["p90_e2el_ms"].get<double>() < (*best)["p90_e2el_ms"].get<double>()))
      best = &r;
  std::string why;
  if (best) {
    char b[160];
    std::snprintf(b, sizeof(b), ": the lowest predicted p90 latency (%.2f s) of the layouts that fit and keep up with %g req/s",
                  (*best)["p90_e2el_ms"].get<double>() / 1e3, a.rate);
    why = layout_name(*best) + b;
  } else {
    const nlohmann::json* fastest = nullptr;
    for (const auto& r : rows)
      if (r["fits"].get<bool>() && (!fastest || r["output_tok_s"].get<double>() > (*fastest)["output_tok_s"].get<double>()))
        fastest = &r;
    why = fastest ? "none keeps up with the rate (and the SLOs); the highest throughput is " + layout_name(*fastest)
                  : "no layout fits in memory";
  }
  if (a.json) {
    std::cout << rows.dump() << std::endl;
  } else {
    std::printf("%s (%s, %.2f GiB of weights) on %d x %s over %d node(s); %.3g req/s, %s\n", shape.name.c_str(),
                shape.dtype.c_str(), shape.weight_bytes / 1073741824.0, hw.n_devices(), hw.dev.name.c_str(), hw.nodes,
                a.rate, workload_text(a).c_str());
    std::printf("%-10s %5s %9s %10s %10s %10s %10s %11s  %s\n", "layout", "fits", "keeps up", "p50 E2EL", "p90 E2EL",
                "med TTFT", "med TPOT", "out tok/s", "notes");
    for (const auto& r : rows) {
      if (!r["fits"].get<bool>()) {
        std::printf("%-10s %5s %9s %10s %10s %10s %10s %11s  %s\n", layout_name(r).c_str(), "no", "-", "-", "-", "-", "-",
                    "-", r.value("why_not", std::string()).c_str());
        continue;
      }
      std::printf("%-10s %5s %9s %9.2fs %9.2fs %8.0fms %8.1fms %11.1f  %s\n", layout_name(r).c_str(), "yes",
                  r["sustains_rate"].get<bool>() ? "yes" : "no", r["p50_e2el_ms"].get<double>() / 1e3,
                  r["p90_e2el_ms"].get<double>() / 1e3, r["median_ttft_ms"].get<double>(),
                  r["median_tpot_ms"].get<double>(), r["output_tok_s"].get<double>(),
                  r.value("meets_slo", true) ? "" : "misses the SLO");
    }
    std::printf("recommended: %s\n", why.c_str());
  }
  if (!a.plot.empty()) plot(p, layouts, a.plot);
  return 0;
}

}  // namespace

void add_plan(CLI::App& app, std::function<int()>& run) {
  auto a = std::make_shared<PlanArgs>();
  CLI::App* c = app.add_subcommand("plan", "Predict every TP x PP layout's latency and throughput under load");
  c->add_option("-m,--model", a->model_file, "GGUF model (its shape and weight bytes)");
  c->add_option("--model-name", a->model_name, "A catalogued model (data/plan/models.json), e.g. llama-2-13b");
  c->add_option("--dtype", a->dtype, "Weight type of --model-name: fp16, bf16, q8_0, q4_0, ...")->capture_default_str();
  c->add_option("--gpu", a->gpu, "A catalogued accelerator, e.g. a100-40gb (see --list)");
  c->add_option("--gpus-per-node", a->gpus_per_node, "Devices per node");
  c->add_option("--nodes", a->nodes, "Nodes")->capture_default_str();
  c->add_option("--intra-node", a->intra, "Link between a node's devices")->capture_default_str();
  c->add_option("--inter-node", a->inter, "Link between nodes")->capture_default_str();
  c->add_option("--profile", a->profile, "Hardware profile (JSON: device, links, efficiencies) instead of --gpu");
  c->add_option("--hosts", a->hosts, "With --profile: this many hosts of it");
  c->add_option("--rate", a->rate, "Requests per second")->capture_default_str();
  c->add_option("--burstiness", a->burstiness, "Gamma shape of the arrival gaps (1: Poisson)")->capture_default_str();
  c->add_option("--input-len", a->input_len, "Prompt tokens")->capture_default_str();
  c->add_option("--dataset-path", a->dataset_path,
                "ShareGPT JSON: request lengths from its conversations (as bench serve --dataset-name sharegpt) "
                "instead of --input-len/--output-len");
  c->add_option("--tokenizer", a->tokenizer, "With --dataset-path: GGUF whose tokenizer counts tokens (default: -m)");
  c->add_option("--output-len", a->output_len, "Output tokens")->capture_default_str();
  c->add_option("--range-ratio", a->range_ratio, "Lengths uniform in len x [1 - R, 1 + R]")->capture_default_str();
  c->add_option("--num-prompts", a->num_prompts, "Requests simulated per layout")->capture_default_str();
  c->add_option("--seed", a->seed, "Seed of the simulated arrivals and lengths")->capture_default_str();
  c->add_option("--max-num-seqs", a->max_num_seqs, "Scheduler: sequences running at once")->capture_default_str();
  c->add_option("--max-num-batched-tokens", a->max_num_batched_tokens, "Scheduler: tokens per step")
      ->capture_default_str();
  c->add_option("--slo-ttft-ms", a->slo_ttft_ms, "SLO on the median TTFT");
  c->add_option("--slo-tpot-ms", a->slo_tpot_ms, "SLO on the median TPOT");
  c->add_option("--slo-e2el-ms", a->slo_e2el_ms, "SLO on the p90 end-to-end latency");
  c->add_option("--catalog", a->catalog, "Directory of the catalogues (default: data/plan of the source tree)");
  c->add_option("--plot", a->plot, "Draw predicted latency against rate for each layout into this PNG");
  c->add_flag("--json", a->json, "One JSON list, one object per layout");
  c->add_option("--efficiency", a->efficiency,
                "With --gpu: the engine's efficiencies (JSON: mem, flops, comm, step_overhead_s, ...) instead of "
                "data/plan/efficiency-gpu.json");
  c->add_option("--layouts", a->layouts,
                "With --profile: these layouts (bench sweep's syntax, e.g. \"tp=1,threads=2; pp=2; "
                "tp=2,pp=2,hosts=2,map=node,link=1gbit\") instead of every tp x pp");
  c->add_option("--rates", a->rates, "With --layouts: these request rates (e.g. 1,2,4), seeds as bench sweep's");
  c->add_flag("--emulated-hosts", a->emulated_hosts,
              "With --layouts: the hosts are emulated on this machine and share its cores");
  c->add_flag("--list", a->list, "List the catalogued accelerators, links and models");
  add_plan_calibrate(c, run);
  // CLI11 runs this callback after a chosen `plan calibrate`'s own one: leave
  // `run` to the subcommand then.
  c->callback([a, c, &run] {
    if (!c->get_subcommands().empty()) return;
    run = [a] { return run_plan(*a); };
  });
}

}  // namespace parallama::cli
