// Jinja interpreter tests. Expected outputs come from python jinja2 configured
// as HF transformers does (tools/make_chat_fixtures.py -> jinja_cases.json);
// the hand-written tests cover error reporting and resource limits.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "test_util.h"
#include "tokenizer/jinja.h"
#include "tokenizer/jinja_lexer.h"

namespace parallama::jinja {
namespace {

using ojson = nlohmann::ordered_json;  // keeps dict order, as Python does

ojson load_json(const std::string& name) {
  std::ifstream f(test::fixture_path(name));
  EXPECT_TRUE(f.good()) << "missing fixture " << name;
  std::stringstream ss;
  ss << f.rdbuf();
  return ojson::parse(ss.str());
}

Value from_json(const ojson& j) {
  switch (j.type()) {
    case ojson::value_t::null: return Value(None{});
    case ojson::value_t::boolean: return Value(j.get<bool>());
    case ojson::value_t::number_integer:
    case ojson::value_t::number_unsigned: return Value(j.get<int64_t>());
    case ojson::value_t::number_float: return Value(j.get<double>());
    case ojson::value_t::string: return Value(j.get<std::string>());
    case ojson::value_t::array: {
      std::vector<Value> items;
      for (const auto& x : j) items.push_back(from_json(x));
      return Value::list(std::move(items));
    }
    case ojson::value_t::object: {
      std::vector<std::pair<Value, Value>> kv;
      for (const auto& [k, v] : j.items()) kv.emplace_back(Value(k), from_json(v));
      return Value::dict(std::move(kv));
    }
    default: return Value();
  }
}

std::string render(const std::string& src, const Value& ctx = Value::dict()) { return Template(src).render(ctx); }

TEST(Jinja, MatchesPythonJinja2Cases) {
  ojson doc = load_json("chat/jinja_cases.json");
  ASSERT_GT(doc["cases"].size(), 50u);
  for (const auto& c : doc["cases"]) {
    const std::string tmpl = c["template"].get<std::string>();
    SCOPED_TRACE("template: " + tmpl);
    Value ctx = from_json(c["context"]);
    if (c.contains("output")) {
      std::string got;
      try {
        got = render(tmpl, ctx);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "threw: " << e.what();
        continue;
      }
      EXPECT_EQ(got, c["output"].get<std::string>());
      continue;
    }
    const std::string kind = c["error"].get<std::string>();
    if (kind == "syntax") {
      try {
        Template t(tmpl);
        ADD_FAILURE() << "expected a syntax error (" << c["message"].get<std::string>() << ")";
      } catch (const TemplateRaise&) {
        ADD_FAILURE() << "syntax error reported as raise";
      } catch (const Error& e) {
        std::string msg = e.what();
        EXPECT_NE(msg.find("syntax error"), std::string::npos) << msg;
        if (c.contains("line") && !c["line"].is_null()) {
          EXPECT_NE(msg.find("line " + std::to_string(c["line"].get<int>()) + ","), std::string::npos)
              << msg << " vs jinja2: " << c["message"].get<std::string>();
        }
      }
      continue;
    }
    std::unique_ptr<Template> t;
    try {
      t = std::make_unique<Template>(tmpl);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "unexpected parse failure: " << e.what();
      continue;
    }
    if (kind == "raise") {
      try {
        t->render(ctx);
        ADD_FAILURE() << "expected raise_exception";
      } catch (const TemplateRaise& e) {
        EXPECT_EQ(std::string(e.what()), c["message"].get<std::string>());
      }
    } else {
      try {
        t->render(ctx);
        ADD_FAILURE() << "expected a runtime error (" << c["message"].get<std::string>() << ")";
      } catch (const TemplateRaise& e) {
        ADD_FAILURE() << "runtime error reported as raise: " << e.what();
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("template error at line"), std::string::npos) << e.what();
      }
    }
  }
}

TEST(Jinja, SyntaxErrorsCarryLineAndColumn) {
  try {
    Template t("ok\n{{ 'fine' }}\n  {% if %}");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 3, column 9"), std::string::npos) << e.what();
  }
  try {
    Template t("a\n{{ 1 + @ }}");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2, column 8"), std::string::npos) << e.what();
  }
}

TEST(Jinja, RuntimeErrorsCarryLine) {
  Template t("line1\n{% for m in messages %}\n{{ m.x.y }}\n{% endfor %}");
  Value ctx = Value::dict({{Value("messages"), Value::list({Value::dict()})}});
  try {
    t.render(ctx);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("has no attribute 'x'"), std::string::npos) << e.what();
  }
}

TEST(Jinja, FloatReprMatchesPython) {
  // Values from CPython's repr().
  EXPECT_EQ(python_float_repr(0.1), "0.1");
  EXPECT_EQ(python_float_repr(1.0), "1.0");
  EXPECT_EQ(python_float_repr(-2.5), "-2.5");
  EXPECT_EQ(python_float_repr(1e16), "1e+16");
  EXPECT_EQ(python_float_repr(123456789012345678.0), "1.2345678901234568e+17");
  EXPECT_EQ(python_float_repr(1e-5), "1e-05");
  EXPECT_EQ(python_float_repr(0.00012), "0.00012");
  EXPECT_EQ(python_float_repr(1.5e-7), "1.5e-07");
  EXPECT_EQ(python_float_repr(1e300 * 1e300), "inf");
}

TEST(Jinja, LimitsFailCleanly) {
  // Deep expression nesting is refused by the parser.
  EXPECT_THROW(Template("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}"), Error);
  EXPECT_THROW(Template("{{ " + std::string(5000, '-') + "1 }}"), Error);
  EXPECT_THROW(Template("{{ " + std::string(3000, '[') + std::string(3000, ']') + " }}"), Error);
  std::string nested_ifs;
  for (int i = 0; i < 1000; ++i) nested_ifs += "{% if true %}";
  EXPECT_THROW(Template{nested_ifs}, Error);
  // Runaway loops, recursion and growth hit the caps.
  EXPECT_THROW(render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"), Error);
  EXPECT_THROW(render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"), Error);
  EXPECT_THROW(render("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"),
               Error);
  EXPECT_THROW(render("{{ range(10000000000) | length }}"), Error);
  EXPECT_THROW(render("{{ 'x' * 100000000000 }}"), Error);
  EXPECT_THROW(render("{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}"),
               Error);
  EXPECT_THROW(render("{% set ns = namespace(v=none) %}{% for i in range(1000) %}{% set ns.v = [ns.v] %}{% endfor %}"),
               Error);
  EXPECT_THROW(render("{% set ns = namespace() %}{% set ns.me = ns %}"), Error);
  EXPECT_THROW(render("{{ 9223372036854775807 + 1 }}"), Error);
  EXPECT_THROW(render("{{ 2 ** 64 }}"), Error);
}

TEST(Jinja, RaiseExceptionMessageIsVerbatim) {
  try {
    render("{{ raise_exception('Conversation roles must alternate') }}");
    FAIL();
  } catch (const TemplateRaise& e) {
    EXPECT_STREQ(e.what(), "Conversation roles must alternate");
  }
}

TEST(Jinja, FuzzedTemplatesNeverCrash) {
  // Mutations of a realistic template: each must parse+render or throw Error.
  const std::string base =
      "{%- set ns = namespace(n=0) -%}{% for m in messages %}{% if m['role'] == 'user' %}"
      "{{ '<u>' + m.content | trim ~ (loop.index|string) }}{% elif m.role in ['a', 'b'] %}{{ m.content[1:-1] }}"
      "{% else %}{{ raise_exception('bad ' ~ m.role) }}{% endif %}{% set ns.n = ns.n + 1 %}{% endfor %}"
      "{{ ns.n }}{# c #}{{ messages | map(attribute='role') | join(',') | tojson(indent=1) }}";
  const std::string alphabet = "{}%#-+()[]'\".,|:~=!<>*/ \n\tabcdefimnorstu0123456789_";
  Value ctx = Value::dict({{Value("messages"),
                            Value::list({Value::dict({{Value("role"), Value("user")}, {Value("content"), Value(" hi ")}}),
                                         Value::dict({{Value("role"), Value("a")}, {Value("content"), Value("xyz")}})})}});
  std::mt19937 rng(1234);
  int rendered = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s = base;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t pos = rng() % (s.size() + 1);
      switch (rng() % 3) {
        case 0: s.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
        case 1:
          if (pos < s.size()) s.erase(pos, 1 + rng() % 3);
          break;
        default:
          if (pos < s.size()) s[pos] = alphabet[rng() % alphabet.size()];
      }
    }
    try {
      Template t(s);
      t.render(ctx);
      ++rendered;
    } catch (const Error&) {
    }
  }
  EXPECT_GT(rendered, 100);  // the mutations are not all fatal
}

TEST(Jinja, RandomBytesNeverCrash) {
  std::mt19937 rng(99);
  for (int iter = 0; iter < 2000; ++iter) {
    std::string s(rng() % 64, '\0');
    for (auto& ch : s) ch = static_cast<char>(rng() % 4 == 0 ? "{}%#-"[rng() % 5] : rng() % 256);
    try {
      Template(s).render(Value::dict());
    } catch (const Error&) {
    }
  }
}

TEST(Jinja, LexerTokens) {
  auto toks = lex("a {{- x.y[0] | f(1.5, k='s') -}} b");
  std::vector<Tok> types;
  for (const auto& t : toks) types.push_back(t.type);
  std::vector<Tok> want = {Tok::Text, Tok::VarBegin, Tok::Name, Tok::Op, Tok::Name, Tok::Op, Tok::Int, Tok::Op,
                           Tok::Op,   Tok::Name,     Tok::Op,   Tok::Float, Tok::Op, Tok::Name, Tok::Op, Tok::String,
                           Tok::Op,   Tok::VarEnd,   Tok::Text, Tok::Eof};
  EXPECT_EQ(types, want);
  EXPECT_EQ(toks[0].value, "a");   // `{{-` stripped the space
  EXPECT_EQ(toks[18].value, "b");  // `-}}` stripped the space
}

}  // namespace
}  // namespace parallama::jinja
