// parallama tokenize / info / synth: small inspection and tooling commands.
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/check.h"
#include "engine/engine.h"
#include "model/model_config.h"
#include "model/synthetic_model.h"

namespace parallama::cli {

void add_tokenize(CLI::App& app, std::function<int()>& run) {
  struct Args {
    std::string model, text;
    bool no_add_special = false, no_parse_special = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* c = app.add_subcommand("tokenize", "Print the token ids of TEXT as JSON");
  c->add_option("-m,--model", a->model, "GGUF model");
  c->add_option("text", a->text, "Text to tokenize")->required();
  c->add_flag("--no-add-special", a->no_add_special, "Do not add BOS/EOS even if the model asks");
  c->add_flag("--no-parse-special", a->no_parse_special, "Treat special-token texts as plain text");
  c->callback([a, &run] {
    run = [a] {
      auto f = GgufFile::open(a->model.empty() ? default_model_path() : a->model);
      auto tok = Tokenizer::from_gguf(*f);
      std::cout << nlohmann::json(tok->encode(a->text, !a->no_add_special, !a->no_parse_special))
                << "\n";
      return 0;
    };
  });
}

void add_info(CLI::App& app, std::function<int()>& run) {
  struct Args {
    std::string model;
    bool all_tensors = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* c = app.add_subcommand("info", "Print architecture, shapes, types and metadata");
  c->add_option("-m,--model", a->model, "GGUF model");
  c->add_flag("--tensors", a->all_tensors, "List every tensor");
  c->callback([a, &run] {
    run = [a] {
      auto f = GgufFile::open(a->model.empty() ? default_model_path() : a->model);
      std::printf("file: %s (GGUF v%u, %.1f MiB, %zu tensors, %zu metadata keys)\n",
                  f->path().c_str(), f->version(), f->file_size() / 1048576.0,
                  f->tensors().size(), f->metadata().size());
      try {
        std::printf("model: %s\n", ModelConfig::from_gguf(*f).summary().c_str());
      } catch (const Error& e) {
        std::printf("model: not runnable here: %s\n", e.what());
      }
      std::map<std::string, std::pair<int, uint64_t>> by_type;
      for (const auto& t : f->tensors()) {
        auto& s = by_type[type_name(t.type)];
        s.first++;
        s.second += t.n_bytes;
      }
      std::printf("tensor types:");
      for (const auto& [n, s] : by_type)
        std::printf(" %s x%d (%.1f MiB)", n.c_str(), s.first, s.second / 1048576.0);
      std::printf("\n\nmetadata:\n");
      for (const auto& kv : f->metadata())
        std::printf("  %-40s %s\n", kv.key.c_str(), kv.value.to_string(8).substr(0, 200).c_str());
      std::printf("\ntensors:\n");
      size_t shown = 0;
      for (const auto& t : f->tensors()) {
        if (!a->all_tensors && shown >= 12 && t.name.rfind("blk.", 0) == 0 &&
            t.name.rfind("blk.0.", 0) != 0)
          continue;
        std::string dims;
        for (size_t i = 0; i < t.dims.size(); ++i) dims += (i ? " x " : "") + std::to_string(t.dims[i]);
        std::printf("  %-32s %-6s [%s]\n", t.name.c_str(), type_name(t.type).c_str(), dims.c_str());
        ++shown;
      }
      if (!a->all_tensors) std::printf("  (layers after blk.0 omitted; --tensors lists all)\n");
      return 0;
    };
  });
}

void add_synth(CLI::App& app, std::function<int()>& run) {
  struct Args {
    SyntheticModelSpec spec;
    std::string type = "Q8_0";
    std::string embd_type = "F32";
    std::string out;
  };
  auto a = std::make_shared<Args>();
  CLI::App* c = app.add_subcommand("synth", "Write a small GGUF model with random weights");
  c->add_option("-o,--output", a->out, "Output .gguf path")->required();
  c->add_option("--type", a->type, "Weight type: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q4_K Q5_K Q6_K")
      ->capture_default_str();
  c->add_option("--layers", a->spec.n_layer)->capture_default_str();
  c->add_option("--heads", a->spec.n_head)->capture_default_str();
  c->add_option("--kv-heads", a->spec.n_head_kv)->capture_default_str();
  c->add_option("--head-dim", a->spec.head_dim)->capture_default_str();
  c->add_option("--ff", a->spec.n_ff)->capture_default_str();
  c->add_option("--vocab", a->spec.n_vocab)->capture_default_str();
  c->add_option("--embd-type", a->embd_type, "token_embd.weight type (the tied output head too)")
      ->capture_default_str();
  c->add_option("--ctx", a->spec.n_ctx, "Training context length written to the metadata")
      ->capture_default_str();
  c->add_option("--seed", a->spec.seed)->capture_default_str();
  c->add_option("--arch", a->spec.arch, "llama, mistral or qwen2")->capture_default_str();
  c->add_option("--n-embd", a->spec.n_embd, "0: heads x head-dim")->capture_default_str();
  c->add_flag("--qkv-bias", a->spec.qkv_bias, "Add Q/K/V biases (as qwen2 has)");
  c->add_flag("!--untied", a->spec.tied_output, "Separate output.weight instead of tied embeddings");
  c->callback([a, &run] {
    run = [a] {
      auto parse_type = [](const std::string& name, const char* opt) {
        for (uint32_t id = 0; id < 64; ++id) {
          TypeTraits t = type_traits(id);
          if (t.name && t.supported && name == t.name) return static_cast<GgmlType>(id);
        }
        PL_THROW("unknown or unsupported " << opt << " '" << name << "'");
      };
      a->spec.weight_type = parse_type(a->type, "--type");
      a->spec.embd_type = parse_type(a->embd_type, "--embd-type");
      write_synthetic_model(a->out, a->spec);
      std::printf("wrote %s\n", a->out.c_str());
      return 0;
    };
  });
}

}  // namespace parallama::cli
