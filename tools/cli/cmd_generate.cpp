// parallama generate: complete one or several prompts.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/check.h"
#include "engine/engine.h"
#include "cli/parallel_run.h"
#include "cli/serve_options.h"
#include "serve/generate.h"
#include "parallel/launcher.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/stream_decoder.h"

namespace parallama::cli {

namespace {

struct GenerateArgs {
  std::string model;
  std::vector<std::string> prompts;
  std::string prompts_file;
  int n_predict = 64;
  SamplingParams sp;
  bool chat = false;
  std::string system;
  int threads = 0;
  int ctx = 4096;
  bool json = false;
  bool ignore_eos = false;
  bool no_repack = false;
  ParallelArgs par;
  ServeArgs serve;
};

std::vector<int32_t> build_prompt(const Engine& e, const GenerateArgs& a, const std::string& text) {
  if (!a.chat) return e.tokenizer().encode(text, /*add_special=*/true, /*parse_special=*/true);
  std::string tmpl = e.file().get_string("tokenizer.chat_template", "");
  if (tmpl.empty()) tmpl = builtin_chat_template("chatml");
  const Tokenizer& tok = e.tokenizer();
  ChatTemplate ct(tmpl, tok.bos_id() >= 0 ? tok.token_to_piece(tok.bos_id()) : "",
                  tok.eos_id() >= 0 ? tok.token_to_piece(tok.eos_id()) : "");
  std::vector<ChatMessage> msgs;
  if (!a.system.empty()) msgs.push_back({"system", a.system});
  msgs.push_back({"user", text});
  return tok.encode(ct.apply(msgs, /*add_generation_prompt=*/true), true, true);
}

int run_generate_on(const GenerateArgs& a, ParallelRun* run) {
  std::vector<std::string> prompts = a.prompts;
  if (!a.prompts_file.empty()) {
    std::ifstream in(a.prompts_file);
    if (!in) PL_THROW("cannot read prompts file '" << a.prompts_file << "'");
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) prompts.push_back(line);
  }
  if (prompts.empty()) PL_THROW("no prompt: give -p TEXT or --prompts FILE");
  if (a.n_predict < 0) PL_THROW("-n must be >= 0");

  const bool leader = !run || run->leader();  // prints results
  EngineOptions opt;
  opt.threads = run ? run->threads(a.threads) : a.threads;
  opt.n_ctx = a.ctx;
  opt.repack = !a.no_repack;
  const ServeConfig scfg = apply_serve_options(a.serve, opt);
  opt.progress = leader && isatty(STDOUT_FILENO) && isatty(STDERR_FILENO) && !a.json;
  auto engine = Engine::load(a.model.empty() ? default_model_path() : a.model, opt,
                             run ? &run->setup() : nullptr);
  if (run) run->print_layout(*engine);

  std::vector<Request> reqs;
  for (size_t i = 0; i < prompts.size(); ++i) {
    Request r;
    r.prompt = build_prompt(*engine, a, prompts[i]);
    r.max_tokens = a.n_predict;
    r.sampling = a.sp;
    r.ignore_eos = a.ignore_eos;
    reqs.push_back(std::move(r));
  }
  const bool stream = leader && !a.json && prompts.size() == 1;
  StreamDecoder dec(engine->tokenizer());
  GenerateStats st;
  auto res = generate(*engine, reqs, scfg, &st, [&](size_t, int32_t tok) {
    if (!stream || engine->tokenizer().is_eog(tok)) return;
    std::cout << dec.push(tok) << std::flush;
  });
  if (stream) std::cout << dec.flush() << std::endl;  // before the stats on stderr
  if (run) run->report(*engine, st);
  if (!leader) return 0;

  const double pp = st.prompt_s > 0 ? st.prompt_tokens / st.prompt_s : 0;
  // Prefill also yields each sequence's first token; decode covers the rest.
  const double tg = st.decode_s > 0 ? st.decode_tokens / st.decode_s : 0;
  if (a.json) {
    nlohmann::json out;
    nlohmann::json arr = nlohmann::json::array();
    for (size_t i = 0; i < res.size(); ++i) {
      arr.push_back({{"prompt_tokens", reqs[i].prompt.size()},
                     {"tokens", res[i].tokens},
                     {"text", engine->tokenizer().decode(res[i].tokens)},
                     {"finish_reason", res[i].finish_reason}});
    }
    if (res.size() == 1) out = arr[0];
    else out["results"] = arr;
    out["timings"] = {{"prompt_tokens", st.prompt_tokens}, {"prompt_s", st.prompt_s},
                      {"prompt_tok_s", pp}, {"decode_tokens", st.decode_tokens},
                      {"decode_s", st.decode_s}, {"decode_tok_s", tg},
                      {"threads", engine->threads()}, {"thread_shards", engine->thread_shards()},
                      {"comm_s", st.comm_s}};
    if (run) out["parallel"] = run->summary_json();
    std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    if (!stream) {
      for (size_t i = 0; i < res.size(); ++i)
        std::cout << "[" << i << "] " << engine->tokenizer().decode(res[i].tokens) << "\n";
    }
    std::fprintf(stderr, "prompt: %lld tokens, %.1f tok/s | decode: %lld tokens, %.1f tok/s | %d threads\n",
                 static_cast<long long>(st.prompt_tokens), pp,
                 static_cast<long long>(st.decode_tokens), tg, engine->threads());
  }
  return 0;
}

int run_generate(const GenerateArgs& a) {
  if (a.par.tp * a.par.pp == 1 && !under_mpi()) return run_generate_on(a, nullptr);
  return with_parallel_run(a.par, a.model.empty() ? default_model_path() : a.model,
                           [&](ParallelRun& run) { return run_generate_on(a, &run); });
}

}  // namespace

void add_generate(CLI::App& app, std::function<int()>& run) {
  auto a = std::make_shared<GenerateArgs>();
  CLI::App* c = app.add_subcommand("generate", "Generate a completion for one or more prompts");
  c->add_option("-m,--model", a->model, "GGUF model (default: SmolLM2-135M-Instruct Q4_1)");
  c->add_option("-p,--prompt", a->prompts, "Prompt text (repeat for a batch)");
  c->add_option("--prompts", a->prompts_file, "File with one prompt per line");
  c->add_option("-n,--n-predict", a->n_predict, "Tokens to generate")->capture_default_str();
  c->add_option("--temperature,--temp", a->sp.temperature, "0 = greedy")->capture_default_str();
  c->add_option("--top-k", a->sp.top_k, "0 = off");
  c->add_option("--top-p", a->sp.top_p, "1 = off");
  c->add_option("--min-p", a->sp.min_p, "0 = off");
  c->add_option("--repeat-penalty", a->sp.repeat_penalty, "1 = off");
  c->add_option("--repeat-last-n", a->sp.repeat_last_n, "Window for penalties");
  c->add_option("--presence-penalty", a->sp.presence_penalty);
  c->add_option("--frequency-penalty", a->sp.frequency_penalty);
  c->add_option("--seed", a->sp.seed, "Sampling seed");
  c->add_flag("--chat", a->chat, "Wrap the prompt in the model's chat template");
  c->add_option("--system", a->system, "System message (with --chat)");
  c->add_option("-t,--threads", a->threads, "Compute threads (default: all cores)");
  c->add_option("-c,--ctx", a->ctx, "KV cache capacity in tokens")->capture_default_str();
  c->add_flag("--ignore-eos", a->ignore_eos, "Do not stop at end-of-generation tokens");
  c->add_flag("--json", a->json, "Print one JSON object with tokens, text and timings");
  c->add_flag("--no-repack", a->no_repack, "Run from the mapped file in GGUF layout (no x16 weight copy)");
  add_parallel_options(c, a->par);
  add_serve_options(c, a->serve);
  c->callback([a, &run] { run = [a] { return run_generate(*a); }; });
}

}  // namespace parallama::cli
