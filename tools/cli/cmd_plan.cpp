// parallama plan: for a model, a cluster (catalogue GPUs and links, or a
// hardware profile of CPU hosts) and a workload, predicts every TP x PP layout
// that uses all the devices: whether it fits in memory, and its latency and
// throughput under load at the given rate (src/plan: the cost of one step per
// layout, driven through a simulation of our own scheduler). Recommends one.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/child_process.h"
#include "cli/commands.h"
#include "cli/paths.h"
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
};

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

  // One layout at one rate: the per-layout object of --json.
  nlohmann::json predict(int tp, int pp, double rate) const {
    nlohmann::json row = {{"tp", tp}, {"pp", pp}, {"fits", false}, {"sustains_rate", false}, {"rate", rate}};
    std::unique_ptr<plan::CostModel> cm;
    try {
      cm = std::make_unique<plan::CostModel>(shape, plan::Layout{tp, pp, {}}, hw);
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
    if (cfg.kv_blocks < 1) {
      row["fits"] = false;
      row["why_not"] = "no room left for the KV cache";
      return row;
    }
    const auto reqs = plan::make_requests(a.num_prompts, rate, a.burstiness, range(a.input_len, a.range_ratio),
                                          range(a.output_len, a.range_ratio), a.seed);
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
  const std::string js = file + ".json";
  std::ofstream(js) << sweep.dump(1) << "\n";
  const std::string log = file + ".log";
  const int rc = run_logged({python_for_tools(), source_root() + "/tools/plot_sweep.py", js, file, "--title",
                             "predicted by parallama plan: " + p.shape.name + ", " + std::to_string(p.a.input_len) +
                                 " in / " + std::to_string(p.a.output_len) +
                                 " out tokens; star: highest rate kept up with"},
                            log);
  if (rc != 0) PL_THROW("--plot: tools/plot_sweep.py failed, see " << log << " (matplotlib missing? set PARALLAMA_PYTHON)");
  std::remove(log.c_str());
  std::fprintf(stderr, "plan: wrote %s (and the numbers in %s)\n", file.c_str(), js.c_str());
}

int run_plan(const PlanArgs& a) {
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
  if (!a.profile.empty()) {
    if (!a.gpu.empty()) PL_THROW("--gpu and --profile exclude each other");
    std::ifstream in(a.profile);
    if (!in) PL_THROW("--profile: cannot read '" << a.profile << "'");
    try {
      hw = nlohmann::json::parse(in).get<plan::Hardware>();
    } catch (const nlohmann::json::exception& e) {
      PL_THROW("--profile '" << a.profile << "': " << e.what());
    }
    if (a.hosts > 0) hw.nodes = a.hosts;
  } else {
    if (a.gpu.empty()) PL_THROW("give the hardware: --gpu NAME --gpus-per-node N [--nodes M], or --profile FILE");
    if (a.gpus_per_node < 1 || a.nodes < 1) PL_THROW("--gpus-per-node and --nodes must be >= 1");
    hw = plan::make_hardware(cat, a.gpu, a.gpus_per_node, a.nodes, a.intra, a.inter);
  }
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
    std::printf("%s (%s, %.2f GiB of weights) on %d x %s over %d node(s); %.3g req/s, %d in / %d out tokens, %d requests\n",
                shape.name.c_str(), shape.dtype.c_str(), shape.weight_bytes / 1073741824.0, hw.n_devices(),
                hw.dev.name.c_str(), hw.nodes, a.rate, a.input_len, a.output_len, a.num_prompts);
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
  c->add_flag("--list", a->list, "List the catalogued accelerators, links and models");
  c->callback([a, &run] { run = [a] { return run_plan(*a); }; });
}

}  // namespace parallama::cli
