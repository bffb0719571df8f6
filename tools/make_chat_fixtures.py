#!/usr/bin/env python3
"""Renders chat templates with python jinja2, configured exactly as HF transformers'
apply_chat_template does, into JSON fixtures for the C++ Jinja interpreter tests.

Outputs (under tests/fixtures/chat/):
  smollm2.jinja      the default model's tokenizer.chat_template (read from its GGUF)
  expected.json      every *.jinja template x conversation x add_generation_prompt
  jinja_cases.json   small interpreter unit cases (template, context, output | error)

Usage: pip install jinja2 gguf; python3 tools/make_chat_fixtures.py [--model PATH]
"""
import argparse
import json
import os
import sys

import jinja2
from jinja2.exceptions import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "chat")
DEFAULT_MODEL = os.path.expanduser("~/.cache/parallama/models/SmolLM2-135M-Instruct.Q4_1.gguf")


def make_env():
    """The environment of transformers' _compile_jinja_template (minus the
    AssistantTracker extension, which only matters for assistant masks)."""

    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        # HF overrides jinja's tojson: no HTML escaping, keys unsorted.
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def read_gguf_template(path):
    import gguf
    reader = gguf.GGUFReader(path)
    field = reader.fields.get("tokenizer.chat_template")
    if field is None:
        return None
    return bytes(field.parts[field.data[0]]).decode("utf-8")


# bos/eos strings each model family uses; they are plain template variables.
TOKENS = {
    "chatml": ("", "<|im_end|>"),
    "features": ("<BOS>", "<EOS>"),
    "gemma": ("<bos>", "<eos>"),
    "llama2": ("<s>", "</s>"),
    "llama3": ("<|begin_of_text|>", "<|eot_id|>"),
    "mistral": ("<s>", "</s>"),
    "mistral_v01": ("<s>", "</s>"),
    "mistral_v03_tools": ("<s>", "</s>"),
    "phi3": ("<s>", "<|endoftext|>"),
    "qwen2": ("", "<|im_end|>"),
    "qwen25_tools": ("", "<|im_end|>"),
    "smollm2": ("<|im_start|>", "<|im_end|>"),
    "zephyr": ("<s>", "</s>"),
}


def m(role, content):
    return {"role": role, "content": content}


CONVERSATIONS = {
    "user_only": [m("user", "Hello!")],
    "system_user": [m("system", "You are a pirate."), m("user", "Who are you?")],
    "multi_turn": [
        m("system", "You are a helpful assistant."),
        m("user", "What is 2+2?"),
        m("assistant", "2+2 equals 4."),
        m("user", "And 3+3?"),
    ],
    "multi_turn_no_system": [
        m("user", "Hi"),
        m("assistant", "Hello! How can I help?"),
        m("user", "Tell me a joke."),
        m("assistant", "Why did the chicken cross the road?"),
    ],
    "special_chars": [
        m("user", "Quotes \"double\" and 'single', backslash \\ and {{ braces }} {% tag %} <b>&amp;</b>"),
        m("assistant", "Line 1\nLine 2\n\n  indented\ttab\r\nwindows"),
        m("user", "Unicode: h\u00e9llo w\u00f6rld \u2014 \u65e5\u672c\u8a9e \U0001F642 \\n literal"),
    ],
    "padded_content": [m("system", "  spaced system  \n"), m("user", "\n\n  padded question \t\n")],
    "empty_content": [m("user", "")],
    "bad_alternation": [m("user", "first"), m("user", "second")],
    "assistant_first": [m("assistant", "I start."), m("user", "ok")],
    "empty_messages": [],
}


def render(env, source, messages, add_generation_prompt, bos, eos):
    tmpl = env.from_string(source)
    # transformers passes tools/documents explicitly (None when absent).
    return tmpl.render(messages=messages, tools=None, documents=None,
                       add_generation_prompt=add_generation_prompt, bos_token=bos, eos_token=eos)


def template_cases(env):
    names = sorted(f[:-6] for f in os.listdir(OUT_DIR) if f.endswith(".jinja"))
    templates = {}
    cases = []
    for name in names:
        with open(os.path.join(OUT_DIR, name + ".jinja"), encoding="utf-8") as f:
            source = f.read()
        bos, eos = TOKENS.get(name, ("<s>", "</s>"))
        templates[name] = {"file": name + ".jinja", "bos_token": bos, "eos_token": eos}
        for conv, messages in CONVERSATIONS.items():
            for agp in (False, True):
                case = {"template": name, "conversation": conv, "add_generation_prompt": agp}
                try:
                    case["output"] = render(env, source, messages, agp, bos, eos)
                except TemplateError as e:
                    case["error"] = str(e)
                    case["error_type"] = type(e).__name__
                cases.append(case)
    return {"templates": templates, "conversations": CONVERSATIONS, "cases": cases}


# Interpreter unit cases: (template, context). Output or error comes from jinja2.
UNIT = [
    # literals and printing
    ("{{ 1 }}|{{ -3 }}|{{ 1.5 }}|{{ 2.0 }}|{{ 1e3 }}|{{ 1_000 }}|{{ 0x1F }}", {}),
    ("{{ true }}|{{ False }}|{{ none }}|{{ None }}|{{ 'a' 'b' }}", {}),
    ("{{ 'it''s' }}|{{ \"q\\\"x\" }}|{{ 'tab\\tnl\\nbs\\\\' }}|{{ '\\x41\\u00e9\\101' }}|{{ '\\d' }}", {}),
    ("{{ [1, 'a', none, true, 1.5] }}|{{ (1,) }}|{{ (1, 2) }}|{{ () }}|{{ {'k': [1, {'n': none}]} }}", {}),
    ("{{ \"it's\" }}{{ [\"it's\", 'say \"hi\"', 'both \\' \"'] }}", {}),
    ("{{ 0.1 + 0.2 }}|{{ 1e16 }}|{{ 1e15 }}|{{ 1e-5 }}|{{ 0.0001 }}|{{ 1/3 }}|{{ 2**0.5 }}|{{ -0.0 }}", {}),
    # arithmetic
    ("{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ -7 % 3 }}|{{ 7 % -3 }}|{{ 7 / 2 }}|{{ 4 / 2 }}|{{ 2 ** 10 }}|{{ 2 ** -1 }}", {}),
    ("{{ 7.5 // 2 }}|{{ -7.5 % 2 }}|{{ 3 * 1.5 }}|{{ true + 1 }}|{{ 'ab' * 3 }}|{{ 2 * [1] }}|{{ [1] + [2, 3] }}", {}),
    ("{{ -2 ** 2 }}|{{ 2 ** 3 ** 2 }}|{{ 1 + 2 * 3 - 4 / 2 }}|{{ (1 + 2) * 3 }}|{{ - - 1 }}|{{ +1 }}", {}),
    ("{{ 'a' ~ 1 ~ none ~ true ~ [1] }}|{{ 'x' ~ undefined_var ~ 'y' }}|{{ 1 + 2 ~ 3 }}", {}),
    ("{{ 1 ~ 2 + 3 }}", {}),
    ("{{ 'a' + 1 }}", {}),
    ("{{ 1 / 0 }}", {}),
    ("{{ 1 // 0 }}", {}),
    ("{{ x + 1 }}", {}),
    # comparisons and logic
    ("{{ 1 == 1.0 }}|{{ 1 != 2 }}|{{ 'a' < 'b' }}|{{ [1, 2] < [1, 3] }}|{{ 1 < 2 < 3 }}|{{ 3 > 2 > 2 }}|{{ true == 1 }}", {}),
    ("{{ 'b' in 'abc' }}|{{ 2 in [1, 2] }}|{{ 'k' in {'k': 1} }}|{{ 3 not in [1] }}|{{ not 'x' in 'y' }}", {}),
    ("{{ 1 and 'x' }}|{{ 0 and 'x' }}|{{ 0 or 'y' }}|{{ '' or [] }}|{{ not 0 }}|{{ not not 'a' }}|{{ none or 'd' }}", {}),
    ("{{ 'y' if 1 else 'n' }}|{{ 'y' if 0 else 'n' }}|{{ 'y' if 0 }}|{{ 'a' if 0 else 'b' if 1 else 'c' }}", {}),
    ("{{ [] == [] }}|{{ {'a': 1, 'b': 2} == {'b': 2, 'a': 1} }}|{{ (1, 2) == [1, 2] }}|{{ none == none }}|{{ x == none }}", {}),
    ("{{ 1 < 'a' }}", {}),
    # variables, attributes, subscripts, slices
    ("{{ d.a }}|{{ d['a'] }}|{{ d.b.c }}|{{ d['b']['c'] }}|{{ l[0] }}|{{ l[-1] }}|{{ l.1 }}|[{{ d.missing }}]|[{{ l[10] }}]",
     {"d": {"a": 1, "b": {"c": "deep"}}, "l": [10, 20, 30]}),
    ("{{ l[1:] }}|{{ l[:2] }}|{{ l[::2] }}|{{ l[::-1] }}|{{ l[-2:] }}|{{ l[5:] }}|{{ s[1:4] }}|{{ s[-1] }}|{{ s[::-1] }}",
     {"l": [1, 2, 3, 4], "s": "h\u00e9llo"}),
    ("{{ d.items()|list }}|{{ d['items'] }}|{{ d.get('get') }}", {"d": {"items": 1, "get": 2}}),
    ("{{ undefined_thing.attr }}", {}),
    ("{{ d.x.y }}", {"d": {}}),
    ("{{ d.keys() | list }}|{{ d.values() | list }}|{{ d.items() | list }}|{{ d.get('a') }}|{{ d.get('z') }}|{{ d.get('z', 5) }}",
     {"d": {"a": 1, "b": [2]}}),
    ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {"d": {"z": 1, "a": 2, "m": 3}}),
    # string methods
    ("[{{ s.strip() }}]|[{{ s.lstrip() }}]|[{{ s.rstrip() }}]|[{{ 'xxhixx'.strip('x') }}]|{{ s.upper() }}|{{ s.lower() }}",
     {"s": "  Hello World \n"}),
    ("{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a b c'.split(none, 1) }}", {}),
    ("{{ 'hello'.startswith('he') }}|{{ 'hello'.endswith('lo') }}|{{ 'hello'.startswith(('x', 'h')) }}|{{ 'hello'.replace('l', 'L') }}|{{ 'hello'.replace('l', 'L', 1) }}", {}),
    ("{{ 'hello world'.title() }}|{{ 'hELLO'.capitalize() }}|{{ 'abcabc'.find('c') }}|{{ 'abcabc'.count('bc') }}|{{ '-'.join(['a', 'b']) }}", {}),
    # filters
    ("{{ ' x '|trim }}|{{ 'xxyxx'|trim('x') }}|{{ 'abc'|length }}|{{ [1, 2]|count }}|{{ {'a': 1}|length }}|{{ 'h\u00e9'|length }}", {}),
    ("{{ 'Hi'|upper }}|{{ 'Hi'|lower }}|{{ 'hi there'|capitalize }}|{{ 'hi there'|title }}|{{ 'a-b'|replace('-', '+') }}", {}),
    ("{{ x|default('d') }}|{{ ''|default('d') }}|{{ ''|default('d', true) }}|{{ none|default('d') }}|{{ 0|d('z', boolean=true) }}", {}),
    ("{{ [1, 2, 3]|join }}|{{ [1, 2, 3]|join(', ') }}|{{ users|join(',', attribute='name') }}",
     {"users": [{"name": "a"}, {"name": "b"}]}),
    ("{{ [3, 1, 2]|first }}|{{ [3, 1, 2]|last }}|{{ 'abc'|first }}|{{ 'abc'|last }}|[{{ []|first }}]", {}),
    ("{{ 42|string }}|{{ [1]|string }}|{{ none|string }}|{{ d|items|list }}|{{ d|list }}", {"d": {"a": 1, "b": 2}}),
    ("{{ x|tojson }}", {"x": {"b": 1, "a": [1.0, None, True, "\u00e9\n\"<&>'"], "n": {"deep": []}}}),
    ("{{ x|tojson(indent=2) }}", {"x": {"b": 1, "a": [1, {"c": "d"}], "e": {}, "f": []}}),
    ("{{ x|tojson(sort_keys=true) }}|{{ 'str'|tojson }}|{{ 1.5|tojson }}|{{ none|tojson }}", {"x": {"b": 1, "a": 2}}),
    ("{{ x|tojson(ensure_ascii=true) }}|{{ x|tojson(separators=(',', ':')) }}", {"x": ["\u00e9\U0001F642", {"k": 1}]}),
    ("{{ 'a\\nb'|indent(2) }}|{{ 'a\\n\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(2, blank=true) }}", {}),
    ("{{ [3, 1, 2]|sort }}|{{ ['b', 'A', 'c']|sort }}|{{ [3, 1, 2]|sort(reverse=true) }}|{{ users|sort(attribute='age')|map(attribute='name')|list }}",
     {"users": [{"name": "x", "age": 30}, {"name": "y", "age": 20}]}),
    ("{{ [1, 1, 2, 'a', 'A']|unique|list }}|{{ [1, 2, 3]|sum }}|{{ [1, 5, 3]|max }}|{{ [4, 2, 8]|min }}|{{ [1, 2]|reverse|list }}|{{ 'abc'|reverse }}", {}),
    ("{{ 3.7|int }}|{{ '42'|int }}|{{ '3.9'|int }}|{{ 'x'|int }}|{{ 'x'|int(7) }}|{{ '2.5'|float }}|{{ 3|float }}|{{ -3|abs }}|{{ 2.5|round }}|{{ 3.14159|round(2) }}|{{ 2.1|round(0, 'ceil') }}", {}),
    ("{{ [1, 2, 3, 4]|select('odd')|list }}|{{ [1, 2, 3, 4]|reject('even')|list }}|{{ [0, 1, '', 'a']|select|list }}|{{ [1, 5, 10]|select('gt', 3)|list }}", {}),
    ("{{ ms|selectattr('role', 'equalto', 'user')|map(attribute='content')|list }}|{{ ms|rejectattr('role', 'eq', 'user')|list|length }}|{{ ms|selectattr('flag')|list|length }}",
     {"ms": [{"role": "user", "content": "a", "flag": True}, {"role": "bot", "content": "b", "flag": False}]}),
    ("{{ ['a', 'b']|map('upper')|list }}|{{ ['a', 'b']|map('replace', 'a', 'z')|list }}|{{ d|dictsort }}|{{ 'one two  three'|wordcount }}",
     {"d": {"b": 1, "a": 2}}),
    ("{{ '<a href=\"x\">&'|e }}|{{ 'x'|safe }}|{{ d|attr('a') }}", {"d": {"a": 1}}),
    ("{{ 'a'|nosuchfilter }}", {}),
    # tests
    ("{{ x is defined }}|{{ y is defined }}|{{ y is undefined }}|{{ x is none }}|{{ x is not none }}|{{ 'a' is string }}|{{ 1 is string }}",
     {"x": None}),
    ("{{ 1 is number }}|{{ 1.5 is float }}|{{ 1 is integer }}|{{ true is boolean }}|{{ {} is mapping }}|{{ [] is sequence }}|{{ 'a' is iterable }}|{{ 3 is odd }}|{{ 4 is even }}|{{ 9 is divisibleby 3 }}|{{ 9 is divisibleby(2) }}", {}),
    ("{{ 'abc' is lower }}|{{ 'ABC' is upper }}|{{ 1 is eq 1 }}|{{ 2 is gt 1 }}|{{ 1 is in [1, 2] }}|{{ true is true }}|{{ 0 is false }}|{{ f is callable }}|{{ range is callable }}",
     {"f": 1}),
    ("{{ x is nosuchtest }}", {}),
    # statements
    ("{% if a %}A{% elif b %}B{% else %}C{% endif %}", {"a": 0, "b": 1}),
    ("{% for x in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}",
     {"l": ["a", "b", "c"]}),
    ("{% for x in l %}{{ loop.previtem }}-{{ loop.nextitem }}-{{ loop.cycle('o', 'e') }};{% endfor %}", {"l": [1, 2, 3]}),
    ("{% for x in [] %}x{% else %}empty{% endfor %}|{% for x in [1, 2, 3, 4] if x is even %}{{ x }}{{ loop.length }}{% endfor %}", {}),
    ("{% for a, b in [(1, 2), (3, 4)] %}{{ a + b }}{% endfor %}|{% for c in 'h\u00e9y' %}[{{ c }}]{% endfor %}|{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}", {}),
    ("{% for x in [1, 2, 3, 4, 5] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("{% for x in [1, 2] %}{% for y in ['a', 'b'] %}{{ x }}{{ y }}{{ loop.index }}{% endfor %}{{ loop.index }};{% endfor %}", {}),
    ("{% set x = 1 %}{% for i in [1, 2, 3] %}{{ x }}{% set x = x + i %}{{ x }};{% endfor %}{{ x }}", {}),
    ("{% set ns = namespace(total=0, items=[]) %}{% for i in range(4) %}{% set ns.total = ns.total + i %}{% set ns.items = ns.items + [i * 2] %}{% endfor %}{{ ns.total }}|{{ ns.items }}", {}),
    ("{% set a, b = 1, 2 %}{{ a }}{{ b }}|{% set t = (3, 4) %}{% set c, d = t %}{{ c + d }}|{% set s %}block {{ 1 + 1 }}{% endset %}[{{ s }}]", {}),
    ("{% set s | upper %}shout {{ 'it' }}{% endset %}{{ s }}|{% filter upper %}filtered {{ 'x' }}{% endfilter %}", {}),
    ("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }}|{{ greet('Al', punct='?') }}|{{ greet(name='Cy') }}", {}),
    ("{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * (fact(n - 1) | int) }}{% endif %}{% endmacro %}{{ fact(5) }}", {}),
    ("{{ range(3)|list }}|{{ range(1, 7, 2)|list }}|{{ range(5, 0, -2)|list }}|{{ dict(a=1, b='x') }}|{{ namespace(a=1).a }}", {}),
    ("{% raw %}{{ not evaluated }} {% if %}{% endraw %}|done", {}),
    ("{{ raise_exception('custom failure: ' ~ n) }}", {"n": 3}),
    # whitespace control with trim_blocks / lstrip_blocks
    ("a\n{% if true %}\n  b\n{% endif %}\nc\n", {}),
    ("a\n    {% if true %}\n    b\n    {% endif %}\n    c", {}),
    ("a  {%- if true -%}  b  {%- endif -%}  c", {}),
    ("a  {{- 'x' -}}  b\n{{ 'y' }}\nz", {}),
    ("a\n  {%+ if true %}x{% endif %}\n", {}),
    ("a\n{% if true +%}\nx{% endif %}", {}),
    ("x  {# comment #}\n  {# own line #}\ny {#- trim -#}   z", {}),
    ("line1\r\nline2\r\n{% if true %}\r\nwin\r\n{% endif %}\r\n", {}),
    ("trailing newline kept once\n\n", {}),
    ("{% for i in [1, 2] %}\n  - {{ i }}\n{% endfor %}\n", {}),
    ("  {{ 'indented var' }}\n\t{% if 1 %}tab{% endif %}", {}),
    ("{% if 1 %} keep {% endif %}  {% if 1 %}x{% endif %}", {}),
    # syntax errors (must fail to parse)
    ("{{ 1 + }}", {}),
    ("{% if x %}unclosed", {}),
    ("{% for x in y %}no end", {}),
    ("{% endif %}", {}),
    ("{{ 'unterminated }}", {}),
    ("{{ x ", {}),
    ("{# never closed", {}),
    ("{% unknowntag %}", {}),
    ("{{ (1, 2 }}", {}),
    ("{% set %}", {}),
    ("{% break %}", {}),
    ("{{ x | }}", {}),
    ("{% if x %}{% else %}{% else %}{% endif %}", {}),
    ("line1\n{% if x %}\nfoo\n{{ 1 + }}\n{% endif %}", {}),
    ("a\nb\n{% for x in y %}\nno end\n", {}),
    ("{% if true %}\n\n\n{% endfor %}", {}),
    ("one\ntwo {{ 'ok' }}\nthree {{ x y }}", {}),
    ("{% set ns = namespace() %}\n{% for m in messages %}\n{{ m.role ]] }}\n{% endfor %}", {}),
]


def unit_cases(env):
    cases = []
    for template, context in UNIT:
        case = {"template": template, "context": context}
        try:
            case["output"] = env.from_string(template).render(**context)
        except jinja2.TemplateSyntaxError as e:
            case["error"] = "syntax"
            case["message"] = str(e)
            case["line"] = e.lineno
        except SyntaxError as e:  # jinja2 leaves `break` outside a loop to Python's compiler
            case["error"] = "syntax"
            case["message"] = str(e)
        except TemplateError as e:
            case["error"] = "runtime" if type(e).__name__ != "TemplateError" else "raise"
            case["message"] = str(e)
        except (TypeError, ZeroDivisionError, ValueError) as e:
            case["error"] = "runtime"
            case["message"] = str(e)
        cases.append(case)
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODEL, help="GGUF whose chat template becomes smollm2.jinja")
    args = ap.parse_args()
    env = make_env()
    if os.path.exists(args.model):
        tmpl = read_gguf_template(args.model)
        if tmpl is None:
            sys.exit(f"{args.model} has no tokenizer.chat_template")
        with open(os.path.join(OUT_DIR, "smollm2.jinja"), "w", encoding="utf-8") as f:
            f.write(tmpl)
    else:
        print(f"warning: {args.model} not found; keeping existing smollm2.jinja", file=sys.stderr)

    expected = template_cases(env)
    with open(os.path.join(OUT_DIR, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)
        f.write("\n")
    units = unit_cases(env)
    with open(os.path.join(OUT_DIR, "jinja_cases.json"), "w", encoding="utf-8") as f:
        json.dump({"jinja2_version": jinja2.__version__, "cases": units}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    n_err = sum("error" in c for c in expected["cases"])
    print(f"expected.json: {len(expected['cases'])} cases ({n_err} errors) over {len(expected['templates'])} templates")
    print(f"jinja_cases.json: {len(units)} cases ({sum('error' in c for c in units)} errors)")


if __name__ == "__main__":
    main()
